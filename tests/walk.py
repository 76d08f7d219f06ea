"""Test helpers that drive a user through a form by asking the database where they are."""

from __future__ import annotations

from sqlalchemy import select

from bot.app import Services
from forms.engine import Slot
from forms.schema import QuestionKind
from storage.models import Account, Attachment, ConversationState, Response

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


async def walk_to_review(services: Services, user, *, yes: bool = True, limit: int = 80) -> int:
    """Answer every question through the Telegram harness until the review screen.

    Returns the number of questions answered. «Да» answers attach a PDF and press «Готово»;
    «Нет» answers write an explanatory note.
    """
    engine = services.forms.engine("shnor_school", 1)
    answered = 0
    for _ in range(limit):
        mode, slot = await position(services, "tg", str(user.user_id))
        if mode == "review":
            return answered
        assert slot is not None, f"no current question in mode {mode}"
        question = engine.question(slot.question_id)
        if mode == "documents":
            await user.send_document(PDF, f"{slot.question_id}.pdf", "application/pdf")
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
