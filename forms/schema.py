"""Declarative form schema (pydantic v2).

A form is pure data: sections of questions and repeat groups, plus the indicators
computed from the answers. Forms live in ``forms/data/*.yaml`` and are validated
here; everything a YAML author can get wrong should fail loudly at load time.

Validation messages are for form authors (developers), so they are in English.
Question texts, hints and constraint messages inside the YAML are in Russian.
"""

from __future__ import annotations

import datetime as dt
import string
from collections.abc import Iterator
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    model_validator,
)

#: Respondent flags a ``Condition.context`` may refer to.
CONTEXT_FLAGS: frozenset[str] = frozenset({"shnor", "shnsu", "risk_zone"})

#: Defaults for INTEGER questions without explicit bounds.
DEFAULT_MIN = 0
DEFAULT_MAX = 100_000

#: Placeholders allowed in ``Constraint.message``.
CONSTRAINT_PLACEHOLDERS: frozenset[str] = frozenset({"ref_value", "ref_text"})

Identifier = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]
NonEmptyText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class QuestionKind(StrEnum):
    YES_NO = "yes_no"
    INTEGER = "integer"
    TEXT = "text"
    DOCUMENT = "document"
    CHOICE = "choice"
    DATE = "date"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Condition(_Model):
    """``show_if`` / ``applies_if`` element.

    * ``question``: holds when that question's answer equals ``equals`` (or is in ``in``);
      an unanswered (or hidden) question makes the condition false.
    * ``context``: holds when the respondent flag equals ``equals`` (``true`` when omitted).
    """

    question: str | None = None
    equals: Any = None
    in_: list[Any] | None = Field(default=None, alias="in")
    context: str | None = None

    @model_validator(mode="after")
    def _check(self) -> Condition:
        if (self.question is None) == (self.context is None):
            raise ValueError("a condition needs exactly one of 'question' or 'context'")
        if self.equals is not None and self.in_ is not None:
            raise ValueError("a condition takes either 'equals' or 'in', not both")
        if self.context is not None:
            if self.context not in CONTEXT_FLAGS:
                allowed = ", ".join(sorted(CONTEXT_FLAGS))
                raise ValueError(f"unknown context flag '{self.context}' (allowed: {allowed})")
            if self.in_ is not None:
                raise ValueError("a context condition takes 'equals: true/false', not 'in'")
            if self.equals is not None and not isinstance(self.equals, bool):
                raise ValueError("a context condition takes 'equals: true' or 'equals: false'")
        elif self.equals is None and self.in_ is None:
            raise ValueError(
                f"condition on question '{self.question}' needs 'equals' or 'in' "
                "(for a yes/no question write 'equals: true')"
            )
        return self

    @property
    def expected_values(self) -> list[Any]:
        """Values a question condition accepts."""
        return list(self.in_) if self.in_ is not None else [self.equals]


class Constraint(_Model):
    """Compares an INTEGER answer with an earlier INTEGER answer: ``value <op> ref``."""

    op: Literal["<=", "<", ">=", ">", "==", "!="]
    ref: str
    message: NonEmptyText

    @model_validator(mode="after")
    def _check_message(self) -> Constraint:
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(self.message) if f is not None]
        except ValueError as exc:
            raise ValueError(
                f"constraint message is not a valid template ({exc}); "
                "write '{{' and '}}' for literal braces"
            ) from exc
        unknown = sorted({f for f in fields if f not in CONSTRAINT_PLACEHOLDERS})
        if unknown:
            raise ValueError(
                f"constraint message uses unknown placeholder(s) {unknown}; "
                "allowed: {ref_value}, {ref_text}"
            )
        return self


class Choice(_Model):
    id: Identifier
    text: NonEmptyText


class Question(_Model):
    id: Identifier
    kind: QuestionKind
    text: NonEmptyText
    hint: str | None = None
    required: bool = True
    show_if: list[Condition] = []
    min: int | None = None
    max: int | None = None
    max_length: int = Field(default=4000, ge=1)
    choices: list[Choice] = []
    constraints: list[Constraint] = []
    document_when_yes: bool = False
    note_when_no: bool = False
    document_hint: str | None = None
    short: str | None = None

    @property
    def min_value(self) -> int:
        return DEFAULT_MIN if self.min is None else self.min

    @property
    def max_value(self) -> int:
        return DEFAULT_MAX if self.max is None else self.max

    @model_validator(mode="after")
    def _check_kind_fields(self) -> Question:
        kind = self.kind
        if kind is not QuestionKind.INTEGER:
            if self.min is not None or self.max is not None:
                raise ValueError(f"'min'/'max' are only for integer questions, not {kind}")
            if self.constraints:
                raise ValueError(f"'constraints' are only for integer questions, not {kind}")
        elif self.min_value > self.max_value:
            raise ValueError(f"min ({self.min_value}) is greater than max ({self.max_value})")
        if kind is not QuestionKind.YES_NO and (self.document_when_yes or self.note_when_no):
            raise ValueError(
                f"'document_when_yes'/'note_when_no' are only for yes_no questions, not {kind}"
            )
        if kind is QuestionKind.CHOICE:
            if not self.choices:
                raise ValueError("a choice question needs at least one choice")
            ids = [c.id for c in self.choices]
            dup = sorted({i for i in ids if ids.count(i) > 1})
            if dup:
                raise ValueError(f"duplicate choice id(s) {dup}")
            texts = [c.text.casefold() for c in self.choices]
            dup_t = sorted({t for t in texts if texts.count(t) > 1})
            if dup_t:
                raise ValueError(f"duplicate choice text(s) {dup_t}")
        elif self.choices:
            raise ValueError(f"'choices' are only for choice questions, not {kind}")
        if (
            self.document_hint is not None
            and kind is not QuestionKind.DOCUMENT
            and not self.document_when_yes
        ):
            raise ValueError(
                "'document_hint' needs a document question or 'document_when_yes: true'"
            )
        return self


class RepeatGroup(_Model):
    """Questions asked once per row; after each row a yes/no control asks for another."""

    id: Identifier
    kind: Literal["group"]
    title: NonEmptyText
    questions: list[Question] = Field(min_length=1)
    add_more_text: NonEmptyText
    max_rows: int = Field(default=100, ge=1)


def _item_tag(value: Any) -> str:
    kind = value.get("kind") if isinstance(value, dict) else getattr(value, "kind", None)
    return "group" if kind == "group" else "question"


Item = Annotated[
    Annotated[Question, Tag("question")] | Annotated[RepeatGroup, Tag("group")],
    Discriminator(_item_tag),
]


class Section(_Model):
    id: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)]
    title: NonEmptyText
    items: list[Item] = Field(min_length=1)
    number: str | None = None  # shown to users ("Раздел 1.2.5"); the id when unset

    @property
    def shown_number(self) -> str:
        return self.number or self.id


class MunicipalRule(_Model):
    """How the municipality-level value is aggregated from respondents."""

    kind: Literal["sum_ratio", "count_share", "yes_no"]
    population: Literal["all", "shnor_shnsu", "risk_zone"] = "all"
    formula: NonEmptyText


class Indicator(_Model):
    id: Identifier
    title: NonEmptyText
    section: str
    kind: Literal["yes_no", "share", "at_least", "count"]
    question: str | None = None
    numerator: str | None = None
    denominator: str | None = None
    questions: list[str] = []
    min: int | None = None
    applies_if: list[Condition] = []
    municipal: MunicipalRule | None = None
    documents: str | None = None

    def referenced_questions(self) -> list[str]:
        refs = [r for r in (self.question, self.numerator, self.denominator) if r is not None]
        return [*refs, *self.questions]

    @model_validator(mode="after")
    def _check_shape(self) -> Indicator:
        has = {
            "question": self.question is not None,
            "numerator": self.numerator is not None,
            "denominator": self.denominator is not None,
            "questions": bool(self.questions),
            "min": self.min is not None,
        }
        needed = {
            "yes_no": {"question"},
            "count": {"question"},
            "share": {"numerator", "denominator"},
            "at_least": {"questions", "min"},
        }[self.kind]
        missing = sorted(k for k in needed if not has[k])
        if missing:
            raise ValueError(f"a {self.kind} indicator needs {', '.join(missing)}")
        extra = sorted(k for k, v in has.items() if v and k not in needed)
        if extra:
            raise ValueError(f"a {self.kind} indicator does not take {', '.join(extra)}")
        if self.kind == "at_least" and self.min is not None:
            if len(set(self.questions)) != len(self.questions):
                raise ValueError("'questions' lists the same question twice")
            if not 1 <= self.min <= len(self.questions):
                raise ValueError(
                    f"'min' must be between 1 and the number of questions ({len(self.questions)})"
                )
        if self.municipal is not None:
            fitting = {
                "sum_ratio": {"share"},
                "count_share": {"yes_no", "at_least"},
                "yes_no": {"yes_no", "at_least"},
            }[self.municipal.kind]
            if self.kind not in fitting:
                raise ValueError(
                    f"municipal rule '{self.municipal.kind}' does not fit a {self.kind} indicator"
                )
        return self


class Form(_Model):
    id: Identifier
    version: int = Field(ge=1)
    title: NonEmptyText
    # A few words naming the form in the export («Ответы — <short>»). Not part of the checksum:
    # renaming it needs no new version.
    short: NonEmptyText | None = Field(default=None, max_length=40, exclude=True)
    description: str = ""
    respondent: Literal["school", "municipality"]
    sections: list[Section] = Field(min_length=1)
    indicators: list[Indicator] = []

    def iter_questions(self) -> Iterator[tuple[Section, RepeatGroup | None, Question]]:
        """All questions in form order with their section and group (None outside groups)."""
        for section in self.sections:
            for item in section.items:
                if isinstance(item, RepeatGroup):
                    for q in item.questions:
                        yield section, item, q
                else:
                    yield section, None, item

    def find_question(self, question_id: str) -> Question | None:
        for _, _, q in self.iter_questions():
            if q.id == question_id:
                return q
        return None

    @model_validator(mode="after")
    def _check_references(self) -> Form:
        problems = _form_problems(self)
        if problems:
            raise ValueError("\n".join(problems))
        return self


def _form_problems(form: Form) -> list[str]:
    problems: list[str] = []
    order: dict[str, int] = {}  # question/group id -> position in the form
    questions: dict[str, Question] = {}
    group_of: dict[str, str | None] = {}

    section_ids = [s.id for s in form.sections]
    for sid in sorted({s for s in section_ids if section_ids.count(s) > 1}):
        problems.append(f"section '{sid}': section id is used more than once")

    def register(item_id: str, what: str) -> None:
        if item_id in order:
            problems.append(f"{what} '{item_id}': id is used more than once in the form")
        else:
            order[item_id] = len(order)

    for section in form.sections:
        for item in section.items:
            if isinstance(item, RepeatGroup):
                register(item.id, "group")
                for q in item.questions:
                    register(q.id, "question")
                    questions.setdefault(q.id, q)
                    group_of.setdefault(q.id, item.id)
            else:
                register(item.id, "question")
                questions.setdefault(item.id, item)
                group_of.setdefault(item.id, None)
    if problems:
        return problems

    def check_ref(owner: Question, ref: str, what: str) -> Question | None:
        where = f"question '{owner.id}'"
        if ref not in order:
            problems.append(f"{where}: {what} refers to unknown question '{ref}'")
            return None
        if ref not in questions:
            problems.append(f"{where}: {what} refers to group '{ref}', not to a question")
            return None
        if order[ref] >= order[owner.id]:
            problems.append(
                f"{where}: {what} refers to question '{ref}', which must come earlier in the form"
            )
            return None
        ref_group, own_group = group_of[ref], group_of[owner.id]
        if ref_group is not None and ref_group != own_group:
            problems.append(
                f"{where}: {what} refers to question '{ref}' inside group '{ref_group}'; "
                "only questions of the same group or outside groups can be referred to"
            )
            return None
        return questions[ref]

    for _, _, q in form.iter_questions():
        for cond in q.show_if:
            if cond.question is None:
                continue
            ref_q = check_ref(q, cond.question, "show_if")
            if ref_q is not None:
                problem = _condition_value_problem(cond, ref_q)
                if problem:
                    problems.append(f"question '{q.id}': show_if {problem}")
        for con in q.constraints:
            ref_q = check_ref(q, con.ref, "constraint")
            if ref_q is not None and ref_q.kind is not QuestionKind.INTEGER:
                problems.append(
                    f"question '{q.id}': constraint refers to question '{con.ref}', "
                    f"which is {ref_q.kind}, not integer"
                )

    indicator_ids: set[str] = set()
    sections = set(section_ids)
    for ind in form.indicators:
        where = f"indicator '{ind.id}'"
        if ind.id in indicator_ids:
            problems.append(f"{where}: indicator id is used more than once")
        indicator_ids.add(ind.id)
        if ind.section not in sections:
            problems.append(f"{where}: section '{ind.section}' is not a section of this form")
        expected = {
            "yes_no": QuestionKind.YES_NO,
            "at_least": QuestionKind.YES_NO,
            "share": QuestionKind.INTEGER,
            "count": QuestionKind.INTEGER,
        }[ind.kind]
        for ref in ind.referenced_questions():
            ref_q = questions.get(ref)
            if ref_q is None:
                problems.append(f"{where}: refers to unknown question '{ref}'")
            elif group_of[ref] is not None:
                problems.append(
                    f"{where}: refers to question '{ref}' inside group '{group_of[ref]}'; "
                    "indicators can only use questions outside repeat groups"
                )
            elif ref_q.kind is not expected:
                problems.append(
                    f"{where}: a {ind.kind} indicator needs {expected} questions, "
                    f"but '{ref}' is {ref_q.kind}"
                )
        for cond in ind.applies_if:
            if cond.question is None:
                continue
            ref_q = questions.get(cond.question)
            if ref_q is None:
                problems.append(f"{where}: applies_if refers to unknown question '{cond.question}'")
            elif group_of[cond.question] is not None:
                problems.append(
                    f"{where}: applies_if refers to question '{cond.question}' inside a group"
                )
            else:
                problem = _condition_value_problem(cond, ref_q)
                if problem:
                    problems.append(f"{where}: applies_if {problem}")
    return problems


def _condition_value_problem(cond: Condition, ref_q: Question) -> str | None:
    """Checks that the values a question condition compares with can ever match."""
    for value in cond.expected_values:
        if ref_q.kind is QuestionKind.YES_NO:
            ok = isinstance(value, bool)
            need = "true or false"
        elif ref_q.kind in (QuestionKind.INTEGER, QuestionKind.DOCUMENT):
            ok = isinstance(value, int) and not isinstance(value, bool)
            need = "a whole number"
        elif ref_q.kind is QuestionKind.CHOICE:
            ok = isinstance(value, str) and any(c.id == value for c in ref_q.choices)
            need = "one of the choice ids " + ", ".join(c.id for c in ref_q.choices)
        elif ref_q.kind is QuestionKind.DATE:
            ok = isinstance(value, dt.date)
            need = "a date (YYYY-MM-DD)"
        else:
            ok = isinstance(value, str)
            need = "a string"
        if not ok:
            return (
                f"compares question '{ref_q.id}' ({ref_q.kind}) with {value!r}, "
                f"which can never match; use {need}"
            )
    return None
