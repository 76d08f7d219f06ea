"""Background retries of document downloads that failed while the user was chatting."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from handlers import texts
from handlers.types import FileFetcher, Messenger, OutText
from storage.errors import error_summary
from storage.files import FileStore, UnsupportedFileType
from storage.models import Account, Attachment, AttachmentStatus

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
BATCH = 20


async def retry_pending_downloads(
    sessions: async_sessionmaker,
    files: FileStore,
    fetchers: Mapping[str, FileFetcher],
    messengers: Mapping[str, Messenger] | None = None,
    *,
    timeout: float = 120.0,
    max_attempts: int = MAX_ATTEMPTS,
) -> int:
    """Try each pending attachment once; returns how many were stored."""
    async with sessions() as session:
        pending = list(
            await session.scalars(
                select(Attachment)
                .where(Attachment.status == AttachmentStatus.PENDING)
                .order_by(Attachment.attempts, Attachment.id)
                .limit(BATCH)
            )
        )
    stored = 0
    for attachment in pending:
        fetcher = fetchers.get(attachment.platform)
        if fetcher is None or attachment.platform_file_id is None:
            continue
        temp = files.temp_path()
        status, error, result = AttachmentStatus.PENDING, None, None
        try:
            await asyncio.wait_for(fetcher.fetch(attachment.platform_file_id, temp), timeout)
            result = await asyncio.to_thread(files.put, temp, attachment.original_name)
            status = AttachmentStatus.STORED
        except UnsupportedFileType:
            status, error = AttachmentStatus.REJECTED, "content is not an accepted document type"
        except Exception as exc:
            error = error_summary(exc)
            if attachment.attempts + 1 >= max_attempts:
                status = AttachmentStatus.FAILED
        finally:
            temp.unlink(missing_ok=True)
        async with sessions() as session:
            row = await session.get(Attachment, attachment.id)
            if row is None or row.status != AttachmentStatus.PENDING:
                continue
            row.attempts += 1
            row.status = status
            row.last_error = error
            if result is not None:
                row.sha256, row.size = result.sha256, result.size
                row.mime_type, row.storage_path = result.mime_type, result.relative_path
                stored += 1
            await session.commit()
        if status in (AttachmentStatus.FAILED, AttachmentStatus.REJECTED):
            await _tell_uploader(sessions, attachment, messengers or {})
    return stored


async def _tell_uploader(
    sessions: async_sessionmaker, attachment: Attachment, messengers: Mapping[str, Messenger]
) -> None:
    messenger = messengers.get(attachment.platform)
    if messenger is None or attachment.uploaded_by is None:
        return
    async with sessions() as session:
        account = await session.scalar(
            select(Account).where(
                Account.person_id == attachment.uploaded_by,
                Account.platform == attachment.platform,
            )
        )
    if account is None:
        return
    text = texts.FILE_DOWNLOAD_FAILED_LATER.format(
        name=attachment.original_name, question=attachment.question_id
    )
    try:
        await messenger.send(account.chat_id, OutText(text))
    except Exception:
        log.exception("could not tell account %s about a failed download", account.id)
