"""What one event works on: the turn (sender, state, replies) and the walk (a response)."""

from __future__ import annotations

from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from forms.engine import AnswerState, FormEngine, Slot
from handlers import render
from handlers.types import Button, Incoming, Outgoing, OutText
from storage.models import (
    SENT_STATUSES,
    Account,
    AnswerReview,
    Campaign,
    ConversationState,
    Person,
    Response,
)

LOCKED = SENT_STATUSES


class WalkKind:
    """``state.data["walk"]``: answering one question after another until none is left."""

    GAPS = "gaps"  # after a blocked submit: every unanswered or contradicting answer
    CONFLICTS = "conflicts"  # after an edit: every answer that now contradicts another
    RETURNED = "returned"  # «rx»: the answers a coordinator returned, in form order, once


class Mode:
    IDLE = "idle"
    CHOOSE = "choose"
    QUESTION = "question"
    DOCUMENTS = "documents"
    NOTE = "note"
    REVIEW = "review"
    CONFIRM = "confirm"


@dataclass(frozen=True)
class CoreConfig:
    admins: tuple[tuple[str, str], ...] = ()  # (platform, user id)
    download_limits: dict[str, int] = field(default_factory=dict)
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Europe/Moscow"))
    download_timeout: float = 60.0
    # a questionnaire document slower than this is finished in the background
    # (scheduler/downloads.py), so a hung platform never holds the chat
    attach_timeout: float = 5.0
    default_download_limit: int = 20 * 1024 * 1024

    def download_limit(self, platform: str) -> int:
        return self.download_limits.get(platform, self.default_download_limit)


@dataclass
class Turn:
    """Everything one event needs; `out` collects the replies."""

    session: AsyncSession
    event: Incoming
    account: Account
    person: Person
    state: ConversationState
    out: list[Outgoing] = field(default_factory=list)

    def say(self, text: str, buttons: list[list[Button]] | None = None) -> None:
        self.out.append(OutText(text, buttons or []))


@dataclass
class Walk:
    response: Response
    campaign: Campaign
    engine: FormEngine
    answers: dict[Slot, AnswerState]
    flags: dict[str, bool]
    files: dict[Slot, list[render.FileRef]] = field(default_factory=dict)
    # the answers a coordinator returned in this round (storage.review.open_returns)
    returned: dict[Slot, AnswerReview] = field(default_factory=dict)

    @property
    def locked(self) -> bool:
        """No answers or submit: sent for review, or the campaign is closed."""
        return self.response.status in LOCKED or self.campaign.closed_at is not None

    def editable(self, slot: Slot) -> bool:
        """Returned with comments, only the returned answers may change, and questions not
        answered yet (a changed answer may open new ones); a whole reopen (no returned
        answers) leaves everything open."""
        if not self.returned:
            return True
        return slot in self.returned or self.answers.get(slot) is None
