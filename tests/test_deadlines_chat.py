"""«Мои сроки» in chat: the list, marking done with evidence, completion per school."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from forms.loader import load_bundled
from handlers import deadlines_chat
from handlers.conversation import Conversation, CoreConfig
from handlers.registry import FormRegistry
from handlers.types import (
    EventKind,
    Incoming,
    IncomingDocument,
    OutText,
    Platform,
    UserRef,
)
from storage.files import FileStore
from storage.models import Account, ItemCompletion, Person
from tests.reminder_helpers import (
    FixedClock,
    World,
    add_roadmap,
    build_world,
    roadmap,
    sqlite_db,
)

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
ITEMS = [
    ("1", "Назначить ответственных", "До 15.02.2023", ["director", "municipal"]),
    ("2", "Входной мониторинг", "01.02-15.05.2023", ["director"]),
    ("3", "Совещание в районе", "До 20.02.2023", ["municipal"]),
    ("4", "Семинар для директоров", "До 10.02.2023", ["director"]),
]


class WiredConversation(Conversation):
    """The conversation with the delegations deadlines_chat needs for buttons and files."""

    async def _button(self, turn, payload):
        if payload is not None and payload.action == deadlines_chat.ACTION:
            await deadlines_chat.button(self, turn, payload)
            return
        await super()._button(turn, payload)

    async def _file(self, turn):
        if turn.state.mode == deadlines_chat.MODE:
            await deadlines_chat.file(self, turn)
            return
        await super()._file(turn)

    async def _text(self, turn, text):
        if turn.state.mode == deadlines_chat.MODE:
            await deadlines_chat.text(self, turn, text)
            return
        await super()._text(turn, text)


class Fetcher:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    async def fetch(self, file_id: str, dest: Path) -> None:
        dest.write_bytes(self.files[file_id])


@pytest.fixture
async def world(tmp_path: Path):
    _, engine, sessions = await sqlite_db(tmp_path)
    w = await build_world(sessions, engine)
    await add_roadmap(w, roadmap(ITEMS))
    yield w
    await engine.dispose()


@pytest.fixture
def fetcher() -> Fetcher:
    return Fetcher()


@pytest.fixture
def conv(world: World, tmp_path: Path, fetcher: Fetcher) -> Conversation:
    clock = FixedClock(datetime(2023, 2, 12, 8, 0, tzinfo=UTC))
    return WiredConversation(
        world.sessions,
        FormRegistry(load_bundled()),
        FileStore(tmp_path / "files"),
        CoreConfig(admins=(("tg", "admin"),)),
        fetchers={"tg": fetcher},
        clock=clock,
    )


def user(chat: str) -> UserRef:
    return UserRef(Platform.TELEGRAM, chat, chat, f"Человек {chat}")


async def say(conv: Conversation, chat: str, text: str) -> list[OutText]:
    if text.startswith("/"):
        command, _, args = text[1:].partition(" ")
        event = Incoming(user(chat), EventKind.COMMAND, text, command=command, args=args)
    else:
        event = Incoming(user(chat), EventKind.TEXT, text)
    return await conv.handle(event)


async def press(conv: Conversation, chat: str, payload: str) -> list[OutText]:
    return await conv.handle(Incoming(user(chat), EventKind.BUTTON, payload=payload))


async def send_file(conv: Conversation, chat: str, file_id: str, name: str) -> list[OutText]:
    document = IncomingDocument(file_id, name, "application/pdf", len(PDF))
    return await conv.handle(Incoming(user(chat), EventKind.DOCUMENT, document=document))


async def test_director_sees_own_items_and_progress(conv: Conversation) -> None:
    (reply,) = await say(conv, "d1", "/deadlines")
    text = reply.text
    assert text.startswith("📅 Мои сроки — Школа 1")
    assert "⚠️ п. 4 — срок был 10 февраля 2023 г.: Семинар для директоров" in text
    assert "• п. 1 — до 15 февраля 2023 г.: Назначить ответственных" in text
    assert "Совещание в районе" not in text  # a municipal item
    assert "Подтверждение: Справка к п. 1" in text
    assert "Исполнение: 0% (0 из 3). Просрочено: 1. Ориентир: 30-40% к 30 июня 2023 г.\n" in text
    assert "• п. 2 — до 15 мая 2023 г.: Входной мониторинг" in text  # under way since 01.02
    payloads = [b.payload for row in reply.buttons for b in row]
    assert payloads[0].startswith("r|d|") and payloads[0].endswith("|20230210")
    assert "/deadlines done 4" in text


async def test_mark_done_with_a_reference_in_the_command(conv: Conversation, world: World) -> None:
    (reply,) = await say(conv, "d1", "/deadlines done 1 Приказ № 12 от 01.02.2023")
    assert reply.text.startswith(
        "✅ П. 1 отмечен выполненным, подтверждение: «Приказ № 12 от 01.02.2023»."
    )
    assert "Исполнение: 33% (1 из 3)" in reply.text
    (again,) = await say(conv, "d2", "/deadlines done 1 Приказ 7")  # Школа 2: its own
    assert again.text.startswith("✅ П. 1")
    (twice,) = await say(conv, "d1", "/deadlines done 1")
    assert twice.text == "Все сроки п. 1 уже отмечены. Список: /deadlines"
    (unknown,) = await say(conv, "d1", "/deadlines done 3")  # municipal, not for a school
    assert unknown.text.startswith("Пункт «3» не найден")
    async with world.sessions() as session:
        rows = list(await session.scalars(select(ItemCompletion)))
    assert {r.respondent_key for r in rows} == {
        f"school:{world.schools['Школа 1']}",
        f"school:{world.schools['Школа 2']}",
    }
    (listing,) = await say(conv, "d1", "/deadlines")
    assert "Назначить ответственных" not in listing.text


async def test_mark_done_with_an_evidence_file(
    conv: Conversation, world: World, fetcher: Fetcher
) -> None:
    (listing,) = await say(conv, "d1", "/deadlines")
    button = next(b for row in listing.buttons for b in row if b.text == "✅ п. 2")
    (ask,) = await press(conv, "d1", button.payload)
    assert ask.text.startswith("Отмечаем п. 2: Входной мониторинг")
    assert "«Справка к п. 2»" in ask.text
    (short,) = await say(conv, "d1", "ок")
    assert short.text.startswith("Напишите реквизиты документа подробнее")
    fetcher.files["f1"] = PDF
    (done,) = await send_file(conv, "d1", "f1", "справка.pdf")
    assert done.text.startswith("✅ П. 2 отмечен выполненным, документ «справка.pdf» сохранён.")
    async with world.sessions() as session:
        completion = await session.scalar(select(ItemCompletion))
    assert completion.evidence_name == "справка.pdf"
    assert completion.evidence_path and completion.evidence_mime == "application/pdf"
    assert completion.due_on == date(2023, 5, 15)
    assert completion.done_by is not None
    (after,) = await say(conv, "d1", "привет")  # back to the usual conversation
    assert "/resume" in after.text


async def test_a_stale_request_does_not_swallow_later_messages(
    conv: Conversation, world: World
) -> None:
    (listing,) = await say(conv, "d1", "/deadlines")
    await press(conv, "d1", listing.buttons[0][0].payload)
    conv.clock.set(conv.clock() + timedelta(hours=2))
    (reply,) = await say(conv, "d1", "Когда будет следующая анкета?")
    assert "/resume" in reply.text  # the usual answer, not a completion
    async with world.sessions() as session:
        assert await session.scalar(select(ItemCompletion)) is None


async def test_cancel_and_foreign_buttons(conv: Conversation, world: World) -> None:
    (listing,) = await say(conv, "d1", "/deadlines")
    payload = listing.buttons[0][0].payload
    await press(conv, "d1", payload)
    (cancelled,) = await say(conv, "d1", "Отмена")
    assert cancelled.text.startswith("Хорошо, отметка отменена")
    (foreign,) = await press(conv, "d5", payload)  # Kalmykia: not in this roadmap
    assert foreign.text.startswith("Этот пункт не относится к вам")
    (forged,) = await press(conv, "d1", payload[:-8] + "20230101")
    assert forged.text.startswith("Этот пункт не относится к вам")
    async with world.sessions() as session:
        assert await session.scalar(select(ItemCompletion)) is None


async def test_municipal_coordinator_sees_schools(conv: Conversation, world: World) -> None:
    await say(conv, "d1", "/deadlines done 1 Приказ № 12 от 01.02.2023")
    async with world.sessions() as session:
        account = await session.get(Account, world.accounts["d2"])
        account.unreachable_since = datetime(2023, 2, 1, tzinfo=UTC)
        await session.commit()
    (reply,) = await say(conv, "m1", "/deadlines")
    text = reply.text
    assert text.startswith("📅 Мои сроки — Гурьевский округ")
    assert "п. 3 — до 20 февраля 2023 г.: Совещание в районе" in text
    assert "Школы:" in text
    assert "• Школа 1 — 33%, просрочено 1" in text
    assert "• Школа 2 — 0%, просрочено 1" in text
    assert "🔕 Не получают напоминания (заблокировали бота): Школа 2 (Человек d2)" in text
    (done,) = await say(conv, "m1", "/deadlines done 3 Протокол совещания № 1")
    assert done.text.startswith("✅ П. 3 отмечен выполненным")


async def test_regional_coordinator_and_admin(conv: Conversation, world: World) -> None:
    (reply,) = await say(conv, "r1", "/deadlines")
    assert "Муниципалитеты:" in reply.text
    assert "Гурьевский округ — 0%" in reply.text
    (admin,) = await say(conv, "admin", "/deadlines")
    assert admin.text.startswith("Напоминания: нет")
    async with world.sessions() as session:
        assert await session.scalar(select(Person).where(Person.role == "admin")) is not None
