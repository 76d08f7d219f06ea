"""Queries and short write operations used by the conversation and the CLI."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import delete, event, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction, aliased

from forms.engine import AnswerState, Slot
from storage.audit import audit, document_ref, same_value
from storage.models import (
    Account,
    Answer,
    Attachment,
    AttachmentStatus,
    Campaign,
    CampaignTarget,
    ConversationState,
    Invite,
    LinkCode,
    LinkFailure,
    Municipality,
    Person,
    Region,
    Response,
    ResponseStatus,
    Role,
    School,
    respondent_key,
    utcnow,
)

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: codes are read aloud and retyped
CODE_LENGTH = 8
COUNTED_ATTACHMENTS = (AttachmentStatus.STORED, AttachmentStatus.PENDING)


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normalize_code(text: str) -> str:
    return text.strip().upper().replace(" ", "")


# --- people and accounts -------------------------------------------------------------------


async def load_sender(
    session: AsyncSession, platform: str, user_id: str
) -> tuple[Account, Person, ConversationState, bool] | None:
    """The sender's account, person and conversation state in one query (the hot path), and
    whether the person has accounts on other platforms (only then is their state consulted).
    ``Person.removed_at`` and ``Account.deactivated_at`` come with the rows: the conversation
    refuses a closed sender without another query."""
    other = aliased(Account)
    linked = (
        select(other.id)
        .where(other.person_id == Account.person_id, other.id != Account.id)
        .exists()
        .label("linked")
    )
    row = (
        await session.execute(
            select(Account, Person, ConversationState, linked)
            .join(Person, Person.id == Account.person_id)
            .outerjoin(ConversationState, ConversationState.account_id == Account.id)
            .where(Account.platform == platform, Account.platform_user_id == user_id)
        )
    ).first()
    if row is None:
        return None
    account, person, state, has_others = row
    if state is None:
        state = ConversationState(account_id=account.id, mode="idle", row=0, data={})
        if person.removed_at is None and account.deactivated_at is None:
            session.add(state)  # a closed account is refused with nothing written
    return account, person, state, bool(has_others)


async def find_account(session: AsyncSession, platform: str, user_id: str) -> Account | None:
    return await session.scalar(
        select(Account).where(Account.platform == platform, Account.platform_user_id == user_id)
    )


async def create_account(
    session: AsyncSession,
    person: Person,
    platform: str,
    user_id: str,
    chat_id: str,
    display_name: str | None,
) -> Account:
    account = Account(
        person=person,
        platform=platform,
        platform_user_id=user_id,
        chat_id=chat_id,
        display_name=display_name,
    )
    session.add(account)
    await session.flush()
    return account


async def find_invite(session: AsyncSession, code: str) -> Invite | None:
    return await session.scalar(select(Invite).where(Invite.code == normalize_code(code)))


# --- link codes (one person, several platforms) ---------------------------------------------


def as_utc(moment: datetime) -> datetime:
    """SQLite returns naive datetimes; everything stored is UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


async def code_taken(session: AsyncSession, code: str) -> bool:
    """Invite and link codes share one namespace: /start КОД accepts both."""
    if await session.scalar(select(Invite.id).where(Invite.code == code)) is not None:
        return True
    return await session.scalar(select(LinkCode.id).where(LinkCode.code == code)) is not None


async def issue_link_code(
    session: AsyncSession, account: Account, now: datetime, expires_at: datetime
) -> LinkCode:
    """A fresh code for the account's person; the account's earlier unused codes expire."""
    for old in await session.scalars(
        select(LinkCode).where(
            LinkCode.account_id == account.id,
            LinkCode.used_at.is_(None),
            LinkCode.expires_at > now,
        )
    ):
        old.expires_at = now
    code = new_code()
    while await code_taken(session, code):
        code = new_code()
    link = LinkCode(
        code=code,
        person_id=account.person_id,
        account_id=account.id,
        created_at=now,
        expires_at=expires_at,
    )
    session.add(link)
    await session.flush()
    return link


async def find_link_code(session: AsyncSession, code: str) -> LinkCode | None:
    return await session.scalar(select(LinkCode).where(LinkCode.code == normalize_code(code)))


async def link_failures_since(
    session: AsyncSession, platform: str, user_id: str, since: datetime
) -> int:
    return await session.scalar(
        select(func.count())
        .select_from(LinkFailure)
        .where(
            LinkFailure.platform == platform,
            LinkFailure.platform_user_id == user_id,
            LinkFailure.at >= since,
        )
    )


def record_link_failure(session: AsyncSession, platform: str, user_id: str, at: datetime) -> None:
    session.add(LinkFailure(platform=platform, platform_user_id=user_id, at=at))


async def accounts_of(session: AsyncSession, person_id: int) -> list[Account]:
    return list(
        await session.scalars(
            select(Account).where(Account.person_id == person_id).order_by(Account.id)
        )
    )


def respondent_key_for(person: Person, respondent: str) -> str | None:
    """The respondent a person answers for in a form of the given respondent level."""
    if respondent == "school" and person.school_id is not None:
        return respondent_key(person.school_id, None)
    if (
        respondent == "municipality"
        and person.role == Role.MUNICIPAL
        and person.municipality_id is not None
    ):
        return respondent_key(None, person.municipality_id)
    return None


# --- campaigns and responses ---------------------------------------------------------------


async def open_campaigns_for(
    session: AsyncSession, keys: Iterable[str], today: date
) -> list[Campaign]:
    keys = list(keys)
    if not keys:
        return []
    rows = await session.scalars(
        select(Campaign)
        .join(CampaignTarget, CampaignTarget.campaign_id == Campaign.id)
        .where(
            CampaignTarget.respondent_key.in_(keys),
            Campaign.opens_on <= today,
            Campaign.closed_at.is_(None),
        )
        .order_by(Campaign.deadline, Campaign.id)
        .distinct()
    )
    return list(rows)


async def load_response(
    session: AsyncSession, response_id: int
) -> tuple[Response, Campaign, School | None] | None:
    """A response with its campaign and its school (if any) in one query."""
    row = (
        await session.execute(
            select(Response, Campaign, School)
            .join(Campaign, Campaign.id == Response.campaign_id)
            .outerjoin(School, School.id == Response.school_id)
            .where(Response.id == response_id)
        )
    ).first()
    if row is None:
        return None
    response, campaign, school = row
    return response, campaign, school


async def find_response(session: AsyncSession, campaign_id: int, key: str) -> Response | None:
    return await session.scalar(
        select(Response).where(Response.campaign_id == campaign_id, Response.respondent_key == key)
    )


async def get_or_create_response(session: AsyncSession, campaign: Campaign, key: str) -> Response:
    found = await find_response(session, campaign.id, key)
    if found:
        return found
    kind, _, raw_id = key.partition(":")
    response = Response(
        campaign_id=campaign.id,
        respondent_key=key,
        school_id=int(raw_id) if kind == "school" else None,
        municipality_id=int(raw_id) if kind == "municipality" else None,
        form_version=campaign.form_version,
        status=ResponseStatus.DRAFT,
    )
    try:
        async with session.begin_nested():
            session.add(response)
    except IntegrityError:  # another worker created it a moment ago
        return await session.scalar(
            select(Response).where(
                Response.campaign_id == campaign.id, Response.respondent_key == key
            )
        )
    return response


def encode_value(value: Any) -> Any:
    """JSON has no date type: dates are stored as {"date": "YYYY-MM-DD"}."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return {"date": value.isoformat()}
    return value


def decode_value(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"date"}:
        return date.fromisoformat(value["date"])
    return value


async def document_counts(session: AsyncSession, response_id: int) -> dict[tuple[str, int], int]:
    rows = await session.execute(
        select(Attachment.question_id, Attachment.row, func.count())
        .where(
            Attachment.response_id == response_id,
            Attachment.status.in_(COUNTED_ATTACHMENTS),
        )
        .group_by(Attachment.question_id, Attachment.row)
    )
    return {(qid, row): n for qid, row, n in rows}


async def load_answers(session: AsyncSession, response_id: int) -> dict[Slot, AnswerState]:
    counts = await document_counts(session, response_id)
    answers: dict[Slot, AnswerState] = {}
    rows = await session.scalars(select(Answer).where(Answer.response_id == response_id))
    for answer in rows:
        answers[Slot(answer.question_id, answer.row)] = AnswerState(
            value=decode_value(answer.value),
            note=answer.note,
            documents=counts.get((answer.question_id, answer.row), 0),
        )
    return answers


_LOADED_ANSWERS = "repo.loaded_answers"  # session.info: response id -> {(question, row): Answer}


@event.listens_for(Session, "after_transaction_end")
def _forget_loaded_answers(session: Session, _transaction: SessionTransaction) -> None:
    # The remembered rows are valid for one transaction only (also a rolled-back savepoint).
    session.info.pop(_LOADED_ANSWERS, None)


async def load_walk_rows(
    session: AsyncSession, response_id: int
) -> tuple[dict[Slot, AnswerState], list[Attachment]]:
    """A response's answers (with document counts) and counted attachments: two queries.

    The answer rows are remembered in ``session.info`` for this transaction, so
    :func:`save_answer`/:func:`save_note` find them without another query (and without an
    autoflush in the middle of a turn).
    """
    attachments = await attachments_for(session, response_id)
    counts: dict[tuple[str, int], int] = {}
    for attachment in attachments:
        key = (attachment.question_id, attachment.row)
        counts[key] = counts.get(key, 0) + 1
    rows = list(await session.scalars(select(Answer).where(Answer.response_id == response_id)))
    session.info.setdefault(_LOADED_ANSWERS, {})[response_id] = {
        (answer.question_id, answer.row): answer for answer in rows
    }
    answers = {
        Slot(answer.question_id, answer.row): AnswerState(
            value=decode_value(answer.value),
            note=answer.note,
            documents=counts.get((answer.question_id, answer.row), 0),
        )
        for answer in rows
    }
    return answers, attachments


async def find_answer(session: AsyncSession, response_id: int, slot: Slot) -> Answer | None:
    loaded = session.info.get(_LOADED_ANSWERS, {}).get(response_id)
    if loaded is not None:
        return loaded.get((slot.question_id, slot.row))
    return await session.scalar(
        select(Answer).where(
            Answer.response_id == response_id,
            Answer.question_id == slot.question_id,
            Answer.row == slot.row,
        )
    )


async def save_answer(
    session: AsyncSession,
    response: Response,
    slot: Slot,
    value: Any,
    person_id: int | None,
    *,
    note: str | None = None,
    keep_note: bool = True,
) -> None:
    """Insert or update one answer; a changed value (or note) gets an audit row, an unchanged
    one none (the hot path pins the statements of a typed answer)."""
    answer = await find_answer(session, response.id, slot)
    encoded = encode_value(value)
    old = answer.value if answer else None
    old_note = answer.note if answer else None
    if answer is None:
        answer = Answer(
            response_id=response.id,
            question_id=slot.question_id,
            row=slot.row,
            form_version=response.form_version,
        )
        session.add(answer)
        loaded = session.info.get(_LOADED_ANSWERS, {}).get(response.id)
        if loaded is not None:
            loaded[(slot.question_id, slot.row)] = answer
    answer.value = encoded
    if note is not None or not keep_note:
        answer.note = note
    answer.answered_by = person_id
    answer.answered_at = utcnow()
    answer.form_version = response.form_version
    response.updated_at = utcnow()
    where = {"question": slot.question_id, "row": slot.row}
    if not same_value(old, encoded):
        await audit(
            session, "answer", "response", response.id, person_id, **where, old=old, new=encoded
        )
    if answer.note != old_note:
        await audit(
            session,
            "note",
            "response",
            response.id,
            person_id,
            **where,
            old=old_note,
            new=answer.note,
        )


async def save_note(
    session: AsyncSession, response: Response, slot: Slot, note: str, person_id: int | None
) -> None:
    answer = await find_answer(session, response.id, slot)
    if answer is None:
        raise LookupError(f"no answer to attach a note to: {slot}")
    old = answer.note
    if old == note:
        return
    answer.note = note
    answer.answered_by = person_id
    answer.answered_at = utcnow()
    response.updated_at = utcnow()
    await audit(
        session,
        "note",
        "response",
        response.id,
        person_id,
        question=slot.question_id,
        row=slot.row,
        old=old,
        new=note,
    )


async def attachments_for(
    session: AsyncSession, response_id: int, slot: Slot | None = None
) -> list[Attachment]:
    query = select(Attachment).where(
        Attachment.response_id == response_id, Attachment.status.in_(COUNTED_ATTACHMENTS)
    )
    if slot is not None:
        query = query.where(Attachment.question_id == slot.question_id, Attachment.row == slot.row)
    return list(await session.scalars(query.order_by(Attachment.id)))


async def attachment_of(
    session: AsyncSession, response_id: int, attachment_id: int | None
) -> Attachment | None:
    """The attachment, only if it belongs to this response and still counts."""
    if attachment_id is None:
        return None
    attachment = await session.get(Attachment, attachment_id)
    if (
        attachment is None
        or attachment.response_id != response_id
        or attachment.status not in COUNTED_ATTACHMENTS
    ):
        return None
    return attachment


async def remove_attachment(
    session: AsyncSession, response: Response, attachment: Attachment, person_id: int | None
) -> None:
    """Detach one file from its answer; the stored bytes stay (other answers may share them)."""
    await session.delete(attachment)
    response.updated_at = utcnow()
    await audit(
        session,
        "attachment_removed",
        "response",
        response.id,
        person_id,
        question=attachment.question_id,
        row=attachment.row,
        attachment=attachment.id,
        name=attachment.original_name,
        sha256=attachment.sha256,
        old=document_ref(attachment.original_name, attachment.sha256),
        new=None,
    )
    await session.flush()


async def remove_attachments(
    session: AsyncSession, response: Response, slot: Slot, person_id: int | None
) -> int:
    """Detach every file of one answer («нет» after «да»): an audit row per file."""
    removed = list(
        await session.execute(
            delete(Attachment)
            .where(
                Attachment.response_id == response.id,
                Attachment.question_id == slot.question_id,
                Attachment.row == slot.row,
            )
            .returning(Attachment.id, Attachment.original_name, Attachment.sha256)
        )
    )
    for attachment_id, name, sha256 in removed:
        await audit(
            session,
            "attachment_removed",
            "response",
            response.id,
            person_id,
            question=slot.question_id,
            row=slot.row,
            attachment=attachment_id,
            old=document_ref(name, sha256),
            new=None,
        )
    return len(removed)


# --- conversation state ---------------------------------------------------------------------


async def get_state(session: AsyncSession, account_id: int) -> ConversationState:
    state = await session.get(ConversationState, account_id)
    if state is None:
        state = ConversationState(account_id=account_id, mode="idle", row=0, data={})
        session.add(state)
    return state


async def person_state(
    session: AsyncSession, account: Account, state: ConversationState | None = None
) -> ConversationState:
    """The account's state, brought up to the person's latest one on any platform.

    Each account keeps its own row; when another account of the same person moved on more
    recently (the person switched messengers), its place is copied here, so the walk
    continues where the person last was.
    """
    if state is None:
        state = await get_state(session, account.id)
    newest = await session.scalar(
        select(ConversationState)
        .join(Account, Account.id == ConversationState.account_id)
        .where(Account.person_id == account.person_id, Account.id != account.id)
        .order_by(ConversationState.updated_at.desc())
        .limit(1)
    )
    if newest is None:
        return state
    if state.updated_at is None or as_utc(newest.updated_at) > as_utc(state.updated_at):
        state.mode = newest.mode
        state.response_id = newest.response_id
        state.question_id = newest.question_id
        state.row = newest.row
        state.data = dict(newest.data or {})
        state.updated_at = utcnow()
    return state


# --- registry (schools, municipalities) -----------------------------------------------------


async def get_or_create_region(
    session: AsyncSession, name: str, timezone: str = "Europe/Moscow"
) -> Region:
    region = await session.scalar(select(Region).where(Region.name == name))
    if region is None:
        region = Region(name=name, timezone=timezone)
        session.add(region)
        await session.flush()
    return region


async def get_or_create_municipality(
    session: AsyncSession, region: Region, name: str
) -> Municipality:
    found = await session.scalar(
        select(Municipality).where(Municipality.region_id == region.id, Municipality.name == name)
    )
    if found is None:
        found = Municipality(region_id=region.id, name=name)
        session.add(found)
        await session.flush()
    return found


async def schools_in_scope(
    session: AsyncSession, municipality_id: int | None = None
) -> list[School]:
    query = select(School).order_by(School.municipality_id, School.name)
    if municipality_id is not None:
        query = query.where(School.municipality_id == municipality_id)
    return list(await session.scalars(query))
