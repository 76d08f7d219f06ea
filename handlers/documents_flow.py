"""Documents in the questionnaire: receiving, storing, listing and removing files.

Mixed into :class:`handlers.conversation.Conversation`, whose navigation it uses.
"""

from __future__ import annotations

import asyncio
import logging
import mimetypes

from forms.engine import Slot
from forms.schema import QuestionKind
from handlers import callbacks as cb
from handlers import render, texts
from handlers.types import Button, EventKind, IncomingDocument
from handlers.walk_state import Mode, Turn, Walk
from storage import repo
from storage.errors import error_summary
from storage.files import (
    ACCEPTED_LIST,
    ACCEPTED_TYPES,
    UnsafeArchive,
    UnsupportedFileType,
    extension_of,
    shorten_name,
)
from storage.models import Attachment, AttachmentStatus

log = logging.getLogger("handlers.conversation")


class DocumentsFlow:
    def _limit(self, turn: Turn) -> int:
        return self.config.download_limit(str(turn.event.user.platform))

    async def _file(self, turn: Turn) -> None:
        walk = await self._current_walk(turn)
        slot = self._state_slot(turn)
        if walk is None or slot is None or turn.state.mode not in (Mode.QUESTION, Mode.DOCUMENTS):
            turn.say(texts.FILE_NOT_EXPECTED if walk else texts.IDLE_HINT)
            return
        if walk.locked:
            turn.say(self._submitted_text(walk))
            return
        if await self._revision_refuses(turn, walk, slot):
            return
        question = walk.engine.question(slot.question_id)
        accepts = (
            turn.state.mode == Mode.DOCUMENTS
            or question.kind == QuestionKind.DOCUMENT
            or (question.kind == QuestionKind.YES_NO and question.document_when_yes)
        )
        if not accepts:
            turn.say(texts.FILE_NOT_EXPECTED)
            await self._render_current(turn, walk)
            return
        if turn.event.kind == EventKind.PHOTO or turn.event.document is None:
            turn.say(texts.PHOTO_NOT_FILE)
            return
        stored = await self._store_document(turn, walk, slot, turn.event.document)
        if stored is None:
            return
        previous = walk.answers.get(slot)
        if question.kind == QuestionKind.YES_NO and (
            previous is None or previous.value is not True
        ):
            # A file sent instead of pressing «Да» means «Да».
            await repo.save_answer(
                turn.session, walk.response, slot, True, turn.person.id, note=None, keep_note=False
            )
        elif question.kind == QuestionKind.DOCUMENT:
            count = len(await repo.attachments_for(turn.session, walk.response.id, slot))
            await repo.save_answer(turn.session, walk.response, slot, count, turn.person.id)
        turn.state.mode = Mode.DOCUMENTS
        await self._reload(turn.session, walk)
        count = walk.answers[slot].documents
        template = (
            texts.DOCUMENT_SAVED
            if stored.status == AttachmentStatus.STORED
            else texts.DOCUMENT_ACCEPTED_LATER
        )
        rid = walk.response.id
        turn.say(
            template.format(name=stored.original_name, count=count),
            [
                [Button(texts.BTN_DONE, cb.encode(cb.Action.DOCS_DONE, rid))],
                *render.remove_buttons(rid, walk.files.get(slot, [])),
                [Button(texts.BTN_BACK, cb.encode(cb.Action.BACK, rid))],
            ],
        )

    async def _store_document(
        self, turn: Turn, walk: Walk, slot: Slot, document: IncomingDocument
    ) -> Attachment | None:
        limit = self._limit(turn)
        name = shorten_name(document.file_name or self._fallback_name(document), 200)
        if document.size is not None and document.size > limit:
            turn.say(
                texts.FILE_TOO_BIG.format(
                    name=name, size=texts.mb(document.size), limit=texts.mb(limit)
                )
            )
            return None
        if not repo_accepts_name(name):
            turn.say(texts.FILE_BAD_NAME.format(name=name, accepted=ACCEPTED_LIST))
            return None
        attachment = Attachment(
            response_id=walk.response.id,
            question_id=slot.question_id,
            row=slot.row,
            original_name=name,
            size=document.size,
            mime_type=document.mime_type,
            platform=str(turn.event.user.platform),
            platform_file_id=document.file_id,
            uploaded_by=turn.person.id,
            attempts=1,
        )
        fetcher = self.fetchers.get(str(turn.event.user.platform))
        temp = self.files.temp_path()
        try:
            if fetcher is None:
                raise RuntimeError("no file fetcher for this platform")
            await asyncio.wait_for(
                fetcher.fetch(document.file_id, temp), self.config.attach_timeout
            )
            if temp.stat().st_size > limit:
                raise _TooBig(temp.stat().st_size)
            stored = await asyncio.to_thread(self.files.put, temp, name)
        except UnsafeArchive:
            temp.unlink(missing_ok=True)
            turn.say(texts.FILE_BAD_ARCHIVE.format(name=name))
            return None
        except UnsupportedFileType:
            temp.unlink(missing_ok=True)
            turn.say(texts.FILE_BAD_CONTENT.format(name=name, accepted=ACCEPTED_LIST))
            return None
        except _TooBig as too_big:
            temp.unlink(missing_ok=True)
            turn.say(
                texts.FILE_TOO_BIG.format(
                    name=name, size=texts.mb(too_big.size), limit=texts.mb(limit)
                )
            )
            return None
        except Exception as exc:  # the platform or the network failed: retry in the background
            temp.unlink(missing_ok=True)
            log.warning(
                "download of %s failed, will retry: %s", document.file_id, error_summary(exc)
            )
            attachment.status = AttachmentStatus.PENDING
            attachment.last_error = error_summary(exc)
        else:
            attachment.status = AttachmentStatus.STORED
            attachment.sha256 = stored.sha256
            attachment.size = stored.size
            attachment.mime_type = stored.mime_type
            attachment.storage_path = stored.relative_path
        turn.session.add(attachment)
        await turn.session.flush()
        await repo.audit(
            turn.session,
            "attach",
            "response",
            walk.response.id,
            turn.person.id,
            question=slot.question_id,
            row=slot.row,
            attachment=attachment.id,
            status=attachment.status,
            old=None,
            new=repo.document_ref(attachment.original_name, attachment.sha256),
        )
        return attachment

    async def _remove_file(self, turn: Turn, walk: Walk, attachment_id: int | None) -> None:
        attachment = await repo.attachment_of(turn.session, walk.response.id, attachment_id)
        if attachment is None:
            log.warning(
                "account %s tried to remove attachment %s outside response %s",
                turn.account.id,
                attachment_id,
                walk.response.id,
            )
            await self._render_current(turn, walk, prefix=texts.FILE_NOT_YOURS)
            return
        slot = Slot(attachment.question_id, attachment.row)
        if await self._revision_refuses(turn, walk, slot):
            return
        name = attachment.original_name
        await repo.remove_attachment(turn.session, walk.response, attachment, turn.person.id)
        if walk.engine.question(slot.question_id).kind == QuestionKind.DOCUMENT:
            count = len(await repo.attachments_for(turn.session, walk.response.id, slot))
            await repo.save_answer(turn.session, walk.response, slot, count, turn.person.id)
        await self._reload(turn.session, walk)
        await self._render_current(turn, walk, prefix=texts.FILE_REMOVED.format(name=name))

    @staticmethod
    def _fallback_name(document: IncomingDocument) -> str:
        extension = mimetypes.guess_extension(document.mime_type or "") or ""
        return f"документ{extension}"

    async def _documents_done(self, turn: Turn, walk: Walk) -> None:
        slot = self._state_slot(turn)
        if slot is None:
            await self._render_current(turn, walk)
            return
        state = walk.answers.get(slot)
        if state is None or not state.documents:
            await self._render_current(turn, walk, prefix=f"⚠️ {texts.NEED_DOCUMENT}")
            return
        await self._advance(turn, walk, slot, prefix=texts.SAVED)


class _TooBig(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


def repo_accepts_name(name: str) -> bool:
    return extension_of(name) in ACCEPTED_TYPES
