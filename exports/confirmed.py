"""Declared and confirmed indicator values (issue 10, §3; seed 000: «Сбор информации
осуществляется через анализ официальных подтверждающих документов»). Pure: no database.

An indicator is *backed by a document* when it reads a yes/no question that asks for a
document on «да» (``document_when_yes``): the yes/no indicators of 1.2.4–1.2.5 and the
«не менее двух из трёх» risk indicator. Its *declared* value is the one computed from the
answers as given. Its *confirmed* value is computed the same way from the answers in which a
document-backed «да» counts only when the coordinator has accepted that answer
(``AnswerReview.verdict == accepted``); a «да» not (yet) accepted counts as «нет». The
municipal figures are then aggregated exactly like the declared ones (seed 004: sums over
schools), so declared % and confirmed % share one denominator.

Indicators computed from counts (the shares of teachers) have no document behind each
answer: they have no confirmed value, and the export shows no confirmed column for them.
"""

from __future__ import annotations

from collections.abc import Iterable

from forms.engine import Answers, AnswerState, Slot
from forms.schema import Form, QuestionKind

CONFIRMED_SUFFIX = "__confirmed"
CONFIRMED_LABEL = "подтверждено"


def backed_questions(forms: Iterable[Form]) -> frozenset[str]:
    """The yes/no questions that ask for a document on «да», in any of the versions."""
    return frozenset(
        q.id
        for form in forms
        for _, _, q in form.iter_questions()
        if q.kind is QuestionKind.YES_NO and q.document_when_yes
    )


def backed_indicators(forms: Iterable[Form]) -> frozenset[str]:
    """The indicators (of any version) that read a document-backed yes/no question."""
    forms = list(forms)
    questions = backed_questions(forms)
    return frozenset(
        ind.id
        for form in forms
        for ind in form.indicators
        if ind.kind in ("yes_no", "at_least")
        and any(q in questions for q in ind.referenced_questions())
    )


def confirmed_answers(
    answers: Answers, backed: frozenset[str], accepted: frozenset[Slot]
) -> Answers:
    """The answers with every document-backed «да» that is not accepted read as «нет»."""
    unconfirmed = {
        slot: AnswerState(False, state.note, state.documents)
        for slot, state in answers.items()
        if state.value is True and slot.question_id in backed and slot not in accepted
    }
    if not unconfirmed:
        return answers
    return {**answers, **unconfirmed}


def confirmed_key(key: str) -> str:
    return f"{key}{CONFIRMED_SUFFIX}"
