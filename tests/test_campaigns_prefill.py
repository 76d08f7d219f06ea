"""«Start from last time»: a new campaign of the same form offers the director their last
submitted answers, once; answers and documents are copied, and a document is asked for again
only where the answer changed."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from storage.admin import close_campaign, open_campaign
from storage.models import Answer, Attachment, AuditLog, Response, ResponseStatus
from tests.walk import (
    NOTE,
    harness_for,
    press_payload,
    registered,
    started,
    walk_to_review,
)

OFFER = "Начать новую анкету с них?"


async def second_campaign(services, region) -> int:
    """Close the region's campaign and open the same form again."""
    today = services.conversation.today()
    async with services.sessions() as session:
        await close_campaign(session, region.campaign_id)
        campaign, _ = await open_campaign(
            session,
            services.forms.latest("shnor_school"),
            today + timedelta(days=30),
            today,
            "Мониторинг 2027",
        )
        await session.commit()
    return campaign.id


async def submitted_director(services, region):
    harness, user = await started(services, region)
    await walk_to_review(services, user)
    await user.click("📨 Отправить анкету")
    await user.click("Да, отправить")
    user.expect("отправлена")
    return harness, user


async def rows(services, model, response_id: int):
    async with services.sessions() as session:
        return list(
            await session.scalars(
                select(model).where(model.response_id == response_id).order_by(model.id)
            )
        )


async def response_for(services, campaign_id: int) -> Response | None:
    async with services.sessions() as session:
        return await session.scalar(select(Response).where(Response.campaign_id == campaign_id))


async def test_the_last_answers_are_offered_copied_with_documents_and_can_be_sent(services, region):
    _harness, user = await submitted_director(services, region)
    first = await response_for(services, region.campaign_id)
    campaign_id = await second_campaign(services, region)
    await user.send("/start")
    await user.click("▶ Начать заполнение")
    offer = user.expect(OFFER, "№1 «Мониторинг 2026»")
    assert user.buttons() == ["📋 Взять прошлые ответы", "Начать с чистого листа"]
    assert await response_for(services, campaign_id) is None  # nothing before the choice
    await user.click("📋 Взять прошлые ответы")
    old_answers = await rows(services, Answer, first.id)
    old_files = await rows(services, Attachment, first.id)
    review = user.expect(
        f"Перенесено из анкеты №1: ответов {len(old_answers)}, документов {len(old_files)}",
        "Ваши ответы — «Мониторинг 2027»",
    )
    assert "📎" in review and offer
    new = await response_for(services, campaign_id)
    new_answers = await rows(services, Answer, new.id)
    assert [(a.question_id, a.row, a.value, a.note) for a in new_answers] == [
        (a.question_id, a.row, a.value, a.note) for a in old_answers
    ]
    new_files = await rows(services, Attachment, new.id)
    assert [(f.question_id, f.sha256, f.storage_path) for f in new_files] == [
        (f.question_id, f.sha256, f.storage_path) for f in old_files
    ]
    await user.click("📨 Отправить анкету")
    await user.click("Да, отправить")
    user.expect("«Мониторинг 2027»", "отправлена")
    new = await response_for(services, campaign_id)
    assert new.status == ResponseStatus.SUBMITTED
    assert len(await rows(services, Attachment, first.id)) == len(old_files)  # untouched
    async with services.sessions() as session:
        audit = await session.scalar(select(AuditLog).where(AuditLog.action == "prefill_response"))
    assert audit.entity_id == new.id and audit.details["source"] == first.id


async def test_a_document_is_asked_again_only_where_the_answer_changed(services, region):
    _harness, user = await submitted_director(services, region)
    campaign_id = await second_campaign(services, region)
    await user.send("/start")
    await user.click("▶ Начать заполнение")
    await user.click("📋 Взять прошлые ответы")
    await user.click("9")  # a «да» with a document
    await user.click("Нет")
    user.expect("пояснительную записку")
    await user.send(NOTE)
    review = user.expect("Ваши ответы")
    line_9 = next(line for line in review.splitlines() if line.startswith("9."))
    line_10 = next(line for line in review.splitlines() if line.startswith("10."))
    assert "Нет" in line_9 and "📎" not in line_9
    assert "📎" in line_10  # unchanged: its document stays
    await user.click("10")
    await user.click("Да")  # the same answer: its file is listed, none is demanded
    files_step = user.expect("curator_assigned.pdf")
    assert "хотя бы один документ" not in files_step
    await user.click("✅ Готово")
    user.expect("Ваши ответы")
    new = await response_for(services, campaign_id)
    assert {f.question_id for f in await rows(services, Attachment, new.id)} >= {"curator_assigned"}


async def test_starting_from_scratch_copies_nothing_and_the_offer_comes_once(services, region):
    _harness, user = await submitted_director(services, region)
    campaign_id = await second_campaign(services, region)
    await user.send("/start")
    await user.click("▶ Начать заполнение")
    await user.click("Начать с чистого листа")
    user.expect("вопрос 1 из")
    new = await response_for(services, campaign_id)
    assert await rows(services, Answer, new.id) == []
    await user.send("20")
    await user.send("/start")
    await user.click("▶ Начать заполнение")
    assert not [t for t in user.texts() if OFFER in t]
    user.expect("вопрос 2 из")
    # a stale «take the last answers» button once the response exists copies nothing
    await press_payload(_harness, user, f"c|{campaign_id}|prev")
    assert len(await rows(services, Answer, new.id)) == 1


async def test_no_offer_without_a_submitted_response_of_the_same_school(services, region):
    await submitted_director(services, region)  # S1 submitted
    campaign_id = await second_campaign(services, region)
    harness = harness_for(services)
    other = await registered(harness, region, "S2", user_id=2002)
    await other.click("▶ Начать заполнение")
    assert not [t for t in other.texts() if OFFER in t]
    other.expect("вопрос 1 из")
    async with services.sessions() as session:
        copied = await session.scalar(
            select(func.count()).select_from(AuditLog).where(AuditLog.action == "prefill_response")
        )
    assert copied == 0
    # a forged «take the last answers» for S2 finds nothing of S2's to copy
    await press_payload(harness, other, f"c|{campaign_id}|prev")
    new = await response_for(services, campaign_id)
    assert new.school_id == region.school_ids["S2"]
    assert await rows(services, Answer, new.id) == []
