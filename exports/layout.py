"""Which questions and indicators of a form become columns (for all its versions at once)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from exports.confirmed import backed_indicators, backed_questions
from exports.indicators import Visibility
from forms.engine import Slot
from forms.schema import Form, Question, QuestionKind, RepeatGroup


@dataclass(frozen=True, slots=True)
class QuestionColumn:
    question: Question
    slot: Slot
    note: bool  # followed by a «Пояснение» column


class FormLayout:
    """Columns of the answers, «Мероприятия» and «Показатели» sheets for one form."""

    def __init__(self, form_id: str, forms: Sequence[Form]) -> None:
        self.form_id = form_id
        self.form = forms[-1]
        self.respondent = forms[0].respondent
        self.questions: list[QuestionColumn] = []
        self.group_questions: list[tuple[RepeatGroup, Question]] = []
        self.indicators: list[tuple[str, str, str]] = []  # id, title, kind
        seen: set[str] = set()
        seen_indicators: set[str] = set()
        for form in forms:
            for _, group, q in form.iter_questions():
                if q.id in seen:
                    continue
                seen.add(q.id)
                if group is not None:
                    self.group_questions.append((group, q))
                else:
                    note = q.kind is QuestionKind.YES_NO and q.note_when_no
                    self.questions.append(QuestionColumn(q, Slot(q.id), note))
            for ind in form.indicators:
                if ind.id not in seen_indicators:  # indicator ids may equal question ids
                    seen_indicators.add(ind.id)
                    self.indicators.append((ind.id, ind.title, ind.kind))
        # declared vs confirmed (exports.confirmed): yes/no questions asking for a document on
        # «да», and the indicators reading them (a confirmed column beside the declared one)
        self.backed_questions = backed_questions(forms)
        self.confirmed = backed_indicators(forms)
        self.groups: dict[str, RepeatGroup] = {}
        for group, _ in self.group_questions:
            self.groups.setdefault(group.id, group)

    def visible_columns(self, visibility: Visibility) -> list[tuple[QuestionColumn, bool]]:
        """Each answer column with whether it is visible; computed once per visibility."""
        key = f"answers:{self.form_id}"
        found = visibility.derived.get(key)
        if found is None:
            found = [(c, c.slot in visibility.set) for c in self.questions]
            visibility.derived[key] = found
        return found
