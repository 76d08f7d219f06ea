"""Database models. Every change goes through an Alembic migration in storage/migrations."""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: DateTime(timezone=True), dict[str, Any]: JSON}  # noqa: RUF012


class Role(StrEnum):
    DIRECTOR = "director"
    MUNICIPAL = "municipal"
    REGIONAL = "regional"
    ADMIN = "admin"


class ResponseStatus(StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    RETURNED = "returned"  # a coordinator sent answers back; only those are open to edit
    RESUBMITTED = "resubmitted"  # the director fixed the returned answers and sent it again
    ACCEPTED = "accepted"  # a coordinator accepted the whole response


# sent by the school: counted in figures, no reminder to submit, not editable by the school
SENT_STATUSES = (ResponseStatus.SUBMITTED, ResponseStatus.RESUBMITTED, ResponseStatus.ACCEPTED)


class Verdict(StrEnum):
    """A coordinator's verdict on one answer (and the documents behind it)."""

    ACCEPTED = "accepted"
    RETURNED = "returned"


class NotifyMode(StrEnum):
    """How a coordinator hears of submissions in their scope."""

    EACH = "each"  # a message on every submit and resubmit (the default)
    DIGEST = "digest"  # one daily digest at 09:00 local time
    OFF = "off"


class AttachmentStatus(StrEnum):
    STORED = "stored"  # bytes are under DATA_DIR, type checked by content
    PENDING = "pending"  # download failed so far; retried in the background
    FAILED = "failed"  # gave up after retries
    REJECTED = "rejected"  # content turned out to be of a type we do not accept


def respondent_key(school_id: int | None, municipality_id: int | None) -> str:
    return f"school:{school_id}" if school_id is not None else f"municipality:{municipality_id}"


class Region(Base):
    __tablename__ = "regions"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(300), unique=True)
    timezone: Mapped[str] = mapped_column(String(64), default="Europe/Moscow")

    municipalities: Mapped[list[Municipality]] = relationship(back_populates="region")


class Municipality(Base):
    __tablename__ = "municipalities"
    __table_args__ = (UniqueConstraint("region_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    region_id: Mapped[int] = mapped_column(ForeignKey("regions.id"))
    name: Mapped[str] = mapped_column(String(300))
    timezone: Mapped[str | None] = mapped_column(String(64))

    region: Mapped[Region] = relationship(back_populates="municipalities")
    schools: Mapped[list[School]] = relationship(back_populates="municipality")


class School(Base):
    __tablename__ = "schools"
    __table_args__ = (UniqueConstraint("municipality_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipalities.id"), index=True)
    code: Mapped[str | None] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(500))
    is_shnor: Mapped[bool] = mapped_column(Boolean, default=False)
    is_shnsu: Mapped[bool] = mapped_column(Boolean, default=False)
    is_risk_zone: Mapped[bool] = mapped_column(Boolean, default=False)
    director_name: Mapped[str | None] = mapped_column(String(300))

    municipality: Mapped[Municipality] = relationship(back_populates="schools")

    def flags(self) -> dict[str, bool]:
        return {"shnor": self.is_shnor, "shnsu": self.is_shnsu, "risk_zone": self.is_risk_zone}


class Person(Base):
    __tablename__ = "people"

    id: Mapped[int] = mapped_column(primary_key=True)
    full_name: Mapped[str | None] = mapped_column(String(300))
    role: Mapped[str] = mapped_column(String(16))
    region_id: Mapped[int | None] = mapped_column(ForeignKey("regions.id"))
    municipality_id: Mapped[int | None] = mapped_column(ForeignKey("municipalities.id"))
    school_id: Mapped[int | None] = mapped_column(ForeignKey("schools.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # where reminders and notices go ("tg", "vk", "max"); NULL: the platform used last
    notify_platform: Mapped[str | None] = mapped_column(String(16))
    notify_mode: Mapped[str | None] = mapped_column(String(16))  # NotifyMode; NULL: each
    removed_at: Mapped[datetime | None]  # an admin removed the person: no access, no messages

    accounts: Mapped[list[Account]] = relationship(back_populates="person")
    school: Mapped[School | None] = relationship()
    municipality: Mapped[Municipality | None] = relationship()


class Account(Base):
    """A platform identity (Telegram or VK user) bound to a person."""

    __tablename__ = "accounts"
    __table_args__ = (UniqueConstraint("platform", "platform_user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    platform: Mapped[str] = mapped_column(String(16))
    platform_user_id: Mapped[str] = mapped_column(String(64))
    chat_id: Mapped[str] = mapped_column(String(64))
    display_name: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    unreachable_since: Mapped[datetime | None]
    last_active_at: Mapped[datetime | None]  # the last event from this account
    deactivated_at: Mapped[datetime | None]  # an admin switched this account off

    person: Mapped[Person] = relationship(back_populates="accounts")


class LinkCode(Base):
    """A one-time code that binds another platform's account to the same person (/link)."""

    __tablename__ = "link_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))  # who asked for it
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    used_by_account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))


class LinkFailure(Base):
    """A wrong code sent by a platform user: the rate limit against guessing codes."""

    __tablename__ = "link_failures"
    __table_args__ = (Index("ix_link_failures_user", "platform", "platform_user_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    platform: Mapped[str] = mapped_column(String(16))
    platform_user_id: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(default=utcnow)


class Invite(Base):
    __tablename__ = "invites"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    region_id: Mapped[int | None] = mapped_column(ForeignKey("regions.id"))
    municipality_id: Mapped[int | None] = mapped_column(ForeignKey("municipalities.id"))
    school_id: Mapped[int | None] = mapped_column(ForeignKey("schools.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    used_at: Mapped[datetime | None]
    used_by_account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    revoked_at: Mapped[datetime | None]


class FormVersion(Base):
    __tablename__ = "form_versions"
    __table_args__ = (UniqueConstraint("form_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    form_id: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(500))
    checksum: Mapped[str] = mapped_column(String(64))
    definition: Mapped[dict[str, Any]]
    loaded_at: Mapped[datetime] = mapped_column(default=utcnow)


class Campaign(Base):
    """A form opened for a set of schools or municipalities, with a deadline."""

    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(primary_key=True)
    form_id: Mapped[str] = mapped_column(String(64))
    form_version: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(500))
    opens_on: Mapped[date] = mapped_column(Date)
    deadline: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None]

    targets: Mapped[list[CampaignTarget]] = relationship(cascade="all, delete-orphan")


class CampaignTarget(Base):
    __tablename__ = "campaign_targets"
    __table_args__ = (UniqueConstraint("campaign_id", "respondent_key", name="uq_target"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), index=True)
    respondent_key: Mapped[str] = mapped_column(String(32))
    school_id: Mapped[int | None] = mapped_column(ForeignKey("schools.id"), index=True)
    municipality_id: Mapped[int | None] = mapped_column(ForeignKey("municipalities.id"))


class Response(Base):
    """One per respondent (a school or a municipality) and campaign."""

    __tablename__ = "responses"
    __table_args__ = (UniqueConstraint("campaign_id", "respondent_key", name="uq_response"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), index=True)
    # "school:<id>" or "municipality:<id>": NULLs never collide in a unique constraint.
    respondent_key: Mapped[str] = mapped_column(String(32))
    school_id: Mapped[int | None] = mapped_column(ForeignKey("schools.id"))
    municipality_id: Mapped[int | None] = mapped_column(ForeignKey("municipalities.id"))
    form_version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default=ResponseStatus.DRAFT)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    submitted_at: Mapped[datetime | None]
    submitted_by: Mapped[int | None] = mapped_column(ForeignKey("people.id"))

    campaign: Mapped[Campaign] = relationship()


class Answer(Base):
    __tablename__ = "answers"
    __table_args__ = (UniqueConstraint("response_id", "question_id", "row", name="uq_answer"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    response_id: Mapped[int] = mapped_column(ForeignKey("responses.id"), index=True)
    question_id: Mapped[str] = mapped_column(String(64))
    row: Mapped[int] = mapped_column(Integer, default=0)
    value: Mapped[Any] = mapped_column(JSON, nullable=True)
    note: Mapped[str | None] = mapped_column(Text)
    form_version: Mapped[int] = mapped_column(Integer)
    answered_by: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    answered_at: Mapped[datetime] = mapped_column(default=utcnow)


class Attachment(Base):
    __tablename__ = "attachments"
    __table_args__ = (Index("ix_attachments_slot", "response_id", "question_id", "row"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    response_id: Mapped[int] = mapped_column(ForeignKey("responses.id"))
    question_id: Mapped[str] = mapped_column(String(64))
    row: Mapped[int] = mapped_column(Integer, default=0)
    original_name: Mapped[str] = mapped_column(String(500))
    size: Mapped[int | None] = mapped_column(BigInteger)
    mime_type: Mapped[str | None] = mapped_column(String(200))
    sha256: Mapped[str | None] = mapped_column(String(64))
    storage_path: Mapped[str | None] = mapped_column(String(500))
    platform: Mapped[str] = mapped_column(String(16))
    platform_file_id: Mapped[str | None] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(16), default=AttachmentStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    uploaded_by: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ConversationState(Base):
    """Where an account is in the conversation; survives restarts and moves between workers."""

    __tablename__ = "conversation_states"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    mode: Mapped[str] = mapped_column(String(32), default="idle")
    response_id: Mapped[int | None] = mapped_column(ForeignKey("responses.id"))
    question_id: Mapped[str | None] = mapped_column(String(64))
    row: Mapped[int] = mapped_column(Integer, default=0)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AuditLog(Base):
    """Who changed what, when, with ``details`` {"old": …, "new": …} for answers, documents
    and review verdicts (``entity`` "response", ``entity_id`` the response: its «история»)."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_entity", "entity", "entity_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    action: Mapped[str] = mapped_column(String(64))
    entity: Mapped[str] = mapped_column(String(64))
    entity_id: Mapped[int | None] = mapped_column(Integer)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


# --- roadmaps and reminders ------------------------------------------------------------------


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # planned, waiting for its time
    CLAIMED = "claimed"  # a process took it; attempts > 0 once handed to the messenger
    SENT = "sent"
    MISSED = "missed"  # its send window passed while the bot was down; never sent late
    FAILED = "failed"  # the platform refused, or the process died mid-send (never resent)
    UNREACHABLE = "unreachable"  # the recipient blocked the bot
    CANCELLED = "cancelled"  # nothing to say any more (done, submitted) when its time came


class DeliveryKind(StrEnum):
    ITEM = "item"  # a roadmap item to a director (their school) or coordinator (digest)
    OVERDUE = "overdue"  # a passed roadmap deadline, to the coordinator one level up
    CAMPAIGN = "campaign"  # a questionnaire deadline, to a respondent who has not submitted
    CAMPAIGN_OVERDUE = "campaign_overdue"  # who has not submitted, to the coordinator above
    NOTICE = "notice"  # an event message (submitted, returned, accepted): text in ``message``
    DIGEST = "digest"  # a coordinator's daily digest of submissions: text in ``message``
    BROADCAST = "broadcast"  # a coordinator's or admin's message to a scope


class Roadmap(Base):
    """A plan-schedule («дорожная карта») for a region or a municipality."""

    __tablename__ = "roadmaps"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(100), unique=True)
    title: Mapped[str] = mapped_column(String(1000))
    level: Mapped[str] = mapped_column(String(16))  # region | municipality | school
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    # Scope: whose schools it covers. Both empty: every school in the database.
    region_id: Mapped[int | None] = mapped_column(ForeignKey("regions.id"))
    municipality_id: Mapped[int | None] = mapped_column(ForeignKey("municipalities.id"))
    source: Mapped[str | None] = mapped_column(String(500))
    checksum: Mapped[str | None] = mapped_column(String(64))
    definition: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    imported_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Which schools of the scope: roadmaps.audience.AppliesTo as JSON; NULL (rows imported
    # before 0003): every school.
    applies_to: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)

    items: Mapped[list[RoadmapItem]] = relationship(
        back_populates="roadmap", cascade="all, delete-orphan", order_by="RoadmapItem.position"
    )


class RoadmapItem(Base):
    __tablename__ = "roadmap_items"
    __table_args__ = (UniqueConstraint("roadmap_id", "number", name="uq_roadmap_item"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    roadmap_id: Mapped[int] = mapped_column(ForeignKey("roadmaps.id"), index=True)
    number: Mapped[str] = mapped_column(String(32))
    position: Mapped[int] = mapped_column(Integer, default=0)
    section: Mapped[str | None] = mapped_column(String(500))
    action: Mapped[str] = mapped_column(Text)
    deadline_text: Mapped[str] = mapped_column(String(500), default="")
    deadline: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    due_date: Mapped[date | None] = mapped_column(Date, index=True)  # the last due date
    due_dates: Mapped[list[str]] = mapped_column(JSON, default=list)  # ISO dates, ascending
    executor_roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    executors: Mapped[str | None] = mapped_column(Text)
    level: Mapped[str | None] = mapped_column(String(16))
    indicator: Mapped[str | None] = mapped_column(Text)
    evidence: Mapped[str | None] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # roadmaps.audience.AppliesTo as JSON; NULL: as its roadmap
    applies_to: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)

    roadmap: Mapped[Roadmap] = relationship(back_populates="items")


class ItemCompletion(Base):
    """A school or a municipality reports one occurrence of a roadmap item as done."""

    __tablename__ = "item_completions"
    __table_args__ = (
        UniqueConstraint("item_id", "respondent_key", "due_on", name="uq_item_completion"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("roadmap_items.id"), index=True)
    respondent_key: Mapped[str] = mapped_column(String(32))
    school_id: Mapped[int | None] = mapped_column(ForeignKey("schools.id"), index=True)
    municipality_id: Mapped[int | None] = mapped_column(ForeignKey("municipalities.id"))
    due_on: Mapped[date] = mapped_column(Date)  # which occurrence (recurring items)
    done_at: Mapped[datetime] = mapped_column(default=utcnow)
    done_by: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    note: Mapped[str | None] = mapped_column(Text)
    evidence_name: Mapped[str | None] = mapped_column(String(500))
    evidence_path: Mapped[str | None] = mapped_column(String(500))
    evidence_sha256: Mapped[str | None] = mapped_column(String(64))
    evidence_size: Mapped[int | None] = mapped_column(BigInteger)
    evidence_mime: Mapped[str | None] = mapped_column(String(200))
    evidence_platform: Mapped[str | None] = mapped_column(String(16))
    evidence_file_id: Mapped[str | None] = mapped_column(String(300))


class Delivery(Base):
    """One unprompted message to one account, sent at most once.

    ``key`` is unique: kind, item or campaign, recipient account, offset and due date.
    """

    __tablename__ = "deliveries"
    __table_args__ = (Index("ix_deliveries_due", "status", "due_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(24))
    item_id: Mapped[int | None] = mapped_column(ForeignKey("roadmap_items.id"), index=True)
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    platform: Mapped[str] = mapped_column(String(16))
    offset_days: Mapped[int] = mapped_column(Integer)  # days before the due date; -1: overdue
    due_on: Mapped[date] = mapped_column(Date)  # the deadline the message is about
    due_at: Mapped[datetime]  # UTC: when to send
    send_until: Mapped[datetime]  # UTC: after this the delivery is missed (grace, quiet hours)
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING)
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    claimed_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # NOTICE / DIGEST / BROADCAST: the message as bot.processor.encode() stores it
    message: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    broadcast_id: Mapped[int | None] = mapped_column(ForeignKey("broadcasts.id"), index=True)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))  # the recipient


# --- review of responses ----------------------------------------------------------------------


class ResponseEvent(Base):
    """One step of a response's review: submitted, returned, resubmitted, accepted, reopened."""

    __tablename__ = "response_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    response_id: Mapped[int] = mapped_column(ForeignKey("responses.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))  # the status the response moved to
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    comment: Mapped[str | None] = mapped_column(Text)


class AnswerReview(Base):
    """The latest verdict on one answer; every change is in the audit log as well."""

    __tablename__ = "answer_reviews"
    __table_args__ = (
        UniqueConstraint("response_id", "question_id", "row", name="uq_answer_review"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    response_id: Mapped[int] = mapped_column(ForeignKey("responses.id"), index=True)
    question_id: Mapped[str] = mapped_column(String(64))
    row: Mapped[int] = mapped_column(Integer, default=0)
    verdict: Mapped[str] = mapped_column(String(16))  # Verdict
    comment: Mapped[str | None] = mapped_column(Text)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    fixed_at: Mapped[datetime | None]  # the director changed a returned answer since
    # the answer as the coordinator saw it: {"value", "note", "documents": [names]}, so a
    # resubmission can show old → new
    snapshot: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class Broadcast(Base):
    """A message to everybody in a scope, confirmed by its sender; one delivery per person."""

    __tablename__ = "broadcasts"

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"))  # the sender
    audience: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # who, in which scope
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    confirmed_at: Mapped[datetime | None]
    recipients: Mapped[int] = mapped_column(Integer, default=0)


# --- durable intake -----------------------------------------------------------------------------


class InboxStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class OutboxStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"  # unknown whether it arrived; not sent again
    BLOCKED = "blocked"  # the recipient blocked the bot (the account is marked unreachable)
    HANDED = "handed"  # carried in the webhook's HTTP answer (bot/handover.py): never sent again


class InboxEvent(Base):
    """One platform update as received; unique per platform so a redelivery is ignored."""

    __tablename__ = "inbox"
    __table_args__ = (
        UniqueConstraint("platform", "event_key", name="uq_inbox_platform_event_key"),
        Index("ix_inbox_pending_chat", "status", "platform", "chat_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    platform: Mapped[str] = mapped_column(String(16))
    event_key: Mapped[str] = mapped_column(String(128))
    chat_id: Mapped[str | None] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16), default=InboxStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error_type: Mapped[str | None] = mapped_column(String(200))
    received_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    processed_at: Mapped[datetime | None]


class OutboxMessage(Base):
    """A reply recorded with its event's effects and sent after the commit, in ``position``."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_pending_chat", "status", "platform", "chat_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    inbox_id: Mapped[int | None] = mapped_column(
        ForeignKey("inbox.id", ondelete="CASCADE"), index=True
    )
    platform: Mapped[str] = mapped_column(String(16))
    chat_id: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(Integer, default=0)
    message: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16), default=OutboxStatus.PENDING)
    platform_message_id: Mapped[str | None] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
