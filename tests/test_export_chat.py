"""/export in the chat, for each role; through the core and through the Telegram adapter."""

from __future__ import annotations

import asyncio
import io
import itertools
import logging
import zipfile

import pytest
from aiogram.methods import EditMessageText
from openpyxl import load_workbook
from sqlalchemy import select

import handlers.export_chat as export_chat
from bot.telegram import TelegramMessenger
from handlers.types import (
    Button,
    EventKind,
    Incoming,
    OutFile,
    Outgoing,
    OutText,
    Platform,
    UserRef,
)
from storage.models import Attachment, Role
from tests.export_fixtures import ADMIN_ID, MUN_A, MUN_B, add_person, built_region
from tests.tg_harness import TgHarness

DIRECTOR_ID = "501"  # the fixture's director of A1
MUNICIPAL_ID, REGIONAL_ID = "200", "300"


class RecordingMessenger:
    """Keeps what the bot sends on its own; files are read at once (they are deleted after)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Outgoing]] = []
        self.files: dict[str, bytes] = {}
        self.edits: list[tuple[str, str, str]] = []
        self._ids = itertools.count(1000)

    async def send(self, chat_id: str, message: Outgoing) -> str | None:
        self.sent.append((chat_id, message))
        if isinstance(message, OutFile):
            self.files[message.filename] = message.path.read_bytes()
        return str(next(self._ids))

    async def edit(self, chat_id: str, message_id: str, message: OutText) -> None:
        self.edits.append((chat_id, message_id, message.text))

    def texts(self) -> list[str]:
        sent = [m.text for _, m in self.sent if isinstance(m, OutText)]
        return sent + [text for _, _, text in self.edits]


@pytest.fixture
async def services(tmp_path, tmp_path_factory):
    region = built_region(tmp_path_factory)
    services = await region.open(tmp_path)
    await add_person(
        services, Role.MUNICIPAL, MUNICIPAL_ID, municipality_id=region.municipalities[MUN_B]
    )
    await add_person(services, Role.REGIONAL, REGIONAL_ID)
    services.conversation.exports.progress_every = 0.01
    yield services
    await services.conversation.exports.wait()
    await services.close()


@pytest.fixture
def messenger(services) -> RecordingMessenger:
    recording = RecordingMessenger()
    services.conversation.messengers[str(Platform.TELEGRAM)] = recording
    return recording


def user(user_id: str) -> UserRef:
    return UserRef(Platform.TELEGRAM, user_id, user_id, f"user {user_id}")


async def command(services, user_id: str, text: str = "/export") -> list[Outgoing]:
    name, _, args = text.lstrip("/").partition(" ")
    event = Incoming(user(user_id), EventKind.COMMAND, text=text, command=name, args=args)
    return await services.conversation.handle(event)


async def press(services, user_id: str, button: Button) -> list[Outgoing]:
    event = Incoming(user(user_id), EventKind.BUTTON, payload=button.payload)
    return await services.conversation.handle(event)


def buttons(replies: list[Outgoing]) -> dict[str, Button]:
    return {b.text: b for m in replies if isinstance(m, OutText) for row in m.buttons for b in row}


def workbook_rows(data: bytes, title: str) -> list[dict]:
    rows = list(load_workbook(io.BytesIO(data))[title].iter_rows(values_only=True))
    return [dict(zip(rows[0], row, strict=False)) for row in rows[2:]]


async def test_admin_picks_a_campaign_and_gets_table_and_documents(services, messenger):
    replies = await command(services, ADMIN_ID)
    choices = buttons(replies)
    assert replies[0].text == export_chat.CHOOSE_CAMPAIGN
    assert list(choices) == [
        "№3 Отчёт о программе 2024",
        "№2 Муниципальный мониторинг 2024",
        "№1 Мониторинг ШНОР 2024",
        export_chat.BTN_ALL,
    ]
    replies = await press(services, ADMIN_ID, choices["№1 Мониторинг ШНОР 2024"])
    assert replies[0].text.startswith("Выгрузить только таблицу или вместе с документами")
    replies = await press(services, ADMIN_ID, buttons(replies)[export_chat.BTN_DOCUMENTS])
    assert replies == []  # the reply comes from the background, the chat is free at once
    await services.conversation.exports.wait()

    first_chat, first = messenger.sent[0]
    assert first_chat == ADMIN_ID and first.text.startswith("⏳ Готовлю выгрузку «Мониторинг ШНОР")
    assert messenger.edits[-1][2].startswith("✅ Выгрузка «Мониторинг ШНОР 2024» готова")
    assert "анкет 4 из 5" in messenger.edits[-1][2]
    files = [m for _, m in messenger.sent if isinstance(m, OutFile)]
    assert [f.filename.rsplit(".", 1)[1] for f in files] == ["xlsx", "zip"]
    assert files[0].caption.startswith("Выгрузка «Мониторинг ШНОР 2024» на ")
    data = messenger.files[files[0].filename]
    assert load_workbook(io.BytesIO(data)).sheetnames[0] == "Ответы — Анкета ОО"
    rows = workbook_rows(data, "Ответы — Анкета ОО")
    assert {r["campaign_id"] for r in rows} == {1}
    assert {r["municipality"] for r in rows} == {MUN_A, MUN_B}
    with zipfile.ZipFile(io.BytesIO(messenger.files[files[1].filename])) as archive:
        assert (
            f"{MUN_A}/Школа №1/1.2.4 вопрос 9 «Участие в мероприятиях по профмастерству» "
            "pd_events.pdf"
        ) in archive.namelist()
    assert not any(p.is_file() for p in (services.files.root / "tmp").rglob("*.xlsx"))


async def test_municipal_coordinator_gets_only_their_municipality(services, messenger):
    replies = await command(services, MUNICIPAL_ID)
    replies = await press(services, MUNICIPAL_ID, buttons(replies)[export_chat.BTN_ALL])
    replies = await press(services, MUNICIPAL_ID, buttons(replies)[export_chat.BTN_TABLE])
    await services.conversation.exports.wait()
    files = [m for _, m in messenger.sent if isinstance(m, OutFile)]
    assert len(files) == 1 and files[0].filename.endswith(".xlsx")  # the table only
    data = messenger.files[files[0].filename]
    titles = ["Ответы — Анкета ОО", "Ответы — Анкета муниципалитета", "Показатели"]
    titles += ["Муниципалитеты", "Прогресс", "Готовность"]
    assert load_workbook(io.BytesIO(data)).sheetnames[:2] == titles[:2]  # no report from B1
    for title in titles:
        assert {r["municipality"] for r in workbook_rows(data, title)} == {MUN_B}, title
    assert MUN_A.encode() not in b"".join(
        zipfile.ZipFile(io.BytesIO(data)).read(n)
        for n in zipfile.ZipFile(io.BytesIO(data)).namelist()
    )


async def test_regional_coordinator_exports_everything(services, messenger):
    replies = await command(services, REGIONAL_ID, "/export 2")  # a campaign by its number
    assert replies[0].text.startswith("Выгрузить только таблицу")
    await press(services, REGIONAL_ID, buttons(replies)[export_chat.BTN_TABLE])
    await services.conversation.exports.wait()
    files = [m for _, m in messenger.sent if isinstance(m, OutFile)]
    rows = workbook_rows(messenger.files[files[0].filename], "Прогресс")
    assert len(rows) == 3 and {r["campaign_id"] for r in rows} == {2}


async def test_directors_are_refused_politely(services, messenger):
    replies = await command(services, DIRECTOR_ID)
    assert replies[0].text == export_chat.NOT_FOR_DIRECTORS
    forged = Button("x", export_chat._payload(export_chat.TABLE, "1"))
    replies = await press(services, DIRECTOR_ID, forged)
    assert replies[0].text == export_chat.NOT_FOR_DIRECTORS
    await services.conversation.exports.wait()
    assert messenger.sent == []


async def test_forged_or_stale_buttons(services, messenger):
    for payload in ("x|t|99", "x|z|1", "x|t|"):
        replies = await press(services, MUNICIPAL_ID, Button("x", payload))
        assert replies[0].text == export_chat.STALE
    await services.conversation.exports.wait()
    assert messenger.sent == []


async def test_too_big_for_the_chat_says_how_to_use_the_cli(services, messenger, monkeypatch):
    monkeypatch.setitem(export_chat.UPLOAD_LIMITS, "tg", 100)
    replies = await command(services, MUNICIPAL_ID, "/export 1")
    await press(services, MUNICIPAL_ID, buttons(replies)[export_chat.BTN_DOCUMENTS])
    await services.conversation.exports.wait()
    assert not any(isinstance(m, OutFile) for _, m in messenger.sent)
    texts = messenger.texts()
    for start in ("Файл получился слишком большим", "Архив документов слишком большой"):
        line = next(t for t in texts if t.startswith(start))
        assert (
            "python3 scripts/dev.py export --out выгрузка.xlsx --campaign 1 "
            '--municipality "Борисовский район" --documents документы.zip'
        ) in line


async def test_the_bot_keeps_answering_during_an_export(services, messenger, monkeypatch):
    release = asyncio.Event()
    real = export_chat.run_export

    async def slow_export(*args, **kwargs):
        await release.wait()
        return await real(*args, **kwargs)

    monkeypatch.setattr(export_chat, "run_export", slow_export)
    replies = await command(services, REGIONAL_ID, "/export 2")
    await press(services, REGIONAL_ID, buttons(replies)[export_chat.BTN_TABLE])
    # the exporting user and everybody else are answered meanwhile
    assert (await command(services, REGIONAL_ID, "/help"))[0].text.startswith("Команды")
    assert (await command(services, DIRECTOR_ID, "/help"))[0].text.startswith("Команды")
    replies = await command(services, REGIONAL_ID, "/export 2")
    assert replies[0].text.startswith("Выгрузить только таблицу")
    replies = await press(services, REGIONAL_ID, buttons(replies)[export_chat.BTN_TABLE])
    assert replies[0].text == export_chat.BUSY  # one export at a time per person
    assert messenger.sent[0][1].text.startswith("⏳")
    release.set()
    await services.conversation.exports.wait()
    assert sum(isinstance(m, OutFile) for _, m in messenger.sent) == 1


async def test_a_failed_export_is_reported(services, messenger, monkeypatch):
    async def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(export_chat, "run_export", broken)
    replies = await command(services, REGIONAL_ID, "/export 2")
    await press(services, REGIONAL_ID, buttons(replies)[export_chat.BTN_TABLE])
    await services.conversation.exports.wait()
    assert messenger.edits[-1][2] == export_chat.FAILED
    # and the person can try again
    replies = await command(services, REGIONAL_ID, "/export 2")
    assert buttons(replies)


async def test_without_a_messenger_the_files_come_with_the_reply(services):
    replies = await command(services, ADMIN_ID, "/export 1")
    replies = await press(services, ADMIN_ID, buttons(replies)[export_chat.BTN_DOCUMENTS])
    assert replies[0].text.startswith("✅ Выгрузка «Мониторинг ШНОР 2024» готова")
    files = [m for m in replies if isinstance(m, OutFile)]
    assert [f.path.suffix for f in files] == [".xlsx", ".zip"]
    assert all(f.path.is_file() for f in files)


async def test_through_the_telegram_adapter(services, caplog):
    """Through the processor: the button's turn shares the batch's transaction, so the job
    must be queued in it (SQLite: a second writer waited out the lock and failed)."""
    caplog.set_level(logging.WARNING)
    harness = TgHarness.for_core(services.conversation)
    services.conversation.messengers[str(Platform.TELEGRAM)] = TelegramMessenger(harness.bot)
    admin = harness.user(int(ADMIN_ID), "Админ")
    await admin.send("/export")
    admin.expect(export_chat.CHOOSE_CAMPAIGN)
    await admin.click(export_chat.BTN_ALL)
    admin.expect("Выгрузить только таблицу или вместе с документами")
    await admin.click(export_chat.BTN_DOCUMENTS)
    await services.conversation.exports.wait()
    documents = admin.all_documents()
    assert [d.filename.rsplit(".", 1)[1] for d in documents] == ["xlsx", "zip"]
    rows = workbook_rows(documents[0].content, "Прогресс")
    assert {r["campaign_id"] for r in rows} == {1, 2, 3}
    edits = [c.text for c in admin.history() if isinstance(c, EditMessageText)]
    assert edits and edits[-1].startswith("✅ Выгрузка «все анкеты» готова")
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_a_button_batched_with_another_chat_starts_its_export(services):
    """The button's event shares a batch (a savepoint of its transaction) with another
    chat's: the job is queued in it without waiting for the batch's lock, and its export
    runs and sends the workbook."""
    from tests.test_group_commit import raw

    harness = TgHarness.for_core(services.conversation)
    services.conversation.messengers[str(Platform.TELEGRAM)] = TelegramMessenger(harness.bot)
    admin, other = harness.user(int(ADMIN_ID), "Админ"), harness.user(4242, "Гость")
    await admin.send("/export")
    await admin.click(export_chat.BTN_ALL)
    await harness.feed_raw(
        raw([other.text_update("/help"), admin.click_update(export_chat.BTN_TABLE)])
    )
    await asyncio.wait_for(services.conversation.exports.wait(), 20)
    assert [d.filename.rsplit(".", 1)[1] for d in admin.all_documents()] == ["xlsx"]


async def test_missing_files_are_pointed_to_the_answers_sheets(services, messenger):
    async with services.sessions() as session:  # one document lost from the disk
        lost = await session.scalar(select(Attachment).where(Attachment.question_id == "iup"))
        lost.storage_path = "00/00/missing.pdf"
        await session.commit()
    replies = await command(services, ADMIN_ID, "/export 1")
    await press(services, ADMIN_ID, buttons(replies)[export_chat.BTN_DOCUMENTS])
    await services.conversation.exports.wait()
    assert export_chat.MISSING_FILES.format(count=1) in messenger.texts()
    assert "«Ответы — …»" in export_chat.MISSING_FILES  # no sheet is called just «Ответы» now
