"""Rows for the export, read from the database into plain dataclasses.

Who sees what (storage/scope.py): admins export everything, a regional coordinator their
region (everything when no region is set), a municipal coordinator only their municipality,
a director nothing (:func:`scope_for` raises :class:`ExportNotAllowed`).

The small part (campaigns, municipalities with their school counts) is loaded at once by
:func:`load_header`. Respondents are streamed by :func:`iter_targets` in chunks: first the
ordered ids of the campaign targets (a few bytes each), then per chunk the targets with their
school, response, answers, documents and whether an account is linked. Every chunk uses a
short session of its own, so a long export holds no transaction open and memory stays flat
however many schools there are.

Order: municipality name, then the municipality's own response before its schools, then school
name, then campaign. Everything of one municipality (and of one school) is contiguous, which
the archive relies on to keep its names unique without remembering them all.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import ColumnElement, and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from exports.indicators import Population
from exports.roadmap import RoadmapInfo, count_schools, load_roadmaps
from forms.engine import AnswerState, Slot
from storage.models import (
    Account,
    Answer,
    AnswerReview,
    Attachment,
    Campaign,
    CampaignTarget,
    Municipality,
    Person,
    Region,
    Response,
    Role,
    School,
    Verdict,
)
from storage.repo import COUNTED_ATTACHMENTS, decode_value
from storage.scope import Scope

DEFAULT_CHUNK = 500


class ExportNotAllowed(PermissionError):
    """The person's role may not export."""


@dataclass(frozen=True, slots=True)
class ExportScope:
    municipality_id: int | None = None  # None: every municipality
    campaign_ids: tuple[int, ...] | None = None  # None: every campaign in scope
    include_drafts: bool = False
    region_id: int | None = None  # a regional coordinator's region (None: every region)


def in_scope(scope: ExportScope, municipality_id) -> ColumnElement[bool] | None:
    """A WHERE clause on a municipality id column for the scope; None: everything."""
    if scope.municipality_id is not None:
        return municipality_id == scope.municipality_id
    if scope.region_id is not None:
        return municipality_id.in_(
            select(Municipality.id).where(Municipality.region_id == scope.region_id)
        )
    return None


def _limited(query, scope: ExportScope, municipality_id):
    clause = in_scope(scope, municipality_id)
    return query if clause is None else query.where(clause)


def scope_for(
    person: Person,
    campaign_ids: Sequence[int] | None = None,
    include_drafts: bool = False,
) -> ExportScope:
    ids = tuple(campaign_ids) if campaign_ids is not None else None
    scope = Scope.of(person)
    if not scope.is_coordinator:
        raise ExportNotAllowed(person.role)
    if scope.role == Role.REGIONAL:  # their region; without one, every region
        return ExportScope(None, ids, include_drafts, person.region_id)
    if scope.role == Role.ADMIN:
        return ExportScope(None, ids, include_drafts)
    if person.municipality_id is not None:
        return ExportScope(person.municipality_id, ids, include_drafts)
    raise ExportNotAllowed(person.role)


@dataclass(frozen=True, slots=True)
class CampaignInfo:
    id: int
    title: str
    form_id: str
    form_version: int
    opens_on: date
    deadline: date
    closed: bool


@dataclass(frozen=True, slots=True)
class MunicipalityInfo:
    id: int
    name: str
    region_id: int
    region: str
    population: Population


@dataclass(frozen=True, slots=True)
class SchoolInfo:
    id: int
    name: str
    code: str | None
    is_shnor: bool
    is_shnsu: bool
    is_risk_zone: bool

    def flags(self) -> dict[str, bool]:
        return {"shnor": self.is_shnor, "shnsu": self.is_shnsu, "risk_zone": self.is_risk_zone}


@dataclass(frozen=True, slots=True)
class DocumentInfo:
    id: int
    question_id: str
    row: int
    original_name: str
    storage_path: str | None  # relative to the FileStore root; None until downloaded
    status: str
    size: int | None


@dataclass(slots=True)
class ResponseInfo:
    id: int
    form_version: int
    status: str
    started_at: datetime | None
    updated_at: datetime | None
    submitted_at: datetime | None
    answers: dict[Slot, AnswerState] = field(default_factory=dict)
    documents: list[DocumentInfo] = field(default_factory=list)
    accepted: frozenset[Slot] = frozenset()  # answers a coordinator accepted (confirmed)


@dataclass(slots=True)
class TargetRow:
    """One respondent of one campaign: a school, or a municipality for municipal forms."""

    campaign_id: int
    municipality_id: int
    school: SchoolInfo | None
    response: ResponseInfo | None
    account_linked: bool


@dataclass(frozen=True, slots=True)
class ExportHeader:
    scope: ExportScope
    campaigns: list[CampaignInfo]
    municipalities: list[MunicipalityInfo]  # every municipality in scope, by name
    total_targets: int
    document_bytes: int  # stored documents' size: decides whether the ZIP fits a chat
    roadmaps: list[RoadmapInfo] = field(default_factory=list)  # the «Дорожная карта» sheet
    roadmap_schools: int = 0  # its rows
    responses: dict[int, int] = field(default_factory=dict)  # campaign id -> responses in scope

    def forms_with_responses(self) -> set[str]:
        """The forms that get an answers sheet."""
        return {c.form_id for c in self.campaigns if self.responses.get(c.id)}

    def campaign(self, campaign_id: int) -> CampaignInfo:
        return next(c for c in self.campaigns if c.id == campaign_id)


def _target_municipality():
    return func.coalesce(School.municipality_id, CampaignTarget.municipality_id)


def _targets_query(scope: ExportScope, campaign_ids: Sequence[int]):
    municipality_id = _target_municipality()
    query = (
        select(CampaignTarget.id)
        .select_from(CampaignTarget)
        .outerjoin(School, School.id == CampaignTarget.school_id)
        .where(CampaignTarget.campaign_id.in_(campaign_ids))
    )
    return _limited(query, scope, municipality_id), municipality_id


async def campaigns_in_scope(session: AsyncSession, scope: ExportScope) -> list[CampaignInfo]:
    """Campaigns the scope may export, newest first; filtered by ``scope.campaign_ids``."""
    query = select(Campaign).order_by(Campaign.id.desc())
    if scope.campaign_ids is not None:
        query = query.where(Campaign.id.in_(scope.campaign_ids))
    clause = in_scope(scope, _target_municipality())
    if clause is not None:
        targeted = (
            select(CampaignTarget.campaign_id)
            .outerjoin(School, School.id == CampaignTarget.school_id)
            .where(clause)
        )
        query = query.where(Campaign.id.in_(targeted))
    return [
        CampaignInfo(
            c.id,
            c.title,
            c.form_id,
            c.form_version,
            c.opens_on,
            c.deadline,
            c.closed_at is not None,
        )
        for c in await session.scalars(query)
    ]


async def load_header(session: AsyncSession, scope: ExportScope) -> ExportHeader:
    campaigns = sorted(await campaigns_in_scope(session, scope), key=lambda c: c.id)
    shnor = case((School.is_shnor | School.is_shnsu, 1), else_=0)
    risk = case((School.is_risk_zone, 1), else_=0)
    counts_query = select(
        School.municipality_id, func.count(School.id), func.sum(shnor), func.sum(risk)
    ).group_by(School.municipality_id)
    municipalities_query = (
        select(Municipality.id, Municipality.name, Region.id, Region.name)
        .join(Region, Region.id == Municipality.region_id)
        .order_by(Region.name, Municipality.name, Municipality.id)
    )
    counts_query = _limited(counts_query, scope, School.municipality_id)
    municipalities_query = _limited(municipalities_query, scope, Municipality.id)
    counts = {
        mid: Population(int(total), int(shnor_count or 0), int(risk_count or 0))
        for mid, total, shnor_count, risk_count in (await session.execute(counts_query))
    }
    municipalities = [
        MunicipalityInfo(mid, name, rid, region, counts.get(mid, Population()))
        for mid, name, rid, region in (await session.execute(municipalities_query))
    ]
    total = 0
    document_bytes = 0
    responses: dict[int, int] = {}
    if campaigns:
        ids = [c.id for c in campaigns]
        targets, _ = _targets_query(scope, ids)
        total = await session.scalar(select(func.count()).select_from(targets.subquery())) or 0
        documents = _targeted_responses(
            select(func.coalesce(func.sum(Attachment.size), 0))
            .select_from(Attachment)
            .join(Response, Response.id == Attachment.response_id),
            scope,
            ids,
        ).where(
            Attachment.status.in_(COUNTED_ATTACHMENTS),
            Attachment.storage_path.is_not(None),
        )
        document_bytes = int(await session.scalar(documents) or 0)
        counts = _targeted_responses(
            select(Response.campaign_id, func.count(Response.id)).select_from(Response), scope, ids
        ).group_by(Response.campaign_id)
        responses = {cid: int(n) for cid, n in await session.execute(counts)}
    roadmaps = await load_roadmaps(session, scope.municipality_id)
    if scope.municipality_id is None and scope.region_id is not None:
        ids_in_region = {m.id for m in municipalities}
        roadmaps = [
            r
            for r in roadmaps
            if r.region_id == scope.region_id or r.municipality_id in ids_in_region
        ]
    roadmap_schools = await count_schools(session, roadmaps, scope.municipality_id)
    return ExportHeader(
        scope,
        campaigns,
        municipalities,
        int(total),
        document_bytes,
        roadmaps,
        roadmap_schools,
        responses,
    )


def _targeted_responses(query, scope: ExportScope, campaign_ids: Sequence[int]):
    """``query`` (selecting from Response) limited to the campaigns' targets in scope."""
    query = (
        query.join(
            CampaignTarget,
            and_(
                CampaignTarget.campaign_id == Response.campaign_id,
                CampaignTarget.respondent_key == Response.respondent_key,
            ),
        )
        .outerjoin(School, School.id == CampaignTarget.school_id)
        .where(Response.campaign_id.in_(campaign_ids))
    )
    return _limited(query, scope, _target_municipality())


async def ordered_target_ids(session: AsyncSession, header: ExportHeader) -> list[int]:
    if not header.campaigns:
        return []
    query, municipality_id = _targets_query(header.scope, [c.id for c in header.campaigns])
    query = query.join(Municipality, Municipality.id == municipality_id).order_by(
        Municipality.name,
        Municipality.id,
        School.id.is_not(None),  # the municipality's own response first
        School.name,
        School.id,
        CampaignTarget.campaign_id,
    )
    return list(await session.scalars(query))


async def iter_targets(
    sessions: async_sessionmaker, header: ExportHeader, chunk_size: int = DEFAULT_CHUNK
) -> AsyncIterator[list[TargetRow]]:
    """The campaign targets in scope, in export order, ``chunk_size`` at a time."""
    async with sessions() as session:
        ids = await ordered_target_ids(session, header)
    for start in range(0, len(ids), chunk_size):
        async with sessions() as session:
            yield await load_chunk(session, ids[start : start + chunk_size])


async def load_chunk(session: AsyncSession, target_ids: Sequence[int]) -> list[TargetRow]:
    target_rows = await session.execute(
        select(
            CampaignTarget.id,
            CampaignTarget.campaign_id,
            CampaignTarget.respondent_key,
            _target_municipality(),
            School.id,
            School.name,
            School.code,
            School.is_shnor,
            School.is_shnsu,
            School.is_risk_zone,
        )
        .outerjoin(School, School.id == CampaignTarget.school_id)
        .where(CampaignTarget.id.in_(target_ids))
    )
    targets = {row[0]: row for row in target_rows}

    responses: dict[tuple[int, str], ResponseInfo] = {}
    for (
        rid,
        campaign_id,
        key,
        version,
        status,
        started,
        updated,
        submitted,
    ) in await session.execute(
        select(
            Response.id,
            Response.campaign_id,
            Response.respondent_key,
            Response.form_version,
            Response.status,
            Response.started_at,
            Response.updated_at,
            Response.submitted_at,
        )
        .join(
            CampaignTarget,
            and_(
                CampaignTarget.campaign_id == Response.campaign_id,
                CampaignTarget.respondent_key == Response.respondent_key,
            ),
        )
        .where(CampaignTarget.id.in_(target_ids))
    ):
        responses[(campaign_id, key)] = ResponseInfo(
            rid, version, status, started, updated, submitted
        )
    by_id = {r.id: r for r in responses.values()}

    if by_id:
        documents: dict[int, dict[tuple[str, int], int]] = defaultdict(dict)
        for aid, rid, qid, row, name, path, status, size in await session.execute(
            select(
                Attachment.id,
                Attachment.response_id,
                Attachment.question_id,
                Attachment.row,
                Attachment.original_name,
                Attachment.storage_path,
                Attachment.status,
                Attachment.size,
            )
            .where(
                Attachment.response_id.in_(by_id),
                Attachment.status.in_(COUNTED_ATTACHMENTS),
            )
            .order_by(Attachment.id)
        ):
            by_id[rid].documents.append(DocumentInfo(aid, qid, row, name, path, status, size))
            counts = documents[rid]
            counts[(qid, row)] = counts.get((qid, row), 0) + 1
        for rid, qid, row, value, note in await session.execute(
            select(
                Answer.response_id, Answer.question_id, Answer.row, Answer.value, Answer.note
            ).where(Answer.response_id.in_(by_id))
        ):
            count = documents[rid].get((qid, row), 0) if rid in documents else 0
            by_id[rid].answers[Slot(qid, row)] = AnswerState(decode_value(value), note, count)
        accepted: dict[int, set[Slot]] = defaultdict(set)
        for rid, qid, row in await session.execute(
            select(AnswerReview.response_id, AnswerReview.question_id, AnswerReview.row).where(
                AnswerReview.response_id.in_(by_id), AnswerReview.verdict == Verdict.ACCEPTED
            )
        ):
            accepted[rid].add(Slot(qid, row))
        for rid, slots in accepted.items():
            by_id[rid].accepted = frozenset(slots)

    school_ids = {row[4] for row in targets.values() if row[4] is not None}
    municipality_keys = {row[3] for row in targets.values() if row[4] is None}
    linked_schools: set[int] = set()
    linked_municipalities: set[int] = set()
    if school_ids:
        linked_schools = set(
            await session.scalars(
                select(Person.school_id)
                .join(Account, Account.person_id == Person.id)
                .where(Person.school_id.in_(school_ids), Person.role == Role.DIRECTOR)
                .distinct()
            )
        )
    if municipality_keys:
        linked_municipalities = set(
            await session.scalars(
                select(Person.municipality_id)
                .join(Account, Account.person_id == Person.id)
                .where(Person.municipality_id.in_(municipality_keys), Person.role == Role.MUNICIPAL)
                .distinct()
            )
        )

    rows: list[TargetRow] = []
    for tid in target_ids:
        target = targets.get(tid)
        if target is None:  # removed since the ids were read
            continue
        _, campaign_id, key, municipality_id, sid, name, code, shnor, shnsu, risk = target
        school = (
            SchoolInfo(sid, name, code, bool(shnor), bool(shnsu), bool(risk))
            if sid is not None
            else None
        )
        linked = (
            sid in linked_schools if sid is not None else municipality_id in linked_municipalities
        )
        rows.append(
            TargetRow(
                campaign_id, municipality_id, school, responses.get((campaign_id, key)), linked
            )
        )
    return rows
