"""Test helpers that drive a user through a form by asking the database where they are."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from aiogram.types import CallbackQuery, Message, Update
from sqlalchemy import select

from bot.app import Services
from forms.engine import Slot
from forms.schema import QuestionKind
from storage.models import Account, Attachment, ConversationState, Response
from tests.tg_harness import TgHarness

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
NOTE = "Работа запланирована на следующий учебный год, приказ готовится."


async def position(services: Services, platform: str, user_id: str) -> tuple[str, Slot | None]:
    async with services.sessions() as session:
        account = await session.scalar(
            select(Account).where(Account.platform == platform, Account.platform_user_id == user_id)
        )
        state = await session.get(ConversationState, account.id)
        slot = Slot(state.question_id, state.row) if state.question_id else None
        return state.mode, slot


async def response_of(services: Services, school_id: int) -> Response | None:
    async with services.sessions() as session:
        return await session.scalar(select(Response).where(Response.school_id == school_id))


async def attachments(services: Services) -> list[Attachment]:
    async with services.sessions() as session:
        return list(await session.scalars(select(Attachment).order_by(Attachment.id)))


def integer_answer(question_id: str) -> str:
    return "20" if question_id == "teachers_total" else "5"


async def walk_to_review(
    services: Services,
    user,
    *,
    yes: bool = True,
    limit: int = 80,
    platform: str = "tg",
    attach: Callable[[bytes, str], Awaitable[object]] | None = None,
) -> int:
    """Answer every question until the review screen, on any platform's harness (``attach``
    sends a file the way that platform's user does; Telegram's by default).

    Returns the number of questions answered. «Да» answers attach a PDF and press «Готово»;
    «Нет» answers write an explanatory note.
    """
    engine = services.forms.engine("shnor_school", 1)
    send_file = attach or (lambda data, name: user.send_document(data, name, "application/pdf"))
    answered = 0
    for _ in range(limit):
        mode, slot = await position(services, platform, str(user.user_id))
        if mode == "review":
            return answered
        assert slot is not None, f"no current question in mode {mode}"
        question = engine.question(slot.question_id)
        if mode == "documents":
            await send_file(PDF, f"{slot.question_id}.pdf")
            await user.click("✅ Готово")
        elif mode == "note":
            await user.send(NOTE)
        elif question.kind == QuestionKind.YES_NO:
            await user.click("Да" if yes else "Нет")
            answered += 1
        elif question.kind == QuestionKind.INTEGER:
            await user.send(integer_answer(slot.question_id))
            answered += 1
        elif question.kind == QuestionKind.TEXT:
            await user.send("Текст ответа")
            answered += 1
        else:
            raise AssertionError(f"unexpected kind {question.kind}")
    raise AssertionError("the walk did not reach the review screen")


# --- driving a registered director through the Telegram harness ------------------------------


def harness_for(services: Services) -> TgHarness:
    from bot.telegram import TelegramFileFetcher

    harness = TgHarness.for_core(services.conversation)
    services.conversation.register_fetcher("tg", TelegramFileFetcher(harness.bot))
    return harness


async def registered(harness: TgHarness, region, school_code: str = "S1", user_id: int = 1001):
    user = harness.user(user_id, "Анна")
    await user.send(f"/start {region.codes[school_code]}")
    return user


async def started(services: Services, region, school_code: str = "S1", *, past_counts=False):
    """A registered director at the first question (or at the first yes/no question)."""
    harness = harness_for(services)
    user = await registered(harness, region, school_code)
    await user.click("▶ Начать заполнение")
    if past_counts:
        for _ in range(8):
            await user.send("10")
    return harness, user


async def press_payload(harness: TgHarness, user, payload: str) -> None:
    """Press a button with any payload, as a forged or stale client would."""
    message = Message(
        message_id=1, date=datetime.now(UTC), chat=user.chat, text="…", from_user=user.tg_user
    )
    callback = CallbackQuery(
        id=harness.next_callback_id(),
        from_user=user.tg_user,
        chat_instance="ci",
        message=message,
        data=payload,
    )
    harness.session.callback_chats[callback.id] = user.chat_id
    await user._act(Update(update_id=harness.next_update_id(), callback_query=callback))
