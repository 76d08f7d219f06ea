"""Pure form engine: visibility, navigation, parsing, validation and scoring.

Nothing here touches a database, a bot or the file system. The conversation layer keeps
the answers (``Slot -> AnswerState``) and asks the engine what to do next.

All user-facing messages are in Russian.
"""

from __future__ import annotations

import datetime as dt
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from forms.schema import (
    Condition,
    Constraint,
    Form,
    Indicator,
    Question,
    QuestionKind,
    RepeatGroup,
    Section,
)


@dataclass(frozen=True, order=True)
class Slot:
    question_id: str
    row: int = 0  # repeat-group row, 0 outside groups


@dataclass(frozen=True)
class AnswerState:
    value: Any  # bool, int, str, choice id, datetime.date; None = skipped optional
    note: str | None = None
    documents: int = 0  # attached documents count


Answers = Mapping[Slot, AnswerState]
Context = Mapping[str, bool]  # respondent flags: shnor, shnsu, risk_zone


@dataclass(frozen=True)
class Conflict:
    """An answered number that no longer fits: out of its range, or against another answer."""

    slot: Slot
    message: str  # Russian, says what to do
    ref: Slot | None = None  # the answer it contradicts; None when out of its own range


@dataclass(frozen=True)
class ParseResult:
    ok: bool
    value: Any = None
    error: str | None = None  # Russian, says what to do

    @classmethod
    def success(cls, value: Any) -> ParseResult:
        return cls(ok=True, value=value)

    @classmethod
    def failure(cls, error: str) -> ParseResult:
        return cls(ok=False, error=error)


@dataclass(frozen=True)
class IndicatorValue:
    indicator_id: str
    applicable: bool
    value: float | None  # 1/0, percent, number; None = no data
    numerator: float | None = None
    denominator: float | None = None


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "<=": operator.le,
    "<": operator.lt,
    ">=": operator.ge,
    ">": operator.gt,
    "==": operator.eq,
    "!=": operator.ne,
}

_YES = frozenset({"да", "д", "yes", "y"})
_NO = frozenset({"нет", "н", "no", "n"})

_INT_RE = re.compile(r"^([-+\u2212\u2013]?)\s*(\d+)$")
_GROUPED_INT_RE = re.compile(r"^\d{1,3}(?:[ \u00a0\u202f]\d{3})+$")
_FRACTION_RE = re.compile(r"^[-+\u2212\u2013]?\s*(?:\d*[.,]\d+|\d+[.,])$")
_DMY_RE = re.compile(r"^(\d{1,2})\.(\d{1,2})\.(\d{4})$")
_ISO_RE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")
_MAX_DIGITS = 15
_MIN_YEAR, _MAX_YEAR = 1900, 2100

MSG_NOT_A_NUMBER = "Не удалось распознать число. Введите целое число цифрами, например: 12."
MSG_NOT_WHOLE = "Нужно целое число, без дробной части. Введите, например: 12."
MSG_NEGATIVE = "Число не может быть отрицательным. Введите целое число от {min} до {max}."
MSG_TOO_BIG = (
    "Слишком большое число: допускается не больше {max}. Проверьте и введите число ещё раз."
)
MSG_TOO_SMALL = "Число должно быть не меньше {min}. Проверьте и введите число ещё раз."
MSG_YES_NO = "Пожалуйста, нажмите кнопку «Да» или «Нет» либо напишите «да» или «нет»."
MSG_CHOICE = (
    "Такого варианта нет. Нажмите кнопку с нужным вариантом или напишите его номер (от 1 до {n})."
)
MSG_DATE_FORMAT = (
    "Не удалось распознать дату. Введите её в формате ДД.ММ.ГГГГ, например: 15.10.2021."
)
MSG_DATE_INVALID = (
    "Такой даты нет в календаре. Проверьте день и месяц и введите дату ещё раз, "
    "например: 15.10.2021."
)
MSG_DATE_YEAR = (
    "Проверьте год: допускаются даты с {min} по {max} год. "
    "Введите дату ещё раз, например: 15.10.2021."
)
MSG_TEXT_EMPTY = "Ответ не может быть пустым. Напишите, пожалуйста, текст ответа."
MSG_TEXT_TOO_LONG = (
    "Слишком длинный ответ: {length} символов, а допускается не больше {limit}. "
    "Сократите текст и отправьте его ещё раз."
)
MSG_DOCUMENT = "Здесь нужен файл, а не текст. Пожалуйста, отправьте документ файлом."
MSG_DOCUMENT_HINT = "Здесь нужен файл, а не текст. Пожалуйста, отправьте документ файлом: {hint}."


class FormEngine:
    """Answers questions about one form. Stateless apart from the form itself."""

    def __init__(self, form: Form) -> None:
        self.form = form
        self._questions: dict[str, Question] = {}
        self._groups: dict[str, RepeatGroup] = {}
        self._controls: dict[str, Question] = {}
        self._group_of: dict[str, RepeatGroup] = {}
        self._section_of: dict[str, Section] = {}
        # question/control id -> (item index in form, index inside the group)
        self._order: dict[str, tuple[int, int]] = {}
        item_index = 0
        for section in form.sections:
            for item in section.items:
                self._section_of[item.id] = section
                if isinstance(item, RepeatGroup):
                    self._groups[item.id] = item
                    self._controls[item.id] = Question(
                        id=item.id,
                        kind=QuestionKind.YES_NO,
                        text=item.add_more_text,
                        short=item.title,
                    )
                    for i, q in enumerate(item.questions):
                        self._questions[q.id] = q
                        self._group_of[q.id] = item
                        self._section_of[q.id] = section
                        self._order[q.id] = (item_index, i)
                    self._order[item.id] = (item_index, len(item.questions))
                else:
                    self._questions[item.id] = item
                    self._order[item.id] = (item_index, 0)
                item_index += 1

    # --- structure ----------------------------------------------------------------------

    def question(self, question_id: str) -> Question:
        """The question; for a group id, the synthetic yes/no "add another row?" question."""
        if question_id in self._controls:
            return self._controls[question_id]
        try:
            return self._questions[question_id]
        except KeyError:
            raise KeyError(f"form '{self.form.id}' has no question '{question_id}'") from None

    def section_of(self, question_id: str) -> Section:
        try:
            return self._section_of[question_id]
        except KeyError:
            raise KeyError(f"form '{self.form.id}' has no question '{question_id}'") from None

    def group_of(self, question_id: str) -> RepeatGroup | None:
        if question_id in self._groups:
            return self._groups[question_id]
        self.question(question_id)  # KeyError for unknown ids
        return self._group_of.get(question_id)

    def is_group_control(self, question_id: str) -> bool:
        return question_id in self._groups

    def row_count(self, group_id: str, answers: Answers) -> int:
        group = self._groups[group_id]
        rows = 1
        while rows < group.max_rows:
            state = answers.get(Slot(group_id, rows - 1))
            if state is None or state.value is not True:
                break
            rows += 1
        return rows

    def _sort_key(self, slot: Slot) -> tuple[int, int, int]:
        try:
            item_index, inner = self._order[slot.question_id]
        except KeyError:
            raise KeyError(f"form '{self.form.id}' has no question '{slot.question_id}'") from None
        return item_index, slot.row, inner

    # --- visibility ---------------------------------------------------------------------

    def slots(self, answers: Answers, ctx: Context) -> list[Slot]:
        """Visible slots in order. Hidden questions' answers never influence anything."""
        visible: list[Slot] = []
        seen: set[Slot] = set()

        def add(slot: Slot) -> None:
            visible.append(slot)
            seen.add(slot)

        for section in self.form.sections:
            for item in section.items:
                if isinstance(item, RepeatGroup):
                    rows = self.row_count(item.id, answers)
                    for row in range(rows):
                        for q in item.questions:
                            if self._shown(q, row, answers, ctx, seen):
                                add(Slot(q.id, row))
                        if row < item.max_rows - 1:
                            add(Slot(item.id, row))
                elif self._shown(item, 0, answers, ctx, seen):
                    add(Slot(item.id))
        return visible

    def _shown(
        self, q: Question, row: int, answers: Answers, ctx: Context, visible: set[Slot]
    ) -> bool:
        return all(self._holds(c, q.id, row, answers, ctx, visible) for c in q.show_if)

    def _ref_slot(self, ref_id: str, owner_id: str, row: int) -> Slot:
        group = self._group_of.get(ref_id)
        if group is not None and self._group_of.get(owner_id) is group:
            return Slot(ref_id, row)
        return Slot(ref_id, 0)

    def _holds(
        self,
        cond: Condition,
        owner_id: str | None,
        row: int,
        answers: Answers,
        ctx: Context,
        visible: set[Slot],
    ) -> bool:
        if cond.context is not None:
            expected = cond.equals if cond.equals is not None else True
            return bool(ctx.get(cond.context, False)) == expected
        assert cond.question is not None
        ref = (
            self._ref_slot(cond.question, owner_id, row)
            if owner_id is not None
            else Slot(cond.question)
        )
        if ref not in visible:
            return False
        state = answers.get(ref)
        if state is None or state.value is None:
            return False
        return any(_same(state.value, v) for v in cond.expected_values)

    def _visible_answer(self, slot: Slot, answers: Answers, visible: set[Slot]) -> Any:
        if slot not in visible:
            return None
        state = answers.get(slot)
        return None if state is None else state.value

    # --- parsing ------------------------------------------------------------------------

    def parse(self, slot: Slot, text: str, answers: Answers, ctx: Context) -> ParseResult:
        q = self.question(slot.question_id)
        raw = (text or "").strip()
        match q.kind:
            case QuestionKind.INTEGER:
                result = _parse_integer(raw, q)
                if not result.ok:
                    return result
                visible = set(self.slots(answers, ctx))
                error = self._constraint_error(q, slot, result.value, answers, visible)
                return ParseResult.failure(error) if error else result
            case QuestionKind.YES_NO:
                return _parse_yes_no(raw)
            case QuestionKind.CHOICE:
                return _parse_choice(raw, q)
            case QuestionKind.DATE:
                return _parse_date(raw)
            case QuestionKind.TEXT:
                return _parse_text(raw, q)
            case QuestionKind.DOCUMENT:
                if q.document_hint:
                    return ParseResult.failure(MSG_DOCUMENT_HINT.format(hint=q.document_hint))
                return ParseResult.failure(MSG_DOCUMENT)
        raise AssertionError(f"unhandled kind {q.kind}")  # pragma: no cover

    def _constraint_error(
        self, q: Question, slot: Slot, value: int, answers: Answers, visible: set[Slot]
    ) -> str | None:
        conflict = self._constraint_conflict(q, slot, value, answers, visible)
        return conflict.message if conflict else None

    def _constraint_conflict(
        self, q: Question, slot: Slot, value: int, answers: Answers, visible: set[Slot]
    ) -> Conflict | None:
        for con in q.constraints:
            conflict = self._check_constraint(con, q, slot, value, answers, visible)
            if conflict:
                return conflict
        return None

    def _check_constraint(
        self,
        con: Constraint,
        q: Question,
        slot: Slot,
        value: int,
        answers: Answers,
        visible: set[Slot],
    ) -> Conflict | None:
        ref_slot = self._ref_slot(con.ref, q.id, slot.row)
        ref_value = self._visible_answer(ref_slot, answers, visible)
        if not isinstance(ref_value, int) or isinstance(ref_value, bool):
            return None  # the reference is unanswered (or hidden): nothing to compare with
        if _OPS[con.op](value, ref_value):
            return None
        message = con.message.format(ref_value=ref_value, ref_text=self.question(con.ref).text)
        return Conflict(slot, message, ref_slot)

    # --- completeness -------------------------------------------------------------------

    def requirement(self, slot: Slot, answers: Answers) -> Literal["document", "note"] | None:
        """What an answered question still lacks: a document (yes) or a note (no)."""
        state = answers.get(slot)
        if state is None or state.value is None:
            return None
        q = self.question(slot.question_id)
        if q.kind is QuestionKind.YES_NO:
            if state.value is True and q.document_when_yes and state.documents < 1:
                return "document"
            if state.value is False and q.note_when_no and not (state.note or "").strip():
                return "note"
        elif q.kind is QuestionKind.DOCUMENT and _document_count(state) < 1:
            return "document"
        return None

    def is_complete(self, slot: Slot, answers: Answers) -> bool:
        state = answers.get(slot)
        if state is None:
            return False
        q = self.question(slot.question_id)
        if q.kind is QuestionKind.DOCUMENT and _document_count(state) > 0:
            return True
        if state.value is None:
            return not q.required  # a skipped optional question is complete
        return self.requirement(slot, answers) is None

    def _is_missing(self, slot: Slot, answers: Answers) -> bool:
        if slot not in answers and not self.question(slot.question_id).required:
            return False
        return not self.is_complete(slot, answers)

    # --- navigation ---------------------------------------------------------------------

    def next_slot(self, after: Slot | None, answers: Answers, ctx: Context) -> Slot | None:
        visible = self.slots(answers, ctx)
        if after is None:
            return visible[0] if visible else None
        key = self._sort_key(after)
        return next((s for s in visible if self._sort_key(s) > key), None)

    def prev_slot(self, before: Slot, answers: Answers, ctx: Context) -> Slot | None:
        key = self._sort_key(before)
        earlier = [s for s in self.slots(answers, ctx) if self._sort_key(s) < key]
        return earlier[-1] if earlier else None

    def first_incomplete(self, answers: Answers, ctx: Context) -> Slot | None:
        return next((s for s in self.slots(answers, ctx) if not self.is_complete(s, answers)), None)

    def position(self, slot: Slot, answers: Answers, ctx: Context) -> tuple[int, int]:
        """1-based index among visible slots and their total.

        A slot that is not visible gets the position of the next visible one (at most total).
        """
        visible = self.slots(answers, ctx)
        key = self._sort_key(slot)
        before = sum(1 for s in visible if self._sort_key(s) < key)
        return min(before + 1, len(visible)), len(visible)

    def progress(self, answers: Answers, ctx: Context) -> tuple[int, int]:
        visible = self.slots(answers, ctx)
        return sum(1 for s in visible if self.is_complete(s, answers)), len(visible)

    # --- whole-form checks --------------------------------------------------------------

    def violations(self, answers: Answers, ctx: Context) -> list[tuple[Slot, str]]:
        """Visible answered numbers that no longer fit their range or constraints."""
        return [(c.slot, c.message) for c in self.conflicts(answers, ctx)]

    def conflicts(self, answers: Answers, ctx: Context) -> list[Conflict]:
        """Like :meth:`violations`, naming the answer each one contradicts."""
        visible_list = self.slots(answers, ctx)
        visible = set(visible_list)
        found: list[Conflict] = []
        for slot in visible_list:
            if self.is_group_control(slot.question_id):
                continue
            q = self.question(slot.question_id)
            state = answers.get(slot)
            if q.kind is not QuestionKind.INTEGER or state is None:
                continue
            value = state.value
            if not isinstance(value, int) or isinstance(value, bool):
                continue
            error = _range_error(value, q)
            conflict = (
                Conflict(slot, error)
                if error
                else self._constraint_conflict(q, slot, value, answers, visible)
            )
            if conflict:
                found.append(conflict)
        return found

    def blocking(self, answers: Answers, ctx: Context) -> list[Slot]:
        """Everything that stops a submit, in form order: gaps and conflicts."""
        bad = set(self.missing(answers, ctx)) | {c.slot for c in self.conflicts(answers, ctx)}
        return [s for s in self.slots(answers, ctx) if s in bad]

    def following(self, after: Slot, candidates: list[Slot]) -> Slot | None:
        """The first candidate after ``after`` in form order, else the first other one."""
        key = self._sort_key(after)
        later = [s for s in candidates if self._sort_key(s) > key]
        if later:
            return min(later, key=self._sort_key)
        return next((s for s in sorted(candidates, key=self._sort_key) if s != after), None)

    def missing(self, answers: Answers, ctx: Context) -> list[Slot]:
        """Visible slots that block submission (optional unanswered ones do not)."""
        return [s for s in self.slots(answers, ctx) if self._is_missing(s, answers)]

    # --- scoring ------------------------------------------------------------------------

    def score(self, answers: Answers, ctx: Context) -> dict[str, IndicatorValue]:
        visible = set(self.slots(answers, ctx))
        return {ind.id: self._score_one(ind, answers, ctx, visible) for ind in self.form.indicators}

    def _score_one(
        self, ind: Indicator, answers: Answers, ctx: Context, visible: set[Slot]
    ) -> IndicatorValue:
        if not all(self._holds(c, None, 0, answers, ctx, visible) for c in ind.applies_if):
            return IndicatorValue(ind.id, applicable=False, value=None)

        def get(question_id: str | None) -> Any:
            assert question_id is not None
            return self._visible_answer(Slot(question_id), answers, visible)

        if ind.kind == "yes_no":
            v = get(ind.question)
            return IndicatorValue(ind.id, True, None if v is None else float(v is True))
        if ind.kind == "count":
            v = get(ind.question)
            return IndicatorValue(ind.id, True, None if not _is_int(v) else float(v))
        if ind.kind == "share":
            num, den = get(ind.numerator), get(ind.denominator)
            if not _is_int(num) or not _is_int(den):
                return IndicatorValue(ind.id, True, None)
            value = None if den == 0 else num / den * 100.0
            return IndicatorValue(ind.id, True, value, float(num), float(den))
        # at_least: 1 when at least ``min`` of the yes/no questions are "yes"
        values = [get(qid) for qid in ind.questions]
        yes = sum(1 for v in values if v is True)
        unknown = sum(1 for v in values if v is None)
        need = ind.min or 0
        if yes >= need:
            value: float | None = 1.0
        elif yes + unknown < need:
            value = 0.0
        else:
            value = None  # not enough answers to decide
        return IndicatorValue(ind.id, True, value, float(yes), float(len(values)))


# --- parsers ------------------------------------------------------------------------------


def _same(a: Any, b: Any) -> bool:
    """Equality that does not confuse True with 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _document_count(state: AnswerState) -> int:
    count = state.documents
    if _is_int(state.value):
        count = max(count, state.value)
    return count


def _range_error(value: int, q: Question) -> str | None:
    if value > q.max_value:
        return MSG_TOO_BIG.format(max=q.max_value)
    if value < q.min_value:
        if value < 0 <= q.min_value:
            return MSG_NEGATIVE.format(min=q.min_value, max=q.max_value)
        return MSG_TOO_SMALL.format(min=q.min_value)
    return None


def _parse_integer(raw: str, q: Question) -> ParseResult:
    if _GROUPED_INT_RE.match(raw):
        raw = re.sub(r"\s", "", raw)
    if _FRACTION_RE.match(raw):
        return ParseResult.failure(MSG_NOT_WHOLE)
    match = _INT_RE.match(raw)
    if not match:
        return ParseResult.failure(MSG_NOT_A_NUMBER)
    sign, digits = match.groups()
    digits = digits.lstrip("0") or "0"
    if len(digits) > _MAX_DIGITS:  # absurdly long: clamp, the range check rejects it
        digits = "9" * _MAX_DIGITS
    value = -int(digits) if sign and sign != "+" else int(digits)
    error = _range_error(value, q)
    return ParseResult.failure(error) if error else ParseResult.success(value)


def _parse_yes_no(raw: str) -> ParseResult:
    word = raw.casefold().strip(" .!,;")
    if word in _YES:
        return ParseResult.success(True)
    if word in _NO:
        return ParseResult.success(False)
    return ParseResult.failure(MSG_YES_NO)


def _parse_choice(raw: str, q: Question) -> ParseResult:
    folded = raw.casefold()
    for choice in q.choices:
        if choice.id == folded or choice.text.casefold() == folded:
            return ParseResult.success(choice.id)
    number = raw.rstrip(".)")
    if re.fullmatch(r"\d{1,4}", number) and 1 <= int(number) <= len(q.choices):
        return ParseResult.success(q.choices[int(number) - 1].id)
    return ParseResult.failure(MSG_CHOICE.format(n=len(q.choices)))


def _parse_date(raw: str) -> ParseResult:
    if m := _DMY_RE.match(raw):
        day, month, year = (int(g) for g in m.groups())
    elif m := _ISO_RE.match(raw):
        year, month, day = (int(g) for g in m.groups())
    else:
        return ParseResult.failure(MSG_DATE_FORMAT)
    try:
        value = dt.date(year, month, day)
    except ValueError:
        return ParseResult.failure(MSG_DATE_INVALID)
    if not _MIN_YEAR <= year <= _MAX_YEAR:
        return ParseResult.failure(MSG_DATE_YEAR.format(min=_MIN_YEAR, max=_MAX_YEAR))
    return ParseResult.success(value)


def _parse_text(raw: str, q: Question) -> ParseResult:
    if not raw:
        return ParseResult.failure(MSG_TEXT_EMPTY)
    if len(raw) > q.max_length:
        return ParseResult.failure(MSG_TEXT_TOO_LONG.format(length=len(raw), limit=q.max_length))
    return ParseResult.success(raw)
