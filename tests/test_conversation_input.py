"""Typed input the conversation must not misread: paths, forged payloads, repeated /start."""

from __future__ import annotations

from sqlalchemy import func, select

from handlers import callbacks as cb
from storage.models import Answer, AuditLog
from tests.walk import harness_for, position, press_payload, registered, response_of, started


async def _count(services, model) -> int:
    async with services.sessions() as session:
        return await session.scalar(select(func.count()).select_from(model))


async def test_a_missing_absolute_path_is_ordinary_text_not_a_command(services, region):
    _harness, user = await started(services, region)
    await user.send("/home/user/file.pdf")
    text = user.expect("Количество педагогических работников")
    assert "Такой команды нет" not in text
    assert "цифрами" in text  # taken as an answer to the number question, and refused
    assert await _count(services, Answer) == 0
    await user.send("/nosuchcommand")
    user.expect("Такой команды нет")


async def test_a_path_typed_at_a_document_step_asks_for_the_file_itself(services, region):
    _harness, user = await started(services, region, past_counts=True)
    await user.click("Да")
    for path in ("/home/user/scan.pdf", "/tmp/docs/приказ"):
        await user.send(path)
        text = user.expect("сам файл")
        assert "Такой команды нет" not in text
    mode, slot = await position(services, "tg", "1001")
    assert mode == "documents" and slot.question_id == "pd_events"


async def test_a_known_command_with_a_dot_in_its_args_is_still_the_command(services, region):
    _harness, user = await started(services, region)
    await user.send("/help please.")
    user.expect("/resume")


async def test_integers_beyond_64_bits_in_a_button_are_refused_like_forged_ones(services, region):
    harness, user = await started(services, region)
    await user.send("20")
    response = await response_of(services, region.school_ids["S1"])
    audit_before = await _count(services, AuditLog)
    huge = str(2**63)
    for payload in (
        f"{cb.Action.REVIEW}|{huge}",
        f"{cb.Action.REVIEW}|{2**31}",
        f"{cb.Action.CAMPAIGN}|{huge}",
        f"{cb.Action.EDIT}|{huge}|teachers_total|0",
        f"{cb.Action.SUBMIT}|-{huge}",
        f"{cb.Action.REVIEW}|١٢",  # digits of another script are not an id either
    ):
        await press_payload(harness, user, payload)
        text = user.expect("недоступна")
        assert "ошибка" not in text
    # a huge row number in the sender's own response is a stale button, not a crash
    await press_payload(harness, user, cb.encode(cb.Action.ANSWER, response.id, "iom", huge, "1"))
    user.expect("другому вопросу")
    assert await _count(services, AuditLog) == audit_before


def test_int_arg_accepts_only_plain_numbers_an_id_column_can_hold():
    """The ids a button names are INTEGER (32-bit) in PostgreSQL: a bigger one would reach
    the query and fail there (asyncpg: «value out of int32 range»), not be refused."""
    payload = cb.decode(f"v|{2**31 - 1}|{2**31}|12|+3| 4|0|{2**63}")
    assert payload is not None
    assert payload.int_arg(0) == 2**31 - 1
    assert [payload.int_arg(i) for i in range(1, 7)] == [None, 12, None, None, 0, None]


async def test_start_with_a_code_when_registered_offers_a_continue_button(services, region):
    harness = harness_for(services)
    user = await registered(harness, region)
    await user.click("▶ Начать заполнение")
    await user.send("20")
    await user.send(f"/start {region.codes['S1']}")
    user.expect("уже зарегистрированы", "«▶ Продолжить»")
    assert "▶ Продолжить" in user.buttons()
    await user.click("▶ Продолжить")
    user.expect("вопрос 2 из 17")
