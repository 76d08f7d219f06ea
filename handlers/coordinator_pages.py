"""A response as the coordinator sees it, cut into pages that each fit one message."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from forms.engine import AnswerState, FormEngine, Slot
from handlers import coordinator_texts as t
from handlers import render
from storage import repo
from storage.files import FileStore
from storage.models import (
    AnswerReview,
    Attachment,
    AttachmentStatus,
    Campaign,
    Response,
    ResponseStatus,
    Verdict,
)

PAGE_LIMIT = 3500  # characters per message, below every platform's limit
ANSWERS_PER_PAGE = 10  # two buttons each: the keyboard stays usable
NOTE_LIMIT = 900
COMMENT_LIMIT = 400
DOCS_SHOWN = 5
NAME_LIMIT = 80


@dataclass
class Opened:
    """One response loaded for review: its visible answers, documents and verdicts."""

    response: Response
    campaign: Campaign
    school_name: str
    municipality_name: str
    engine: FormEngine
    slots: list[Slot]
    answers: dict[Slot, AnswerState]
    docs: dict[Slot, list[Attachment]]
    verdicts: dict[Slot, AnswerReview]
    submitted_by: str | None = None
    pages: list[list[int]] = field(default_factory=list)  # 0-based answer indexes per page

    def snapshot(self, slot: Slot) -> dict[str, Any]:
        """The answer as the coordinator sees it now (stored with the verdict)."""
        state = self.answers.get(slot)
        return {
            "value": repo.encode_value(state.value) if state else None,
            "note": state.note if state else None,
            "documents": [a.original_name for a in self.docs.get(slot, [])],
        }

    def changed(self, slot: Slot) -> bool:
        """A returned answer the school changed before sending the response again."""
        verdict = self.verdicts.get(slot)
        if self.response.status != ResponseStatus.RESUBMITTED or verdict is None:
            return False
        if verdict.verdict != Verdict.RETURNED:
            return False
        if verdict.fixed_at is not None:
            return True
        return verdict.snapshot is not None and verdict.snapshot != self.snapshot(slot)

    def current_round(self, verdict: AnswerReview) -> bool:
        """A verdict given since the response was last sent (not one the school answered)."""
        sent = self.response.submitted_at
        return sent is None or repo.as_utc(verdict.at) >= repo.as_utc(sent)

    def returned_now(self) -> list[int]:
        """Numbers (1-based) of the answers returned in this round of review."""
        return [
            number
            for number, slot in enumerate(self.slots, start=1)
            if (v := self.verdicts.get(slot)) is not None
            and v.verdict == Verdict.RETURNED
            and self.current_round(v)
        ]

    def label(self, number: int) -> str:
        return render.label(self.engine, self.slots[number - 1])

    def page_of(self, number: int) -> int:
        for page, indexes in enumerate(self.pages):
            if number - 1 in indexes:
                return page
        return 0


def when(moment: datetime | None, zone: ZoneInfo) -> str:
    return repo.as_utc(moment).astimezone(zone).strftime("%d.%m.%Y %H:%M") if moment else ""


def header(opened: Opened, zone: ZoneInfo, page: int, pages: int) -> str:
    response = opened.response
    lines = [
        t.HEADER_SCHOOL.format(
            school=render.shorten(opened.school_name, 150),
            municipality=render.shorten(opened.municipality_name, 100),
        ),
        t.HEADER_CAMPAIGN.format(
            number=opened.campaign.id, title=render.shorten(opened.campaign.title, 150)
        ),
        t.HEADER_STATUS.format(status=t.STATUS.get(response.status, response.status)),
    ]
    if response.submitted_at is not None:
        by = f", {render.shorten(opened.submitted_by, 100)}" if opened.submitted_by else ""
        lines.append(t.HEADER_SENT.format(when=when(response.submitted_at, zone), by=by))
    else:
        lines.append(t.NOT_SENT)
    if pages > 1:
        lines.append(t.HEADER_PAGE.format(page=page + 1, pages=pages))
    return "\n".join(lines)


def _value(opened: Opened, slot: Slot, value: Any) -> str:
    question = opened.engine.question(slot.question_id)
    return render.shorten(render.format_value(question, value), render.VALUE_LIMIT)


def _doc_line(attachment: Attachment, files: FileStore) -> str:
    name = render.shorten(attachment.original_name, NAME_LIMIT)
    if attachment.status == AttachmentStatus.PENDING:
        return t.DOC_PENDING.format(name=name)
    if attachment.status != AttachmentStatus.STORED or not attachment.storage_path:
        return t.DOC_FAILED.format(name=name)
    if not files.absolute(attachment.storage_path).is_file():
        return t.DOC_MISSING.format(name=name)
    return t.DOC_STORED.format(name=name)


def block(opened: Opened, number: int, files: FileStore) -> str:
    """One answer: number, short text, value, note, documents, verdict, what changed."""
    slot = opened.slots[number - 1]
    state = opened.answers.get(slot)
    value = _value(opened, slot, state.value) if state is not None else t.NOT_ANSWERED
    lines = [t.ANSWER.format(number=number, label=opened.label(number), value=value)]
    if state is not None and state.note:
        lines.append(t.NOTE.format(note=render.shorten(state.note, NOTE_LIMIT)))
    docs = opened.docs.get(slot, [])
    lines.extend(_doc_line(a, files) for a in docs[:DOCS_SHOWN])
    if len(docs) > DOCS_SHOWN:
        lines.append(f"   … и ещё {len(docs) - DOCS_SHOWN}")
    verdict = opened.verdicts.get(slot)
    if verdict is not None:
        if verdict.verdict == Verdict.ACCEPTED:
            lines.append(t.VERDICT_ACCEPTED)
        else:
            comment = render.shorten(verdict.comment or "", COMMENT_LIMIT)
            lines.append(t.VERDICT_RETURNED.format(comment=comment))
    if opened.changed(slot):
        lines.append(t.CHANGED)
        old = (verdict.snapshot or {}) if verdict is not None else {}
        if "value" in old and old["value"] != opened.snapshot(slot)["value"]:
            lines.append(t.WAS.format(value=_value(opened, slot, repo.decode_value(old["value"]))))
    return "\n".join(lines)


def paginate(blocks: list[str], reserved: int) -> list[list[int]]:
    """Answer indexes per page: at most ANSWERS_PER_PAGE and PAGE_LIMIT characters each."""
    budget = PAGE_LIMIT - reserved
    pages: list[list[int]] = [[]]
    used = 0
    for index, text in enumerate(blocks):
        size = len(text) + 2
        current = pages[-1]
        if current and (used + size > budget or len(current) >= ANSWERS_PER_PAGE):
            pages.append([])
            used = 0
        pages[-1].append(index)
        used += size
    return pages


def page_text(opened: Opened, blocks: list[str], page: int, zone: ZoneInfo, footer: str) -> str:
    top = header(opened, zone, page, len(opened.pages))
    body = "\n\n".join(blocks[i] for i in opened.pages[page])
    text = "\n\n".join(part for part in (top, body, footer) if part)
    return text if len(text) <= PAGE_LIMIT else text[: PAGE_LIMIT - 1] + "…"


def stored_file(attachment: Attachment, files: FileStore) -> Path | None:
    if attachment.status != AttachmentStatus.STORED or not attachment.storage_path:
        return None
    path = files.absolute(attachment.storage_path)
    return path if path.is_file() else None
