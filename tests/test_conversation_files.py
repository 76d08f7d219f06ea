"""Documents in the conversation: names, removal, long names, size limits, archives, hangs."""

from __future__ import annotations

import dataclasses
import io
import struct
import zipfile

import pytest
from aiogram.types import Document
from sqlalchemy import func, select

from bot.app import core_config, create_services
from bot.config import load_settings
from handlers import callbacks as cb
from handlers.conversation import CoreConfig
from scheduler.downloads import retry_pending_downloads
from storage.models import AttachmentStatus, AuditLog, ResponseStatus
from tests.walk import (
    PDF,
    PNG,
    attachments,
    position,
    press_payload,
    registered,
    response_of,
    started,
    walk_to_review,
)

MB = 1024 * 1024


async def _at_first_document(services, region, school="S1"):
    harness, user = await started(services, region, school, past_counts=True)
    await user.click("Да")
    return harness, user


def _stored_files(services) -> list:
    root = services.files.root
    return [p for p in root.rglob("*") if p.is_file() and "tmp" not in p.parts]


# --- item 5: seeing and removing files ---------------------------------------------------------


async def test_question_screen_and_review_list_file_names(services, region):
    _harness, user = await _at_first_document(services, region)
    await user.send_document(PDF, "приказ.pdf", "application/pdf")
    await user.send_document(PNG, "скан.png", "image/png")
    await user.click("✅ Готово")
    await user.click("📋 Все ответы")
    review = user.expect("Ваши ответы")
    assert "приказ.pdf" in review and "скан.png" in review and "📎 2" not in review
    await user.click("9")
    screen = user.expect("Вовлечена ли ОУ")
    assert "приказ.pdf" in screen and "скан.png" in screen


async def test_a_director_removes_a_wrong_file_before_submit(services, region):
    _harness, user = await _at_first_document(services, region)
    await user.send_document(PDF, "приказ.pdf", "application/pdf")
    await user.send_document(PNG, "не тот файл.png", "image/png")
    assert "🗑 не тот файл.png" in user.buttons()
    await user.click("🗑 не тот файл.png")
    user.expect("«не тот файл.png» удалён", "приказ.pdf")
    assert [a.original_name for a in await attachments(services)] == ["приказ.pdf"]
    async with services.sessions() as session:
        audit = await session.scalar(
            select(AuditLog).where(AuditLog.action == "attachment_removed")
        )
    assert audit is not None and audit.details["name"] == "не тот файл.png"
    # the last file of a «Да» removed: the answer needs a document again
    await user.click("🗑 приказ.pdf")
    assert await attachments(services) == []
    await user.send("/review")
    user.expect("❗ нужен документ")


async def test_removing_a_file_is_scope_checked(services, region):
    harness, anna = await _at_first_document(services, region)
    await anna.send_document(PDF, "приказ.pdf", "application/pdf")
    [attachment] = await attachments(services)
    victim = await response_of(services, region.school_ids["S1"])
    boris = await registered(harness, region, "U1", 1002)
    await boris.click("▶ Начать заполнение")
    await boris.send("7")
    own = await response_of(services, region.school_ids["U1"])
    audit_before = await _count(services, AuditLog)
    for payload in (
        cb.encode(cb.Action.REMOVE_FILE, victim.id, attachment.id),  # another school's response
        cb.encode(cb.Action.REMOVE_FILE, own.id, attachment.id),  # his response, her file
    ):
        await press_payload(harness, boris, payload)
        boris.expect("недоступ")
    assert [a.id for a in await attachments(services)] == [attachment.id]
    assert await _count(services, AuditLog) == audit_before


async def test_files_cannot_be_removed_after_submit(services, region):
    harness, user = await started(services, region)
    await walk_to_review(services, user, yes=True)
    await user.click("📨 Отправить анкету")
    await user.click("Да, отправить")
    response = await response_of(services, region.school_ids["S1"])
    assert response.status == ResponseStatus.SUBMITTED
    first = (await attachments(services))[0]
    await press_payload(harness, user, cb.encode(cb.Action.REMOVE_FILE, response.id, first.id))
    user.expect("уже отправлена")
    assert len(await attachments(services)) == 9


async def _count(services, model) -> int:
    async with services.sessions() as session:
        return await session.scalar(select(func.count()).select_from(model))


# --- item 27: long names, size limits, zip bombs, hung downloads ------------------------------


async def test_a_long_file_name_keeps_its_extension(services, region):
    _harness, user = await _at_first_document(services, region)
    name = "Приказ " + "о" * 190 + " 2026.pdf"
    assert len(name) == 206
    await user.send_document(PDF, name, "application/pdf")
    user.expect("сохранён")
    [stored] = await attachments(services)
    assert stored.status == AttachmentStatus.STORED
    assert stored.original_name.endswith("….pdf") and len(stored.original_name) <= 200


def test_only_a_local_bot_api_server_lifts_the_20_mb_limit(settings, monkeypatch):
    assert core_config(settings).download_limit("tg") == 20 * MB
    monkeypatch.setenv("TELEGRAM_API_URL", "http://127.0.0.1:8081")
    assert core_config(load_settings(env_file=None)).download_limit("tg") == 20 * MB
    monkeypatch.setenv("TELEGRAM_LOCAL_FILES", "true")
    assert core_config(load_settings(env_file=None)).download_limit("tg") > 1000 * MB


async def test_a_big_file_is_refused_behind_a_non_local_bot_api_server(
    settings, region, monkeypatch
):
    monkeypatch.setenv("TELEGRAM_API_URL", "http://127.0.0.1:8081")
    services = await create_services(load_settings(env_file=None))
    try:
        harness, user = await _at_first_document(services, region)
        file_id = harness.new_file_id()
        harness.files[file_id] = PDF
        document = Document(
            file_id=file_id, file_unique_id="u-big", file_name="big.pdf", file_size=25 * MB
        )
        await user.send_message(document=document)
        user.expect("слишком большой", "20 МБ")
        assert await attachments(services) == []
    finally:
        await services.close()


def _zip_bomb(declared: int = 2 * 1024**3) -> bytes:
    """A real zip whose directory declares a 2 GiB member (nothing that big is compressed)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("zeros.bin", b"\0" * MB)
    data = bytearray(buffer.getvalue())
    struct.pack_into("<I", data, 22, declared)  # local header: uncompressed size
    central = data.index(b"PK\x01\x02")
    struct.pack_into("<I", data, central + 24, declared)  # central directory: the same
    assert zipfile.ZipFile(io.BytesIO(bytes(data))).infolist()[0].file_size == declared
    return bytes(data)


def _small_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("приказ.pdf", PDF)
        archive.writestr("скан.png", PNG)
    return buffer.getvalue()


async def test_a_zip_bomb_is_refused_and_nothing_is_stored(services, region):
    _harness, user = await _at_first_document(services, region)
    await user.send_document(_zip_bomb(), "документы.zip", "application/zip")
    user.expect("«документы.zip»", "Архив", "не принят")
    assert await attachments(services) == []
    assert _stored_files(services) == []
    await user.send_document(_small_zip(), "документы.zip", "application/zip")
    user.expect("«документы.zip» сохранён")
    [stored] = await attachments(services)
    assert stored.status == AttachmentStatus.STORED and stored.storage_path.endswith(".zip")


async def test_a_zip_bomb_that_arrives_later_is_rejected_by_the_retry(services, region):
    harness, user = await _at_first_document(services, region)
    harness.session.fail_downloads = True
    await user.send_document(_zip_bomb(), "архив.zip", "application/zip")
    harness.session.fail_downloads = False
    assert (
        await retry_pending_downloads(
            services.sessions, services.files, services.conversation.fetchers
        )
        == 0
    )
    [rejected] = await attachments(services)
    assert rejected.status == AttachmentStatus.REJECTED
    assert _stored_files(services) == []


def test_downloads_in_the_conversation_wait_only_a_few_seconds(settings):
    assert CoreConfig().attach_timeout <= 5
    assert core_config(settings).attach_timeout <= 5


async def test_a_hung_download_does_not_block_the_chat(services, region):
    conversation = services.conversation
    conversation.config = dataclasses.replace(conversation.config, attach_timeout=0.2)
    harness, user = await _at_first_document(services, region)
    harness.session.hang_downloads = True
    await user.send_document(PDF, "договор.pdf", "application/pdf")
    user.expect("«договор.pdf»", "загружается")
    [pending] = await attachments(services)
    assert pending.status == AttachmentStatus.PENDING
    await user.click("✅ Готово")
    user.expect("вопрос 10 из 17")  # the conversation goes on
    mode, slot = await position(services, "tg", "1001")
    assert mode == "question" and slot.question_id == "curator_assigned"
    harness.session.hang_downloads = False
    stored = await retry_pending_downloads(services.sessions, services.files, conversation.fetchers)
    assert stored == 1
    [done] = await attachments(services)
    assert services.files.absolute(done.storage_path).read_bytes() == PDF


def test_shorten_name_cuts_the_stem_and_keeps_the_extension():
    from storage.files import shorten_name

    assert shorten_name("  план   2026.pdf ") == "план 2026.pdf"
    long = shorten_name("п" * 300 + ".docx", 200)
    assert len(long) == 200 and long.endswith("….docx")
    no_ext = shorten_name("п" * 300, 200)
    assert len(no_ext) == 200 and no_ext.endswith("…")


def test_the_archive_check_reads_only_archives(tmp_path):
    from storage.files import FileStore, UnsafeArchive

    store = FileStore(tmp_path / "files")
    pdf = tmp_path / "with-zip-tail.pdf"
    pdf.write_bytes(PDF + b"PK\x05\x06" + b"\0" * 18)  # a PDF that merely ends like a zip
    assert store.put(pdf, "скан.pdf").extension == "pdf"
    bomb = tmp_path / "bomb.docx"
    bomb.write_bytes(_zip_bomb())
    with pytest.raises(UnsafeArchive):
        store.put(bomb, "отчёт.docx")
    assert bomb.exists()  # refused before it was moved into the store
