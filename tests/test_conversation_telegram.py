"""Conversation stories through the real aiogram Dispatcher with a recording Bot session."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.app import create_services
from handlers import callbacks as cb
from scheduler.downloads import retry_pending_downloads
from storage.models import (
    Answer,
    Attachment,
    AttachmentStatus,
    AuditLog,
    Invite,
    Response,
    ResponseStatus,
)
from tests.pg import settings_on_both_databases
from tests.walk import (
    NOTE,
    PDF,
    PNG,
    attachments,
    harness_for,
    position,
    press_payload,
    registered,
    response_of,
    started,
    walk_to_review,
)

# Every story runs on SQLite, and on PostgreSQL too when TEST_POSTGRES_URL is set.
settings = settings_on_both_databases()


async def count(services, model) -> int:
    async with services.sessions() as session:
        return await session.scalar(select(func.count()).select_from(model))


# --- registration -----------------------------------------------------------------------------


async def test_start_without_code_explains_how_to_get_one(services, region):
    user = harness_for(services).user(1001)
    await user.send("/start")
    user.expect("код приглашения", "/start КОД")
    await user.send("12")
    user.expect("не зарегистрированы")


async def test_invite_binds_the_account_to_its_school(services, region):
    harness = harness_for(services)
    user = await registered(harness, region)
    user.expect("зарегистрированы", "МБОУ СОШ № 1", "Северный район", "Мониторинг 2026")
    await user.click("▶ Начать заполнение")
    user.expect("Раздел 1.2.3 · вопрос 1 из 17", "Количество педагогических работников")


async def test_deep_link_code_is_case_and_space_tolerant(services, region):
    user = harness_for(services).user(1001)
    await user.send(f"/start  {region.codes['S2'].lower()} ")
    user.expect("МБОУ СОШ № 2")


@pytest.mark.parametrize("case", ["unknown", "used", "revoked"])
async def test_bad_codes_bind_nothing(services, region, case):
    harness = harness_for(services)
    code = region.codes["S1"]
    if case == "unknown":
        code = "NOSUCH99"
    elif case == "used":
        await registered(harness, region, user_id=1002)
    else:
        async with services.sessions() as session:
            invite = await session.scalar(select(Invite).where(Invite.code == code))
            invite.revoked_at = datetime.now(UTC)
            await session.commit()
    accounts_before = await count(services, Invite.__table__.metadata.tables["accounts"])
    user = harness.user(1001)
    await user.send(f"/start {code}")
    expected = {"unknown": "не найден", "used": "уже использован", "revoked": "не действует"}
    user.expect(expected[case])
    assert await count(services, Invite.__table__.metadata.tables["accounts"]) == accounts_before


async def test_registered_user_cannot_rebind_with_another_code(services, region):
    harness = harness_for(services)
    user = await registered(harness, region)
    await user.send(f"/start {region.codes['U1']}")
    user.expect("уже зарегистрированы", "МБОУ СОШ № 1")
    async with services.sessions() as session:
        invite = await session.scalar(select(Invite).where(Invite.code == region.codes["U1"]))
        assert invite.used_at is None


async def test_municipal_coordinator_invite(services, region):
    user = harness_for(services).user(1005)
    await user.send(f"/start {region.codes['Северный район']}")
    user.expect("муниципальный координатор", "Северный район")


async def test_bootstrap_admin_from_settings(services, region):
    admin = harness_for(services).user(900)
    await admin.send("/help")
    admin.expect("/export")


# --- the walk -----------------------------------------------------------------------------------


async def test_whole_form_with_documents_review_and_submit(services, region):
    _harness, user = await started(services, region)
    answered = await walk_to_review(services, user, yes=True)
    assert answered == 17  # a risk-zone school sees the three risk questions
    user.expect("Заполнено: 17 из 17", "Да 📎 pd_events.pdf")
    await user.click("📨 Отправить анкету")
    user.expect("Отправить анкету", "только координатор")
    await user.click("Да, отправить")
    user.expect("Спасибо! Анкета «Мониторинг 2026» отправлена")

    response = await response_of(services, region.school_ids["S1"])
    assert response.status == ResponseStatus.SUBMITTED
    assert response.submitted_at is not None
    stored = await attachments(services)
    assert len(stored) == 9  # every yes/no question got its document
    for attachment in stored:
        assert attachment.status == AttachmentStatus.STORED
        path = services.files.absolute(attachment.storage_path)
        assert path.read_bytes() == PDF
        assert attachment.sha256 in path.name
        assert Path(services.settings.storage.data_dir) in path.parents
    # After submit the response is locked.
    await user.send("/resume")
    user.expect("уже отправлена", "координатор")


async def test_no_answers_need_an_explanatory_note(services, region):
    _harness, user = await started(services, region, "S2")
    answered = await walk_to_review(services, user, yes=False)
    assert answered == 14  # no risk-zone block for an ordinary school
    async with services.sessions() as session:
        rows = list(await session.scalars(select(Answer)))
    notes = [a.note for a in rows if a.value is False]
    assert len(notes) == 6 and all(n == NOTE for n in notes)


async def test_counts_reject_bad_input_with_specific_messages(services, region):
    _harness, user = await started(services, region)
    for text, fragment in [
        ("-1", "отрицательным"),
        ("12.5", "целое"),
        ("двенадцать", "цифрами"),
        ("99999999", "Слишком большое"),
    ]:
        await user.send(text)
        user.expect(fragment, "Количество педагогических работников")
    assert await count(services, Answer) == 0
    await user.send(" 12 ")
    user.expect("✅ Сохранено", "вопрос 2 из 17")
    await user.send("13")
    user.expect("не может быть больше", "(12)")
    assert await count(services, Answer) == 1
    await user.send("12")
    user.expect("вопрос 3 из 17")


async def test_yes_no_needs_a_button_or_word(services, region):
    _harness, user = await started(services, region, past_counts=True)
    assert user.buttons()[:2] == ["Да", "Нет"]
    before = await count(services, Answer)
    await user.send("может быть")
    user.expect("«Да» или «Нет»")
    assert await count(services, Answer) == before
    await user.send("да")
    user.expect("Прикрепите подтверждающий документ")


async def _at_first_document(services, region):
    harness, user = await started(services, region, past_counts=True)
    await user.click("Да")
    return harness, user


async def test_bad_files_are_refused_and_nothing_is_written(services, region):
    harness, user = await _at_first_document(services, region)
    await user.send_photo()
    user.expect("как файл")
    await user.send_document(b"MZ\x90\x00binary", "setup.exe", "application/octet-stream")
    user.expect("не принимаются", "PDF")
    await user.send_document(b"just some text, not a pdf", "report.pdf", "application/pdf")
    user.expect("не похож на документ")
    big = b"%PDF" + b"0" * 16
    file_id = harness.new_file_id()
    harness.files[file_id] = big
    # A file the sender claims is 25 MB is refused before any download.
    from aiogram.types import Document

    await user.send_message(
        document=Document(
            file_id=file_id, file_unique_id="u-big", file_name="big.pdf", file_size=25 * 2**20
        )
    )
    user.expect("слишком большой", "20 МБ")
    assert await attachments(services) == []
    await user.click("✅ Готово") if "✅ Готово" in user.buttons() else None
    await user.send("готово")
    user.expect("нужен хотя бы один документ")


async def test_several_documents_and_an_image_file(services, region):
    _, user = await _at_first_document(services, region)
    await user.send_document(PDF, "приказ.pdf", "application/pdf")
    user.expect("«приказ.pdf» сохранён", "Прикреплено файлов: 1")
    await user.send_document(PNG, "скан.png", "image/png")
    user.expect("Прикреплено файлов: 2")
    await user.click("✅ Готово")
    user.expect("вопрос 10 из 17")
    stored = await attachments(services)
    assert [a.original_name for a in stored] == ["приказ.pdf", "скан.png"]
    assert [a.mime_type for a in stored] == ["application/pdf", "image/png"]


async def test_failed_download_is_retried_in_the_background(services, region):
    harness, user = await _at_first_document(services, region)
    harness.session.fail_downloads = True
    await user.send_document(PDF, "договор.pdf", "application/pdf")
    user.expect("принят", "Прикреплено файлов: 1")
    await user.click("✅ Готово")
    user.expect("вопрос 10 из 17")  # the conversation goes on
    [pending] = await attachments(services)
    assert pending.status == AttachmentStatus.PENDING and pending.storage_path is None
    harness.session.fail_downloads = False
    stored = await retry_pending_downloads(
        services.sessions, services.files, services.conversation.fetchers
    )
    assert stored == 1
    [done] = await attachments(services)
    assert done.status == AttachmentStatus.STORED
    assert services.files.absolute(done.storage_path).read_bytes() == PDF


async def test_a_file_instead_of_pressing_yes_means_yes(services, region):
    _harness, user = await started(services, region, past_counts=True)
    await user.send_document(PDF, "план.pdf", "application/pdf")
    user.expect("сохранён")
    mode, slot = await position(services, "tg", "1001")
    assert mode == "documents" and slot.question_id == "pd_events"


async def test_back_edit_and_review(services, region):
    _harness, user = await started(services, region)
    await user.send("20")
    await user.send("5")
    await user.click("◀ Назад")
    user.expect("вопрос 2 из 17", "Текущий ответ: 5")
    await user.send("6")
    user.expect("вопрос 3 из 17")
    await user.click("📋 Все ответы")
    user.expect("Заполнено: 2 из 17", "1. ", ": 20", ": 6", "не заполнено")
    await user.click("1")
    user.expect("вопрос 1 из 17", "Текущий ответ: 20")
    await user.send("30")
    user.expect("Заполнено: 2 из 17", ": 30")  # back on the review after an edit
    await user.send("2")  # typing a number also opens that answer
    user.expect("вопрос 2 из 17")


async def test_submit_with_missing_answers_goes_to_the_first_gap(services, region):
    _harness, user = await started(services, region)
    await user.send("20")
    await user.click("📋 Все ответы")
    await user.click("📨 Отправить анкету")
    user.expect("нельзя отправить", "вопрос 2 из 17")
    response = await response_of(services, region.school_ids["S1"])
    assert response.status == ResponseStatus.DRAFT


async def test_lowering_the_total_later_blocks_submit(services, region):
    _harness, user = await started(services, region)
    await walk_to_review(services, user)
    await user.click("1")
    await user.send("3")  # fewer teachers than the counts already given (5)
    await user.click("📨 Отправить анкету")
    user.expect("нельзя отправить")
    assert (await response_of(services, region.school_ids["S1"])).status == ResponseStatus.DRAFT


# --- durability and scope ---------------------------------------------------------------------


async def test_restart_resumes_exactly_where_the_user_stopped(settings, region):
    services = region.services
    _harness, user = await started(services, region)
    for text in ("20", "5", "4"):
        await user.send(text)
    await services.close()

    restarted = await create_services(settings)
    try:
        harness2 = harness_for(restarted)
        again = harness2.user(1001, "Анна")
        await again.send("/resume")
        again.expect("вопрос 4 из 17", "психолого-педагогических")
        await again.send("3")
        again.expect("вопрос 5 из 17")
        async with restarted.sessions() as session:
            assert await session.scalar(select(func.count()).select_from(Answer)) == 4
    finally:
        await restarted.close()


async def test_forged_button_cannot_touch_another_schools_response(services, region):
    harness = harness_for(services)
    anna = await registered(harness, region, "S1", 1001)
    await anna.click("▶ Начать заполнение")
    await anna.send("20")
    victim = await response_of(services, region.school_ids["S1"])
    boris = await registered(harness, region, "U1", 1002)
    await boris.click("▶ Начать заполнение")
    audit_before = await count(services, AuditLog)
    for payload in (
        cb.encode(cb.Action.ANSWER, victim.id, "teachers_total", 0, "1"),
        cb.encode(cb.Action.EDIT, victim.id, "teachers_total", 0),
        cb.encode(cb.Action.CONFIRM, victim.id),
        cb.encode(cb.Action.SKIP, victim.id),
        cb.encode(cb.Action.CAMPAIGN, 999),
    ):
        await press_payload(harness, boris, payload)
        boris.expect("недоступна")
    await boris.send("7")  # his own walk is untouched: this answers his first question
    async with services.sessions() as session:
        anna_answers = list(
            await session.scalars(select(Answer).where(Answer.response_id == victim.id))
        )
        assert [(a.question_id, a.value) for a in anna_answers] == [("teachers_total", 20)]
        status = await session.scalar(select(Response.status).where(Response.id == victim.id))
        assert status == ResponseStatus.DRAFT
        assert await session.scalar(select(func.count()).select_from(AuditLog)) == audit_before + 1


async def test_stale_answer_button_does_not_answer_another_question(services, region):
    harness, user = await started(services, region, past_counts=True)
    first_keyboard = user.keyboard()
    assert [b.text for b in first_keyboard[0]] == ["Да", "Нет"]
    await user.click("Нет")
    await user.send(NOTE)
    response = await response_of(services, region.school_ids["S1"])
    stale = cb.encode(cb.Action.ANSWER, response.id, "pd_events", 0, "y")
    await press_payload(harness, user, stale)
    user.expect("другому вопросу")
    async with services.sessions() as session:
        value = await session.scalar(select(Answer.value).where(Answer.question_id == "pd_events"))
    assert value is False
    assert await count(services, Attachment) == 0
