"""Rendering claimed deliveries into messages, with the state as of sending: a school that
reported the item or submitted the questionnaire meanwhile gets nothing."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from handlers import callbacks as cb
from handlers.registry import FormRegistry
from handlers.texts import human_date
from handlers.types import Button, OutText
from handlers.wire import decode
from scheduler.delivery_status import unreachable_below
from scheduler.recipients import (
    Geography,
    Recipient,
    preferred,
    recipient_from_row,
    recipient_query,
)
from scheduler.reminder_texts import (
    BTN_CONTINUE,
    BTN_START,
    CAMPAIGN_OVERDUE_TITLE,
    CAMPAIGN_TEXT,
    CAMPAIGN_TEXT_NO_PROGRESS,
    DIGEST_INFO,
    DIGEST_MUNICIPALITIES,
    DIGEST_OWN,
    DIGEST_SCHOOLS,
    DIGEST_TITLE,
    EVIDENCE_LINE,
    ITEM_LINE,
    ITEMS_HINT,
    ITEMS_TITLE,
    OVERDUE_LINE,
    OVERDUE_SCHOOLS,
    OVERDUE_TITLE,
    UNREACHABLE_LINE,
    days_left,
    listed,
    shorten,
    when_text,
)
from storage import repo
from storage import roadmaps_db as rdb
from storage.models import (
    SENT_STATUSES,
    Account,
    Campaign,
    CampaignTarget,
    Delivery,
    DeliveryKind,
    Response,
    Roadmap,
    RoadmapItem,
    Role,
    School,
    respondent_key,
)
from storage.notices import MESSAGE_KINDS


@dataclass
class Job:
    """One message to one account, covering one or more deliveries."""

    ids: list[int]
    platform: str
    chat_id: str
    message: OutText
    person_id: int | None = None  # to fall back to the person's other accounts


def spread(jobs: list[Job]) -> list[Job]:
    """Order jobs so that messages to one chat are far apart (each chat waits a second
    between messages; a worker must not sit on the second one while others are ready)."""
    seen: dict[tuple[str, str], int] = defaultdict(int)
    ranked = []
    for index, job in enumerate(jobs):
        chat = (job.platform, job.chat_id)
        ranked.append((seen[chat], index, job))
        seen[chat] += 1
    return [job for *_, job in sorted(ranked, key=lambda r: (r[0], r[1]))]


def _stored(row: Delivery) -> tuple[OutText | None, set[int]]:
    """A notice, digest or broadcast: its text was fixed when it was queued."""
    message = decode(row.message) if row.message else None
    if not isinstance(message, OutText):
        return None, set()
    return message, {row.id}


class Renderer:
    """Turns claimed deliveries into messages, with the state as of now."""

    def __init__(
        self,
        session: AsyncSession,
        now: Callable[[], datetime],
        forms: FormRegistry | None = None,
    ) -> None:
        self.session = session
        self.now = now
        self.forms = forms
        self.rows: list[Delivery] = []
        self.recipients: dict[int, Recipient] = {}
        self.geo = Geography()
        self.items: dict[int, RoadmapItem] = {}
        self.roadmaps: dict[int, Roadmap] = {}
        self.done: set[tuple[int, str, date]] = set()
        self.unreachable_people: list[Recipient] = []
        self.by_person: dict[int, list[Recipient]] = defaultdict(list)

    @classmethod
    async def load(
        cls,
        session: AsyncSession,
        rows: list[Delivery],
        *,
        platforms: Sequence[str],
        default_zone: str,
        now: Callable[[], datetime],
        forms: FormRegistry | None = None,
    ) -> Renderer:
        self = cls(session, now, forms)
        self.rows = rows
        account_ids = {r.account_id for r in rows}
        people = select(Account.person_id).where(Account.id.in_(account_ids))
        query = recipient_query(platforms)
        for row in await session.execute(query.where(Account.person_id.in_(people))):
            recipient = recipient_from_row(row, default_zone)
            self.recipients[recipient.account_id] = recipient
            self.by_person[recipient.person_id].append(recipient)
        item_ids = {r.item_id for r in rows if r.item_id is not None}
        if item_ids:
            for item in await session.scalars(
                select(RoadmapItem).where(RoadmapItem.id.in_(item_ids))
            ):
                self.items[item.id] = item
            for roadmap in await session.scalars(
                select(Roadmap).where(Roadmap.id.in_({i.roadmap_id for i in self.items.values()}))
            ):
                self.roadmaps[roadmap.id] = roadmap
            self.done = await rdb.done_set(session, item_ids)
        if any(r.role != Role.DIRECTOR for r in self.recipients.values()):
            self.geo = await Geography.load(session)  # digests name schools and districts
        return self

    async def jobs(self) -> tuple[list[Job], list[int], list[int]]:
        jobs: list[Job] = []
        cancelled: list[int] = []
        unreachable: list[int] = []
        groups: dict[tuple, list[Delivery]] = defaultdict(list)
        for row in self.rows:
            recipient = self.recipients.get(row.account_id)
            if recipient is None:
                cancelled.append(row.id)  # the account is gone or changed role
                continue
            if recipient.unreachable:
                # blocked since it was planned: the person's other account, if any
                recipient = preferred(self.by_person[recipient.person_id])
                if recipient.unreachable:
                    unreachable.append(row.id)
                    continue
                row.account_id, row.platform = recipient.account_id, recipient.platform
            if row.kind == DeliveryKind.CAMPAIGN or row.kind in MESSAGE_KINDS:
                groups[(row.kind, row.account_id, row.id)].append(row)
            else:
                groups[(row.kind, row.account_id)].append(row)
        for (kind, account_id, *_), rows in groups.items():
            recipient = self.recipients[account_id]
            if kind == DeliveryKind.ITEM:
                message, used = await self._items(recipient, rows)
            elif kind == DeliveryKind.OVERDUE:
                message, used = await self._overdue(recipient, rows)
            elif kind == DeliveryKind.CAMPAIGN:
                message, used = await self._campaign(recipient, rows[0])
            elif kind in MESSAGE_KINDS:
                message, used = _stored(rows[0])
            else:
                message, used = await self._campaign_overdue(recipient, rows)
            if message is None:
                cancelled.extend(r.id for r in rows)
                continue
            cancelled.extend(r.id for r in rows if r.id not in used)
            jobs.append(
                Job(
                    [r.id for r in rows if r.id in used],
                    recipient.platform,
                    recipient.chat_id,
                    message,
                    recipient.person_id,
                )
            )
        return spread(jobs), cancelled, unreachable

    def _today(self, recipient: Recipient) -> date:
        return self.now().astimezone(ZoneInfo(recipient.zone)).date()

    def _is_done(self, item_id: int, key: str, due_on: date) -> bool:
        return (item_id, key, due_on) in self.done

    def _scope_name(self, recipient: Recipient) -> str:
        if recipient.role == Role.MUNICIPAL and recipient.municipality_id is not None:
            return self.geo.municipality_name.get(recipient.municipality_id, "муниципалитет")
        return "регион"

    def _open_schools(self, item: RoadmapItem, roadmap: Roadmap, due_on: date, r: Recipient):
        if r.role == Role.REGIONAL:
            schools = [
                sid
                for sid in self.geo.schools_of(roadmap, item)
                if r.region_id is None or self.geo.school_region(sid) == r.region_id
            ]
        else:
            schools = [
                sid
                for sid in self.geo.schools_of(roadmap, item)
                if self.geo.school_municipality.get(sid) == r.municipality_id
            ]
        late = [sid for sid in schools if not self._is_done(item.id, f"school:{sid}", due_on)]
        return schools, late

    def _open_municipalities(self, item: RoadmapItem, roadmap: Roadmap, due_on: date, r):
        municipalities = [
            mid
            for mid in self.geo.municipalities_reached(roadmap, item)
            if r.region_id is None or self.geo.municipality_region.get(mid) == r.region_id
        ]
        late = [
            mid
            for mid in municipalities
            if not self._is_done(item.id, respondent_key(None, mid), due_on)
        ]
        return municipalities, late

    def _late_line(
        self, template: str, everyone: list[int], late: list[int], names: dict[int, str]
    ) -> str:
        """«done of total» and who is late, for schools or municipalities alike."""
        return template.format(
            done=len(everyone) - len(late),
            total=len(everyone),
            names=listed(self._names(late, names)),
        )

    def _names(self, ids: list[int], names: dict[int, str]) -> list[str]:
        return sorted(names.get(i, str(i)) for i in ids)

    def _active_items(self, rows: list[Delivery]):
        """(delivery, item, roadmap) for deliveries whose item is still active, by due date."""
        for row in sorted(rows, key=lambda d: (d.due_on, d.item_id)):
            item = self.items.get(row.item_id)
            roadmap = self.roadmaps.get(item.roadmap_id) if item else None
            if item is not None and roadmap is not None and item.active:
                yield row, item, roadmap

    async def _items(self, r: Recipient, rows: list[Delivery]) -> tuple[OutText | None, set]:
        today = self._today(r)
        by_roadmap: dict[int, list[str]] = defaultdict(list)
        used: set[int] = set()
        for row, item, roadmap in self._active_items(rows):
            roles = set(item.executor_roles or [])
            lines = [
                ITEM_LINE.format(
                    when=when_text(row.due_on, today).capitalize(),
                    number=item.number.rstrip("."),
                    action=shorten(item.action),
                )
            ]
            if r.role == Role.DIRECTOR:
                if self._is_done(item.id, respondent_key(r.school_id, None), row.due_on):
                    continue
                if item.evidence:
                    lines.append(EVIDENCE_LINE.format(evidence=shorten(item.evidence, 120)))
            else:
                extra = self._digest_lines(item, roadmap, row.due_on, r, roles)
                if extra is None:
                    continue
                lines.extend(extra)
            by_roadmap[roadmap.id].extend(lines)
            used.add(row.id)
        if not used:
            return None, used
        parts = []
        for roadmap_id, lines in by_roadmap.items():
            title = shorten(self.roadmaps[roadmap_id].title, 90)
            if r.role == Role.DIRECTOR:
                parts.append("\n".join([ITEMS_TITLE.format(roadmap=title), *lines]))
            else:
                head = DIGEST_TITLE.format(roadmap=title, scope=self._scope_name(r))
                parts.append("\n".join([head, *lines]))
        if r.role == Role.DIRECTOR:
            parts.append(ITEMS_HINT)
        else:
            blocked = await self._unreachable_below(r)
            if blocked:
                parts.append(UNREACHABLE_LINE.format(names=listed(blocked)))
        return OutText("\n\n".join(parts)), used

    def _digest_lines(
        self, item: RoadmapItem, roadmap: Roadmap, due_on: date, r: Recipient, roles: set[str]
    ) -> list[str] | None:
        lines: list[str] = []
        pending = False
        own = None
        if r.role == Role.MUNICIPAL and rdb.MUNICIPAL in roles:
            own = respondent_key(None, r.municipality_id)
        elif r.role == Role.REGIONAL and rdb.REGIONAL in roles and r.region_id is not None:
            own = rdb.region_key(r.region_id)
        if own is not None and not self._is_done(item.id, own, due_on):
            lines.append(DIGEST_OWN)
            pending = True
        if rdb.DIRECTOR in roles:
            schools, late = self._open_schools(item, roadmap, due_on, r)
            if late:
                pending = True
                lines.append(self._late_line(DIGEST_SCHOOLS, schools, late, self.geo.school_name))
        if r.role == Role.REGIONAL and rdb.MUNICIPAL in roles:
            municipalities, late = self._open_municipalities(item, roadmap, due_on, r)
            if late:
                pending = True
                lines.append(
                    self._late_line(
                        DIGEST_MUNICIPALITIES, municipalities, late, self.geo.municipality_name
                    )
                )
        institutions_only = rdb.INSTITUTION in roles and not roles & {rdb.MUNICIPAL, rdb.DIRECTOR}
        if not pending and r.role == Role.REGIONAL and institutions_only:
            lines.append(DIGEST_INFO.format(executors=shorten(item.executors or "—", 120)))
            pending = True
        return lines if pending else None

    async def _overdue(self, r: Recipient, rows: list[Delivery]) -> tuple[OutText | None, set]:
        by_roadmap: dict[int, list[str]] = defaultdict(list)
        used: set[int] = set()
        for row, item, roadmap in self._active_items(rows):
            roles = set(item.executor_roles or [])
            if r.role == Role.MUNICIPAL and rdb.DIRECTOR in roles:
                _, late = self._open_schools(item, roadmap, row.due_on, r)
                names = self._names(late, self.geo.school_name)
            elif r.role == Role.REGIONAL and rdb.MUNICIPAL in roles:
                _, late = self._open_municipalities(item, roadmap, row.due_on, r)
                names = self._names(late, self.geo.municipality_name)
            else:
                continue
            if not names:
                continue
            by_roadmap[roadmap.id].extend(
                [
                    OVERDUE_LINE.format(
                        number=item.number.rstrip("."),
                        action=shorten(item.action),
                        due=human_date(row.due_on),
                    ),
                    OVERDUE_SCHOOLS.format(count=len(names), names=listed(names)),
                ]
            )
            used.add(row.id)
        if not used:
            return None, used
        parts = [
            "\n".join(
                [
                    OVERDUE_TITLE.format(
                        roadmap=shorten(self.roadmaps[rid].title, 90),
                        scope=self._scope_name(r),
                    ),
                    *lines,
                ]
            )
            for rid, lines in by_roadmap.items()
        ]
        blocked = await self._unreachable_below(r)
        if blocked:
            parts.append(UNREACHABLE_LINE.format(names=listed(blocked)))
        return OutText("\n\n".join(parts)), used

    async def _campaign(self, r: Recipient, row: Delivery) -> tuple[OutText | None, set]:
        session = self.session
        campaign = await session.get(Campaign, row.campaign_id)
        if campaign is None or campaign.closed_at is not None:
            return None, set()
        if r.role == Role.DIRECTOR:
            key = respondent_key(r.school_id, None)
        else:
            key = respondent_key(None, r.municipality_id)
        target = await session.scalar(
            select(CampaignTarget.id).where(
                CampaignTarget.campaign_id == campaign.id, CampaignTarget.respondent_key == key
            )
        )
        if target is None:
            return None, set()
        response = await session.scalar(
            select(Response).where(
                Response.campaign_id == campaign.id, Response.respondent_key == key
            )
        )
        if response is not None and response.status in SENT_STATUSES:
            return None, set()
        today = self._today(r)
        left = days_left((campaign.deadline - today).days)
        progress = await self._progress(campaign, response, r)
        if progress is None:
            text = CAMPAIGN_TEXT_NO_PROGRESS.format(
                title=campaign.title, left=left, deadline=human_date(campaign.deadline)
            )
        else:
            done, total = progress
            text = CAMPAIGN_TEXT.format(
                title=campaign.title,
                left=left,
                deadline=human_date(campaign.deadline),
                done=done,
                total=total,
            )
        label = BTN_CONTINUE if response is not None else BTN_START
        button = Button(label, cb.encode(cb.Action.CAMPAIGN, campaign.id))
        return OutText(text, [[button]]), {row.id}

    async def _progress(
        self, campaign: Campaign, response: Response | None, r: Recipient
    ) -> tuple[int, int] | None:
        forms = self.forms
        if forms is None:
            return None
        try:
            engine = forms.engine(
                campaign.form_id, response.form_version if response else campaign.form_version
            )
        except LookupError:
            return None
        flags: dict[str, bool] = {}
        if r.school_id is not None:
            school = await self.session.get(School, r.school_id)
            flags = school.flags() if school else {}
        answers = await repo.load_answers(self.session, response.id) if response else {}
        return engine.progress(answers, flags)

    async def _campaign_overdue(
        self, r: Recipient, rows: list[Delivery]
    ) -> tuple[OutText | None, set]:
        parts = []
        used: set[int] = set()
        for row in rows:
            campaign = await self.session.get(Campaign, row.campaign_id)
            if campaign is None or campaign.closed_at is not None:
                continue
            submitted = set(
                await self.session.scalars(
                    select(Response.respondent_key).where(
                        Response.campaign_id == campaign.id,
                        Response.status.in_(SENT_STATUSES),
                    )
                )
            )
            names = []
            for t in await self.session.scalars(
                select(CampaignTarget).where(CampaignTarget.campaign_id == campaign.id)
            ):
                if t.respondent_key in submitted:
                    continue
                if r.role == Role.MUNICIPAL and t.school_id is not None:
                    if (t.municipality_id or self.geo.school_municipality.get(t.school_id)) == (
                        r.municipality_id
                    ):
                        names.append(self.geo.school_name.get(t.school_id, str(t.school_id)))
                elif r.role == Role.REGIONAL and t.school_id is None and t.municipality_id:
                    region = self.geo.municipality_region.get(t.municipality_id)
                    if r.region_id is None or region == r.region_id:
                        names.append(self.geo.municipality_name.get(t.municipality_id, ""))
            if not names:
                continue
            names.sort()
            parts.append(
                CAMPAIGN_OVERDUE_TITLE.format(
                    title=campaign.title, deadline=human_date(campaign.deadline), count=len(names)
                )
                + "\n"
                + listed(names, 50)
            )
            used.add(row.id)
        if not used:
            return None, used
        blocked = await self._unreachable_below(r)
        if blocked:
            parts.append(UNREACHABLE_LINE.format(names=listed(blocked)))
        return OutText("\n\n".join(parts)), used

    async def _unreachable_below(self, r: Recipient) -> list[str]:
        return await unreachable_below(self.session, r.role, r.municipality_id, r.region_id)
