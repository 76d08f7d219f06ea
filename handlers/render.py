"""Turning questions, answers and progress into messages."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from forms.engine import AnswerState, FormEngine, Slot
from forms.schema import Question, QuestionKind
from handlers import callbacks as cb
from handlers import texts
from handlers.types import Button, OutText
from storage.files import ACCEPTED_LIST

LABEL_LIMIT = 90
VALUE_LIMIT = 120
FILE_NAME_LIMIT = 40

FileRef = tuple[int, str]  # (attachment id, original name)


def shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def format_value(question: Question, value: Any) -> str:
    if value is None:
        return texts.REVIEW_SKIPPED
    if question.kind == QuestionKind.YES_NO:
        return texts.YES if value else texts.NO
    if question.kind == QuestionKind.CHOICE:
        for choice in question.choices:
            if choice.id == value:
                return choice.text
        return str(value)
    if question.kind == QuestionKind.DATE and isinstance(value, date):
        return value.strftime("%d.%m.%Y")
    if question.kind == QuestionKind.DOCUMENT:
        return texts.REVIEW_DOCS.format(count=value)
    return str(value)


def label(engine: FormEngine, slot: Slot) -> str:
    question = engine.question(slot.question_id)
    text = shorten(question.short or question.text, LABEL_LIMIT)
    group = engine.group_of(slot.question_id)
    if group is not None:
        return f"{texts.ROW.format(group=group.title, row=slot.row + 1)}: {text}"
    return text


def position_line(engine: FormEngine, slot: Slot, answers, flags) -> str:
    index, total = engine.position(slot, answers, flags)
    section = engine.section_of(slot.question_id)
    line = texts.POSITION.format(section=section.shown_number, index=index, total=total)
    group = engine.group_of(slot.question_id)
    if group is not None:
        line += "\n" + texts.ROW.format(group=group.title, row=slot.row + 1)
    return line


def nav_row(response_id: int, question: Question | None) -> list[Button]:
    row = [Button(texts.BTN_BACK, cb.encode(cb.Action.BACK, response_id))]
    if question is not None and not question.required:
        row.append(Button(texts.BTN_SKIP, cb.encode(cb.Action.SKIP, response_id)))
    row.append(Button(texts.BTN_REVIEW, cb.encode(cb.Action.REVIEW, response_id)))
    return row


def question_message(
    engine: FormEngine,
    response_id: int,
    slot: Slot,
    answers: dict[Slot, AnswerState],
    flags: dict[str, bool],
    *,
    prefix: str = "",
    download_limit: int,
    files: Sequence[FileRef] = (),
) -> OutText:
    question = engine.question(slot.question_id)
    lines = [prefix] if prefix else []
    if engine.is_group_control(slot.question_id):
        lines.append(position_line(engine, slot, answers, flags))
        lines.append("")
        lines.append(question.text)
    else:
        lines.append(position_line(engine, slot, answers, flags))
        lines.append("")
        section = engine.section_of(slot.question_id)
        if engine.position(slot, answers, flags)[0] == 1 or _first_in_section(
            engine, slot, answers, flags
        ):
            lines.insert(-1, f"«{shorten(section.title, 200)}»")
        lines.append(question.text)
        if question.hint:
            lines.append(f"💡 {question.hint}")
    buttons: list[list[Button]] = []
    current = answers.get(slot)
    if question.kind == QuestionKind.YES_NO:
        buttons.append(
            [
                Button(
                    texts.YES,
                    cb.encode(cb.Action.ANSWER, response_id, slot.question_id, slot.row, "y"),
                ),
                Button(
                    texts.NO,
                    cb.encode(cb.Action.ANSWER, response_id, slot.question_id, slot.row, "n"),
                ),
            ]
        )
    elif question.kind == QuestionKind.CHOICE:
        for choice in question.choices:
            buttons.append(
                [
                    Button(
                        choice.text,
                        cb.encode(
                            cb.Action.ANSWER, response_id, slot.question_id, slot.row, choice.id
                        ),
                    )
                ]
            )
    elif question.kind == QuestionKind.INTEGER:
        lines.append(texts.TYPE_NUMBER)
    elif question.kind == QuestionKind.DATE:
        lines.append(texts.TYPE_DATE)
    elif question.kind == QuestionKind.TEXT:
        lines.append(texts.TYPE_TEXT)
    elif question.kind == QuestionKind.DOCUMENT:
        lines.append(
            texts.SEND_DOCUMENT.format(accepted=ACCEPTED_LIST, limit=texts.mb(download_limit))
        )
        if files:
            lines.extend(file_lines(files))
            buttons.append([Button(texts.BTN_DONE, cb.encode(cb.Action.DOCS_DONE, response_id))])
    if current is not None and question.kind != QuestionKind.DOCUMENT:
        lines.append("")
        lines.append(texts.CURRENT_ANSWER.format(value=format_value(question, current.value)))
        if files:
            lines.extend(file_lines(files))
        if current.value is not None and question.kind != QuestionKind.YES_NO:
            buttons.append([Button(texts.BTN_RESUME, cb.encode(cb.Action.CONTINUE, response_id))])
    buttons.extend(remove_buttons(response_id, files))
    buttons.append(nav_row(response_id, question))
    return OutText("\n".join(lines), buttons)


def _first_in_section(engine: FormEngine, slot: Slot, answers, flags) -> bool:
    previous = engine.prev_slot(slot, answers, flags)
    return (
        previous is None
        or engine.section_of(previous.question_id).id != engine.section_of(slot.question_id).id
    )


def file_lines(files: Sequence[FileRef]) -> list[str]:
    return [texts.FILES_ATTACHED] + [f"📎 {shorten(name, 120)}" for _, name in files]


def remove_buttons(response_id: int, files: Sequence[FileRef]) -> list[list[Button]]:
    return [
        [
            Button(
                texts.BTN_REMOVE_FILE.format(name=shorten(name, FILE_NAME_LIMIT)),
                cb.encode(cb.Action.REMOVE_FILE, response_id, attachment_id),
            )
        ]
        for attachment_id, name in files
    ]


def question_context(
    engine: FormEngine, slot: Slot, answers: dict[Slot, AnswerState], flags: dict[str, bool]
) -> str:
    """The question a document or note step belongs to, with the answer given so far."""
    question = engine.question(slot.question_id)
    lines = [position_line(engine, slot, answers, flags), "", question.text]
    current = answers.get(slot)
    if current is not None and current.value is not None:
        lines.append(texts.CURRENT_ANSWER.format(value=format_value(question, current.value)))
    return "\n".join(lines)


def documents_message(
    engine: FormEngine,
    response_id: int,
    slot: Slot,
    files: Sequence[FileRef],
    *,
    prefix: str,
    download_limit: int,
) -> OutText:
    question = engine.question(slot.question_id)
    what = f" ({question.document_hint})" if question.document_hint else ""
    lines = [prefix, ""] if prefix else []
    lines.append(
        texts.ASK_DOCUMENTS.format(
            what=what, accepted=ACCEPTED_LIST, limit=texts.mb(download_limit)
        )
    )
    buttons = []
    if files:
        lines.extend(file_lines(files))
        buttons.append([Button(texts.BTN_DONE, cb.encode(cb.Action.DOCS_DONE, response_id))])
    buttons.extend(remove_buttons(response_id, files))
    buttons.append([Button(texts.BTN_BACK, cb.encode(cb.Action.BACK, response_id))])
    return OutText("\n".join(lines), buttons)


def note_message(response_id: int, current_note: str | None, *, prefix: str) -> OutText:
    lines = [prefix, ""] if prefix else []
    lines.append(texts.ASK_NOTE)
    buttons = []
    if current_note:
        lines.append(texts.CURRENT_NOTE.format(note=shorten(current_note, 500)))
        buttons.append([Button(texts.BTN_KEEP_NOTE, cb.encode(cb.Action.NOTE_KEEP, response_id))])
    buttons.append([Button(texts.BTN_BACK, cb.encode(cb.Action.BACK, response_id))])
    return OutText("\n".join(lines), buttons)


def review_lines(
    engine: FormEngine,
    slots: list[Slot],
    answers: dict[Slot, AnswerState],
    files: Mapping[Slot, Sequence[FileRef]] | None = None,
    conflicts: Mapping[Slot, str] | None = None,
) -> list[str]:
    """One line per visible slot; ``conflicts`` maps a slot to its ❗ mark."""
    files = files or {}
    conflicts = conflicts or {}
    lines = []
    for number, slot in enumerate(slots, start=1):
        question = engine.question(slot.question_id)
        state = answers.get(slot)
        if state is None:
            shown = texts.REVIEW_NOT_ANSWERED
        else:
            attached = files.get(slot, ())
            if question.kind == QuestionKind.DOCUMENT and attached:
                shown = _names(attached)
            else:
                shown = shorten(format_value(question, state.value), VALUE_LIMIT)
                if attached:
                    shown += " " + _names(attached)
                elif state.documents and question.kind != QuestionKind.DOCUMENT:
                    shown += " " + texts.REVIEW_DOCS.format(count=state.documents)
            missing = engine.requirement(slot, answers)
            if missing == "document":
                shown += " " + texts.REVIEW_NEEDS_DOC
            elif missing == "note":
                shown += " " + texts.REVIEW_NEEDS_NOTE
            elif state.note:
                shown += f" ({texts.REVIEW_NOTE.format(note=shorten(state.note, 60))})"
            if slot in conflicts:
                shown += " " + conflicts[slot]
        lines.append(f"{number}. {label(engine, slot)}: {shown}")
    return lines


def _names(files: Sequence[FileRef]) -> str:
    return shorten("📎 " + ", ".join(name for _, name in files), VALUE_LIMIT)


def number_buttons(response_id: int, slots: list[Slot], per_row: int = 6) -> list[list[Button]]:
    buttons = [
        Button(str(number), cb.encode(cb.Action.EDIT, response_id, slot.question_id, slot.row))
        for number, slot in enumerate(slots, start=1)
    ]
    return [buttons[i : i + per_row] for i in range(0, len(buttons), per_row)]
