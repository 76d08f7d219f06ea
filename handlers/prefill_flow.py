"""«Start from last time»: a new campaign of a form the respondent has submitted before
offers their last answers, to confirm or correct (offered once, before the response exists)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from forms.engine import FormEngine
from handlers import callbacks as cb
from handlers import texts
from handlers.types import Button
from handlers.walk_state import Mode, Turn
from storage import prefill
from storage.models import Campaign, Response

PREVIOUS = "prev"  # c|<campaign>|prev: start from the last answers
FRESH = "new"  # c|<campaign>|new: start from scratch


async def offer(turn: Turn, campaign: Campaign, key: str, zone: ZoneInfo) -> bool:
    """Show the choice if there is something to start from; True when shown."""
    found = await prefill.previous_response(turn.session, campaign, key)
    if found is None:
        return False
    response, source = found
    turn.state.mode = Mode.CHOOSE
    turn.say(
        texts.PREFILL_OFFER.format(
            number=source.id, title=source.title, when=_day(response.submitted_at, zone)
        ),
        [
            [Button(texts.BTN_PREFILL, cb.encode(cb.Action.CAMPAIGN, campaign.id, PREVIOUS))],
            [Button(texts.BTN_FRESH, cb.encode(cb.Action.CAMPAIGN, campaign.id, FRESH))],
        ],
    )
    return True


async def apply(
    turn: Turn, campaign: Campaign, response: Response, key: str, engine: FormEngine
) -> str | None:
    """Copy the last answers into the new response; the review's heading, or None."""
    found = await prefill.previous_response(turn.session, campaign, key)
    if found is None:
        return None
    source, source_campaign = found

    def known(question_id: str) -> bool:
        try:
            engine.question(question_id)
        except KeyError:
            return False
        return True

    answers, documents = await prefill.copy_answers(
        turn.session, source, response, known, turn.person.id
    )
    if not answers:
        return None
    return texts.PREFILLED.format(answers=answers, documents=documents, number=source_campaign.id)


def _day(moment: datetime | None, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%d.%m.%Y") if moment else ""
