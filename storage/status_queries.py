"""The figures behind `/status`: completion of one campaign's school questionnaires in a scope.

Every school the campaign targets is in exactly one state:

- ``not_started`` — no response yet, or a draft without a single saved answer;
- ``in_progress`` — a draft with at least one answer;
- ``submitted`` — submitted or resubmitted, waiting for review;
- ``returned`` — sent back to the school for revision;
- ``accepted`` — accepted by a coordinator.

Counts are plain SQL (a few statements per screen, never one per school); the per-school
progress «X из Y» is the form engine's ``progress()`` on the page's drafts, the figure the
director sees on their «Все ответы» screen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy import String, case, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from forms.engine import AnswerState, FormEngine, Slot
from forms.schema import QuestionKind
from storage.models import (
    Answer,
    AnswerReview,
    Attachment,
    Campaign,
    CampaignTarget,
    Municipality,
    Response,
    ResponseStatus,
    School,
    Verdict,
)
from storage.repo import COUNTED_ATTACHMENTS, decode_value
from storage.scope import Scope

NOT_STARTED, IN_PROGRESS, SUBMITTED, RETURNED, ACCEPTED = (
    "not_started",
    "in_progress",
    "submitted",
    "returned",
    "accepted",
)
STATES = (NOT_STARTED, IN_PROGRESS, SUBMITTED, RETURNED, ACCEPTED)

# why a «да» answer still lacks an accepted document
DOC_MISSING, DOC_RETURNED, DOC_UNCHECKED = "missing", "returned", "unchecked"


@dataclass
class Counts:
    not_started: int = 0
    in_progress: int = 0
    submitted: int = 0
    returned: int = 0
    accepted: int = 0

    @property
    def total(self) -> int:
        return sum(getattr(self, name) for name in STATES)

    def add(self, state: str, count: int) -> None:
        setattr(self, state, getattr(self, state) + count)


@dataclass
class MunicipalityCounts:
    municipality_id: int
    name: str
    counts: Counts = field(default_factory=Counts)


@dataclass(frozen=True)
class SchoolRow:
    school_id: int
    name: str
    municipality_id: int
    state: str
    response_id: int | None
    status: str | None  # ResponseStatus of the response, None without one
    submitted_at: datetime | None
    form_version: int | None
    flags: dict[str, bool]
    progress: tuple[int, int] | None = None  # (done, total) for drafts with answers


@dataclass(frozen=True)
class MissingDocument:
    school_id: int
    school: str
    municipality: str
    question_id: str
    row: int
    reason: str  # DOC_MISSING, DOC_RETURNED or DOC_UNCHECKED


@dataclass(frozen=True)
class MissingPage:
    schools: int  # schools with at least one such answer, in the whole scope
    answers: int  # such answers in the whole scope
    items: list[MissingDocument]  # the page's schools' answers, grouped by school


# --- campaigns ------------------------------------------------------------------------------


def _targeted_in_scope(scope: Scope):
    return (
        select(CampaignTarget.campaign_id)
        .join(School, School.id == CampaignTarget.school_id)
        .where(scope.school_clause())
    )


async def open_campaigns(session: AsyncSession, scope: Scope) -> list[Campaign]:
    """Open campaigns with at least one school of the scope among their targets, newest first."""
    query = select(Campaign).where(
        Campaign.closed_at.is_(None), Campaign.id.in_(_targeted_in_scope(scope))
    )
    return list(await session.scalars(query.order_by(Campaign.id.desc())))


async def campaign_in_scope(
    session: AsyncSession, scope: Scope, campaign_id: int | None
) -> Campaign | None:
    """The campaign, if it targets a school of the scope (open or closed)."""
    if campaign_id is None:
        return None
    return await session.scalar(
        select(Campaign).where(
            Campaign.id == campaign_id,
            Campaign.id.in_(_targeted_in_scope(scope)),
        )
    )


# --- states ---------------------------------------------------------------------------------


def _school_states(campaign_id: int, scope: Scope):
    """One row per targeted school of the scope: its state and its response (a subquery)."""
    answered = (
        select(Answer.response_id, func.count().label("answers"))
        .where(
            Answer.response_id.in_(select(Response.id).where(Response.campaign_id == campaign_id))
        )
        .group_by(Answer.response_id)
        .subquery()
    )
    answers = func.coalesce(answered.c.answers, 0)
    status = Response.status
    state = case(
        (Response.id.is_(None), NOT_STARTED),
        ((status == ResponseStatus.DRAFT) & (answers == 0), NOT_STARTED),
        (status == ResponseStatus.DRAFT, IN_PROGRESS),
        (status.in_((ResponseStatus.SUBMITTED, ResponseStatus.RESUBMITTED)), SUBMITTED),
        (status == ResponseStatus.RETURNED, RETURNED),
        (status == ResponseStatus.ACCEPTED, ACCEPTED),
        else_=IN_PROGRESS,
    )
    return (
        select(
            School.id.label("school_id"),
            School.name.label("name"),
            School.municipality_id.label("municipality_id"),
            School.is_shnor.label("is_shnor"),
            School.is_shnsu.label("is_shnsu"),
            School.is_risk_zone.label("is_risk_zone"),
            state.label("state"),
            Response.id.label("response_id"),
            Response.status.label("status"),
            Response.submitted_at.label("submitted_at"),
            Response.form_version.label("form_version"),
        )
        .select_from(CampaignTarget)
        .join(School, School.id == CampaignTarget.school_id)
        .outerjoin(
            Response,
            (Response.campaign_id == campaign_id)
            & (Response.respondent_key == CampaignTarget.respondent_key),
        )
        .outerjoin(answered, answered.c.response_id == Response.id)
        .where(CampaignTarget.campaign_id == campaign_id, scope.school_clause())
        .subquery()
    )


async def by_municipality(
    session: AsyncSession, scope: Scope, campaign_id: int, municipality_id: int | None = None
) -> list[MunicipalityCounts]:
    """The counts per municipality of the scope (by name), in one statement."""
    states = _school_states(campaign_id, scope)
    query = (
        select(Municipality.id, Municipality.name, states.c.state, func.count())
        .join(states, states.c.municipality_id == Municipality.id)
        .group_by(Municipality.id, Municipality.name, states.c.state)
    )
    if municipality_id is not None:
        query = query.where(Municipality.id == municipality_id)
    found: dict[int, MunicipalityCounts] = {}
    for mid, name, state, count in await session.execute(query):
        found.setdefault(mid, MunicipalityCounts(mid, name)).counts.add(state, count)
    return sorted(found.values(), key=lambda m: (m.name, m.municipality_id))


def total(rows: Sequence[MunicipalityCounts]) -> Counts:
    result = Counts()
    for row in rows:
        for name in STATES:
            result.add(name, getattr(row.counts, name))
    return result


async def schools(
    session: AsyncSession,
    scope: Scope,
    campaign_id: int,
    *,
    municipality_id: int | None = None,
    school_id: int | None = None,
    offset: int = 0,
    limit: int = 10,
) -> list[SchoolRow]:
    """A page of targeted schools (by name) with their states, without progress."""
    states = _school_states(campaign_id, scope)
    query = select(states).order_by(states.c.name, states.c.school_id)
    if municipality_id is not None:
        query = query.where(states.c.municipality_id == municipality_id)
    if school_id is not None:
        query = query.where(states.c.school_id == school_id)
    rows = await session.execute(query.offset(offset).limit(limit))
    return [
        SchoolRow(
            school_id=r.school_id,
            name=r.name,
            municipality_id=r.municipality_id,
            state=r.state,
            response_id=r.response_id,
            status=r.status,
            submitted_at=r.submitted_at,
            form_version=r.form_version,
            flags={"shnor": r.is_shnor, "shnsu": r.is_shnsu, "risk_zone": r.is_risk_zone},
        )
        for r in rows
    ]


async def with_progress(
    session: AsyncSession, rows: Sequence[SchoolRow], engine_of
) -> list[SchoolRow]:
    """The rows with the engine's progress for responses that have answers (two statements
    for the whole page). ``engine_of(form_version)`` gives the form's engine."""
    ids = [r.response_id for r in rows if r.response_id is not None and r.state != NOT_STARTED]
    if not ids:
        return list(rows)
    counts: dict[tuple[int, str, int], int] = {}
    documents = await session.execute(
        select(Attachment.response_id, Attachment.question_id, Attachment.row, func.count())
        .where(Attachment.response_id.in_(ids), Attachment.status.in_(COUNTED_ATTACHMENTS))
        .group_by(Attachment.response_id, Attachment.question_id, Attachment.row)
    )
    for rid, qid, row, count in documents:
        counts[(rid, qid, row)] = count
    answers: dict[int, dict[Slot, AnswerState]] = {rid: {} for rid in ids}
    found = await session.execute(
        select(Answer.response_id, Answer.question_id, Answer.row, Answer.value, Answer.note).where(
            Answer.response_id.in_(ids)
        )
    )
    for rid, qid, row, value, note in found:
        answers[rid][Slot(qid, row)] = AnswerState(
            decode_value(value), note, counts.get((rid, qid, row), 0)
        )
    result = []
    for r in rows:
        if r.response_id in answers:
            engine: FormEngine = engine_of(r.form_version)
            progress = engine.progress(answers[r.response_id], r.flags)
            r = replace(r, progress=progress)
        result.append(r)
    return result


# --- «да» without an accepted document ------------------------------------------------------


def document_questions(engine: FormEngine) -> list[str]:
    """The yes/no questions whose «да» needs a document, in form order."""
    return [
        q.id
        for _, _, q in engine.form.iter_questions()
        if q.kind is QuestionKind.YES_NO and q.document_when_yes
    ]


def _missing_query(scope: Scope, campaign_id: int, questions: Sequence[str]):
    """Every «да» answer to ``questions`` in a response the school has sent (not a draft),
    with its counted documents and its verdict, for the scope's schools."""
    documents = (
        select(
            Attachment.response_id,
            Attachment.question_id,
            Attachment.row,
            func.count().label("documents"),
        )
        .where(
            Attachment.response_id.in_(
                select(Response.id).where(Response.campaign_id == campaign_id)
            ),
            Attachment.status.in_(COUNTED_ATTACHMENTS),
        )
        .group_by(Attachment.response_id, Attachment.question_id, Attachment.row)
        .subquery()
    )
    return (
        select(
            School.id.label("school_id"),
            School.name.label("school"),
            Municipality.name.label("municipality"),
            Answer.question_id.label("question_id"),
            Answer.row.label("row"),
            func.coalesce(documents.c.documents, 0).label("documents"),
            AnswerReview.verdict.label("verdict"),
        )
        .select_from(Answer)
        .join(Response, Response.id == Answer.response_id)
        .join(School, School.id == Response.school_id)
        .join(Municipality, Municipality.id == School.municipality_id)
        .outerjoin(
            documents,
            (documents.c.response_id == Answer.response_id)
            & (documents.c.question_id == Answer.question_id)
            & (documents.c.row == Answer.row),
        )
        .outerjoin(
            AnswerReview,
            (AnswerReview.response_id == Answer.response_id)
            & (AnswerReview.question_id == Answer.question_id)
            & (AnswerReview.row == Answer.row),
        )
        .where(
            Response.campaign_id == campaign_id,
            Response.status != ResponseStatus.DRAFT,
            Answer.question_id.in_(list(questions)),
            cast(Answer.value, String) == "true",
            (AnswerReview.verdict.is_(None)) | (AnswerReview.verdict != Verdict.ACCEPTED),
            scope.school_clause(),
        )
    )


async def missing_documents(
    session: AsyncSession,
    scope: Scope,
    campaign_id: int,
    questions: Sequence[str],
    *,
    offset: int = 0,
    limit: int = 5,
) -> MissingPage:
    """A page of schools (by municipality and name) with their «да» answers that lack an
    accepted document: three statements (the totals, the page's schools, their answers)."""
    if not questions:
        return MissingPage(0, 0, [])
    found = _missing_query(scope, campaign_id, questions).subquery()
    schools_total, answers_total = (
        await session.execute(
            select(func.count(func.distinct(found.c.school_id)), func.count()).select_from(found)
        )
    ).one()
    page = await session.execute(
        select(found.c.school_id)
        .group_by(found.c.school_id, found.c.municipality, found.c.school)
        .order_by(found.c.municipality, found.c.school, found.c.school_id)
        .offset(offset)
        .limit(limit)
    )
    school_ids = [sid for (sid,) in page]
    items: list[MissingDocument] = []
    if school_ids:
        order = {qid: i for i, qid in enumerate(questions)}
        rows = await session.execute(select(found).where(found.c.school_id.in_(school_ids)))
        for r in rows:
            if r.documents == 0:
                reason = DOC_MISSING
            elif r.verdict == Verdict.RETURNED:
                reason = DOC_RETURNED
            else:
                reason = DOC_UNCHECKED
            items.append(
                MissingDocument(r.school_id, r.school, r.municipality, r.question_id, r.row, reason)
            )
        position = {sid: i for i, sid in enumerate(school_ids)}
        items.sort(key=lambda m: (position[m.school_id], order.get(m.question_id, 0), m.row))
    return MissingPage(schools_total, answers_total, items)
