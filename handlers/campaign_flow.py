"""Campaigns in the chat: which are open to the sender, the choice between them, opening one
(with the «start from last time» offer) and resuming the one in progress.

Mixed into :class:`handlers.conversation.Conversation`, whose walk and navigation it uses.
"""

from __future__ import annotations

from handlers import callbacks as cb
from handlers import prefill_flow, render, texts
from handlers.types import Button
from handlers.walk_state import Mode, Turn
from storage import repo
from storage.models import Campaign, Person


class CampaignFlow:
    def _respondent_keys(self, person: Person) -> list[str]:
        keys = []
        for respondent in ("school", "municipality"):
            key = repo.respondent_key_for(person, respondent)
            if key:
                keys.append(key)
        return keys

    async def _campaigns(self, turn: Turn) -> list[Campaign]:
        return await repo.open_campaigns_for(
            turn.session, self._respondent_keys(turn.person), self.today()
        )

    async def _offer_campaigns(self, turn: Turn, prefix: str = "") -> None:
        lines = [prefix] if prefix else []
        campaigns = await self._campaigns(turn)
        if not campaigns:
            lines.append(
                texts.NO_CAMPAIGNS if self._respondent_keys(turn.person) else texts.HELP_COMMON
            )
            turn.say("\n\n".join(lines))
            return
        lines.extend(self._campaign_line(campaign) for campaign in campaigns)
        if len(campaigns) == 1:
            turn.say(
                "\n\n".join(lines),
                [[Button(texts.BTN_START, cb.encode(cb.Action.CAMPAIGN, campaigns[0].id))]],
            )
        else:
            turn.say("\n\n".join(lines))
            await self._choose_campaign(turn, campaigns)

    def _campaign_line(self, campaign: Campaign) -> str:
        template = texts.CAMPAIGN_LATE if campaign.deadline < self.today() else texts.CAMPAIGN_OPEN
        return template.format(
            number=campaign.id,
            title=campaign.title,
            opens=texts.human_date(campaign.opens_on),
            deadline=texts.human_date(campaign.deadline),
        )

    async def _choose_campaign(self, turn: Turn, campaigns: list[Campaign]) -> None:
        turn.state.mode = Mode.CHOOSE
        turn.say(
            texts.CHOOSE_CAMPAIGN,
            [[Button(_campaign_label(c), cb.encode(cb.Action.CAMPAIGN, c.id))] for c in campaigns],
        )

    async def _resume(self, turn: Turn) -> None:
        walk = await self._current_walk(turn)
        if walk is not None and not walk.locked:
            await self._render_current(turn, walk, with_question=True)
            return
        campaigns = await self._campaigns(turn)
        if not campaigns:
            turn.say(
                texts.NO_CAMPAIGNS
                if self._respondent_keys(turn.person)
                else texts.NO_FORMS_FOR_ROLE
            )
            return
        if len(campaigns) > 1:
            await self._choose_campaign(turn, campaigns)
            return
        await self._open_campaign(turn, campaigns[0])

    async def _open_campaign(
        self, turn: Turn, campaign: Campaign, start_from: str | None = None
    ) -> None:
        engine = self.forms.engine(campaign.form_id, campaign.form_version)
        key = repo.respondent_key_for(turn.person, engine.form.respondent)
        allowed = {c.id for c in await self._campaigns(turn)}
        if key is None or campaign.id not in allowed:
            turn.say(texts.NOT_YOUR_RESPONSE)
            return
        first_time = await repo.find_response(turn.session, campaign.id, key) is None
        chosen = start_from in (prefill_flow.PREVIOUS, prefill_flow.FRESH)
        if (
            first_time
            and not chosen
            and await prefill_flow.offer(turn, campaign, key, self.config.timezone)
        ):
            return
        response = await repo.get_or_create_response(turn.session, campaign, key)
        prefilled = None
        if first_time and start_from == prefill_flow.PREVIOUS:
            prefilled = await prefill_flow.apply(turn, campaign, response, key, engine)
        walk = await self._load_walk(turn.session, response, campaign)
        turn.state.response_id = response.id
        turn.state.data = {}
        if walk.locked:
            turn.state.mode = Mode.IDLE
            turn.say(self._submitted_text(walk))
            await self._show_review(turn, walk)
            return
        if prefilled:
            await self._show_review(turn, walk, prefix=prefilled)
            return
        slot = walk.engine.first_incomplete(walk.answers, walk.flags)
        if slot is None:
            await self._show_review(turn, walk, prefix=texts.FORM_DONE)
            return
        intro = self._campaign_line(campaign)
        if first_time and engine.form.description:
            # the form's own instructions (a document for «да», a note for «нет»), once
            intro += "\n\n" + engine.form.description
        turn.say(intro)
        await self._go_to(turn, walk, slot)

    async def _campaign_button(self, turn: Turn, payload: cb.Payload) -> None:
        """``c|<campaign>[|prev|new]``: open that campaign, if it is open to the sender."""
        campaign_id = payload.int_arg(0)
        campaign = await turn.session.get(Campaign, campaign_id) if campaign_id else None
        if campaign is None:
            turn.say(texts.NOT_YOUR_RESPONSE)
            return
        if campaign.closed_at is not None:
            turn.say(self._closed_text(campaign))
            return
        await self._open_campaign(turn, campaign, payload.str_arg(1))


def _campaign_label(campaign: Campaign) -> str:
    label = texts.CAMPAIGN_BUTTON.format(
        number=campaign.id,
        period=texts.short_period(campaign.opens_on, campaign.deadline),
        title=campaign.title,
    )
    return render.shorten(label, 80)
