"""The coordinator's review of a school's response in the chat (issue 10 §3).

``/check`` lists the responses in the coordinator's scope waiting for review. A response
opens page by page, with its documents re-sent; each answer is accepted or returned with
a comment, then the whole response is accepted or returned for revision, and the school's
director is told. Every command and press checks the scope (storage/scope.py) again.

Buttons (``<n>`` is the answer's number as the director saw it on the review screen):
``cr|<response>|<page>`` a page with its documents, ``cp|<response>|<page>`` the page
again without them, ``ca|<response>|<n>`` accept an answer, ``cx|<response>|<n>`` return
it (asks for a comment), ``cA|<response>|<page>`` accept all, ``cR|<response>|<page>``
return for revision, ``cl|<page>`` the list. A pressed keyboard is gone (the channels remove
it), so every reply carries the buttons that come next.
"""

from __future__ import annotations

import logging

from forms.engine import Slot
from handlers import callbacks as cb
from handlers import coordinator_pages as pages
from handlers import coordinator_texts as t
from handlers import render
from handlers.core_context import CoreContext
from handlers.flow import Routes
from handlers.types import Button, OutFile, OutText
from handlers.walk_state import Mode, Turn
from storage import notices, repo, review, review_queries
from storage.models import Municipality, Person, ResponseStatus, Verdict
from storage.scope import Scope

log = logging.getLogger(__name__)

OPEN = cb.Action.COORD_REVIEW  # cr|<response>|<page>
PAGE = "cp"  # cp|<response>|<page>
ACCEPT = "ca"  # ca|<response>|<number>
RETURN = "cx"  # cx|<response>|<number>
ACCEPT_ALL = "cA"  # cA|<response>
RETURN_ALL = "cR"  # cR|<response>
LIST = "cl"  # cl|<page>
HISTORY = "hi"  # hi|<response>|<page>: the response's history (handlers elsewhere)
FIX = "rx"  # rx|<response>: the director fixes the returned answers (handlers elsewhere)

MODE_COMMENT = "coord_comment"  # typing the comment for a returned answer
COMMENT_MIN, COMMENT_MAX = 5, 1000
LIST_PAGE_SIZE = 10
DIRECTOR_COMMENT_LIMIT = 300
NOTICE_LIMIT = 3500


class CoordinatorReview:
    def __init__(self, core: CoreContext) -> None:
        self.core = core

    def routes(self) -> Routes:
        return Routes(
            commands={"check": self.check},
            actions={
                OPEN: self.open,
                PAGE: self.page,
                ACCEPT: self.accept,
                RETURN: self.ask_comment,
                ACCEPT_ALL: self.accept_all,
                RETURN_ALL: self.return_all,
                LIST: self.list_page,
            },
            text_modes={MODE_COMMENT: self.comment},
        )

    # --- the list ----------------------------------------------------------------------

    async def check(self, turn: Turn, _args: str) -> None:
        await self._list(turn, 0)

    async def list_page(self, turn: Turn, payload: cb.Payload) -> None:
        await self._list(turn, payload.int_arg(0) or 0)

    async def _list(self, turn: Turn, page: int) -> None:
        scope = self._coordinator(turn, "/check")
        if scope is None:
            return
        self._leave_comment(turn)
        found, total = await review_queries.waiting(
            turn.session, scope, offset=page * LIST_PAGE_SIZE, limit=LIST_PAGE_SIZE
        )
        if not total:
            turn.say(t.LIST_EMPTY)
            return
        page_count = (total + LIST_PAGE_SIZE - 1) // LIST_PAGE_SIZE
        if not found:  # a stale page button: the list got shorter
            await self._list(turn, page_count - 1)
            return
        zone = self.core.config.timezone
        lines = [t.LIST_TITLE.format(total=total)]
        if page_count > 1:
            lines.append(t.LIST_PAGE.format(page=page + 1, pages=page_count))
        lines.append("")
        buttons = []
        for number, item in enumerate(found, start=page * LIST_PAGE_SIZE + 1):
            response = item.response
            lines.append(
                t.LIST_LINE.format(
                    number=number,
                    school=render.shorten(item.school.name, 120),
                    municipality=render.shorten(item.municipality.name, 80),
                    campaign=item.campaign.id,
                    title=render.shorten(item.campaign.title, 80),
                    status=t.LIST_STATUS.get(response.status, ""),
                    when=pages.when(response.submitted_at, zone),
                )
            )
            label = render.shorten(f"{number}. {item.school.name}", 60)
            buttons.append([Button(label, cb.encode(OPEN, response.id, 0))])
        lines += ["", t.LIST_HINT]
        nav = []
        if page > 0:
            nav.append(Button(t.BTN_PREV, cb.encode(LIST, page - 1)))
        if page + 1 < page_count:
            nav.append(Button(t.BTN_NEXT, cb.encode(LIST, page + 1)))
        if nav:
            buttons.append(nav)
        turn.say("\n".join(lines), buttons)

    # --- a response, page by page ------------------------------------------------------

    async def open(self, turn: Turn, payload: cb.Payload) -> None:
        opened = await self._load(turn, payload)
        if opened is not None:
            self._leave_comment(turn)
            self._show(turn, opened, payload.int_arg(1) or 0, with_files=True)

    async def page(self, turn: Turn, payload: cb.Payload) -> None:
        opened = await self._load(turn, payload)
        if opened is None:
            return
        prefix = t.COMMENT_CANCELLED if turn.state.mode == MODE_COMMENT else ""
        self._leave_comment(turn)
        self._show(turn, opened, payload.int_arg(1) or 0, prefix=prefix)

    def _layout(self, opened: pages.Opened, prefix: str = "") -> tuple[list[str], str]:
        """Every answer's block and the footer; sets ``opened.pages``."""
        files = self.core.files
        blocks = [pages.block(opened, n, files) for n in range(1, len(opened.slots) + 1)]
        if opened.response.status in review.UNDER_REVIEW:
            footer = t.REVIEW_HINT
        else:
            status = t.STATUS.get(opened.response.status, opened.response.status)
            footer = t.VIEW_ONLY.format(status=status)
        footer = f"{prefix}\n\n{footer}" if prefix else footer
        top = pages.header(opened, self.core.config.timezone, 0, 2)
        opened.pages = pages.paginate(blocks, len(top) + len(footer) + 16)
        return blocks, footer

    def _show(
        self,
        turn: Turn,
        opened: pages.Opened,
        page: int,
        *,
        with_files: bool = False,
        prefix: str = "",
        number: int | None = None,
    ) -> None:
        """Show one page (``number``: the page of that answer)."""
        files = self.core.files
        zone = self.core.config.timezone
        blocks, footer = self._layout(opened, prefix)
        under_review = opened.response.status in review.UNDER_REVIEW
        if number is not None:
            page = opened.page_of(number)
        page = min(max(page, 0), len(opened.pages) - 1)
        rid = opened.response.id
        if with_files:
            for index in opened.pages[page]:
                slot = opened.slots[index]
                caption = t.FILE_CAPTION.format(
                    number=index + 1, label=render.shorten(opened.label(index + 1), 150)
                )
                for attachment in opened.docs.get(slot, []):
                    path = pages.stored_file(attachment, files)
                    if path is not None:
                        turn.out.append(OutFile(path, attachment.original_name, caption))
        buttons: list[list[Button]] = []
        if under_review:
            for index in opened.pages[page]:
                n = index + 1
                buttons.append(
                    [
                        Button(t.BTN_ACCEPT.format(number=n), cb.encode(ACCEPT, rid, n)),
                        Button(t.BTN_RETURN.format(number=n), cb.encode(RETURN, rid, n)),
                    ]
                )
        nav = []
        if page > 0:
            # its documents were sent on the way forward
            nav.append(Button(t.BTN_PREV, cb.encode(PAGE, rid, page - 1)))
        if page + 1 < len(opened.pages):
            nav.append(Button(t.BTN_NEXT, cb.encode(OPEN, rid, page + 1)))
        if nav:
            buttons.append(nav)
        if under_review:
            buttons.append([Button(t.BTN_ACCEPT_ALL, cb.encode(ACCEPT_ALL, rid, page))])
            buttons.append([Button(t.BTN_RETURN_ALL, cb.encode(RETURN_ALL, rid, page))])
        buttons.append(
            [
                Button(t.BTN_HISTORY, cb.encode(HISTORY, rid, 0)),
                Button(t.BTN_LIST, cb.encode(LIST, 0)),
            ]
        )
        turn.say(pages.page_text(opened, blocks, page, zone, footer), buttons)

    # --- verdicts on one answer --------------------------------------------------------

    async def accept(self, turn: Turn, payload: cb.Payload) -> None:
        opened = await self._load(turn, payload, reviewing=True)
        number = self._number(turn, opened, payload)
        if opened is None or number is None:
            return
        await self._verdict(turn, opened, number, Verdict.ACCEPTED)
        self._after_verdict(turn, opened, number, t.ACCEPTED_ONE.format(number=number))

    async def _verdict(
        self,
        turn: Turn,
        opened: pages.Opened,
        number: int,
        verdict: str,
        comment: str | None = None,
    ) -> None:
        self._leave_comment(turn)
        slot = opened.slots[number - 1]
        opened.verdicts[slot] = await review.set_verdict(
            turn.session,
            opened.response.id,
            slot,
            verdict,
            turn.person.id,
            self.core.clock(),
            comment=comment,
            snapshot=opened.snapshot(slot),
        )

    async def ask_comment(self, turn: Turn, payload: cb.Payload) -> None:
        opened = await self._load(turn, payload, reviewing=True)
        number = self._number(turn, opened, payload)
        if opened is None or number is None:
            return
        turn.state.mode = MODE_COMMENT
        # merged: a municipal coordinator may be half-way through their own questionnaire
        turn.state.data = {
            **(turn.state.data or {}),
            "coord_response": opened.response.id,
            "coord_number": number,
        }
        self._ask(turn, opened, number)

    def _ask(self, turn: Turn, opened: pages.Opened, number: int, warning: str = "") -> None:
        self._layout(opened)  # the page the answer is on, for «Отмена»
        text = t.ASK_COMMENT.format(
            number=number,
            label=render.shorten(opened.label(number), 200),
            low=COMMENT_MIN,
            high=COMMENT_MAX,
        )
        cancel = cb.encode(PAGE, opened.response.id, opened.page_of(number))
        turn.say(f"{warning}\n\n{text}" if warning else text, [[Button(t.BTN_CANCEL, cancel)]])

    async def comment(self, turn: Turn, text: str) -> None:
        data = turn.state.data or {}
        payload = cb.Payload(
            RETURN, (str(data.get("coord_response", "")), str(data.get("coord_number", "")))
        )
        opened = await self._load(turn, payload, reviewing=True)
        number = self._number(turn, opened, payload)
        if opened is None or number is None:
            self._leave_comment(turn)
            return
        comment = " ".join(text.split())
        if len(comment) < COMMENT_MIN:
            self._ask(turn, opened, number, t.COMMENT_TOO_SHORT.format(low=COMMENT_MIN))
            return
        if len(comment) > COMMENT_MAX:
            warning = t.COMMENT_TOO_LONG.format(length=len(comment), high=COMMENT_MAX)
            self._ask(turn, opened, number, warning)
            return
        await self._verdict(turn, opened, number, Verdict.RETURNED, comment)
        self._after_verdict(turn, opened, number, t.RETURNED_ONE.format(number=number))

    def _after_verdict(self, turn: Turn, opened: pages.Opened, number: int, done: str) -> None:
        self._show(turn, opened, 0, prefix=done, number=number)

    # --- the whole response ------------------------------------------------------------

    async def accept_all(self, turn: Turn, payload: cb.Payload) -> None:
        opened = await self._load(turn, payload, reviewing=True)
        if opened is None:
            return
        self._leave_comment(turn)
        returned = opened.returned_now()
        if returned:
            prefix = t.RETURNED_PENDING.format(numbers=_numbers(returned))
            self._show(turn, opened, payload.int_arg(1) or 0, prefix=prefix)
            return
        now = self.core.clock()
        rid = opened.response.id
        for slot in opened.slots:
            verdict = opened.verdicts.get(slot)
            if verdict is None or verdict.verdict != Verdict.ACCEPTED:
                await review.set_verdict(
                    turn.session,
                    rid,
                    slot,
                    Verdict.ACCEPTED,
                    turn.person.id,
                    now,
                    snapshot=opened.snapshot(slot),
                )
        event = await review.move(
            turn.session, opened.response, ResponseStatus.ACCEPTED, turn.person.id, now
        )
        await turn.session.flush()
        campaign = opened.campaign
        message = OutText(t.DIRECTOR_ACCEPTED.format(number=campaign.id, title=campaign.title))
        await notices.notify_all(
            turn.session,
            await review_queries.respondents(turn.session, opened.response),
            message,
            key=f"accepted:{rid}:{event.id}",
            now=now,
        )
        turn.say(t.ACCEPTED_ALL.format(school=opened.school_name), _to_list())

    async def return_all(self, turn: Turn, payload: cb.Payload) -> None:
        opened = await self._load(turn, payload, reviewing=True)
        if opened is None:
            return
        self._leave_comment(turn)
        returned = opened.returned_now()
        if not returned:
            self._show(turn, opened, payload.int_arg(1) or 0, prefix=t.NOTHING_TO_RETURN)
            return
        numbers = _numbers(returned)
        now = self.core.clock()
        rid = opened.response.id
        event = await review.move(
            turn.session,
            opened.response,
            ResponseStatus.RETURNED,
            turn.person.id,
            now,
            comment=t.RETURN_SUMMARY.format(numbers=numbers),
        )
        await turn.session.flush()
        await notices.notify_all(
            turn.session,
            await review_queries.respondents(turn.session, opened.response),
            self._returned_notice(opened, returned),
            key=f"returned:{rid}:{event.id}",
            now=now,
        )
        turn.say(t.RETURNED_ALL.format(school=opened.school_name, numbers=numbers), _to_list())

    @staticmethod
    def _returned_notice(opened: pages.Opened, returned: list[int]) -> OutText:
        campaign = opened.campaign

        def compose(limit: int) -> str:
            items = [
                t.DIRECTOR_ITEM.format(
                    number=number,
                    label=render.shorten(opened.label(number), 150),
                    comment=render.shorten(
                        opened.verdicts[opened.slots[number - 1]].comment or "", limit
                    ),
                )
                for number in returned
            ]
            head = t.DIRECTOR_RETURNED.format(number=campaign.id, title=campaign.title)
            return "\n\n".join([head, *items, t.DIRECTOR_HINT])

        text = compose(COMMENT_MAX)
        if len(text) > NOTICE_LIMIT:
            text = compose(DIRECTOR_COMMENT_LIMIT)
        if len(text) > NOTICE_LIMIT:
            text = text[: NOTICE_LIMIT - 1] + "…"
        button = Button(t.BTN_FIX, cb.encode(FIX, opened.response.id))
        return OutText(text, [[button]])

    # --- scope and loading -------------------------------------------------------------

    def _coordinator(self, turn: Turn, what: object) -> Scope | None:
        scope = Scope.of(turn.person)
        if scope.is_coordinator:
            return scope
        log.warning("person %s (%s) tried coordinator %s", turn.person.id, scope.role, what)
        turn.say(t.NOT_FOR_DIRECTORS)
        return None

    async def _load(
        self, turn: Turn, payload: cb.Payload, *, reviewing: bool = False
    ) -> pages.Opened | None:
        """The response a button names, if in the coordinator's scope (and, ``reviewing``,
        waiting for review); otherwise a refusal is said, and nothing is written."""
        scope = self._coordinator(turn, payload.encode())
        if scope is None:
            return None
        session = turn.session
        response_id = payload.int_arg(0)
        loaded = await repo.load_response(session, response_id) if response_id else None
        if loaded is None or not await scope.sees_school(session, loaded[0].school_id):
            log.warning(
                "person %s pressed %s outside their scope", turn.person.id, payload.encode()
            )
            turn.say(t.NOT_FOUND)
            return None
        response, campaign, school = loaded
        if reviewing and response.status not in review.UNDER_REVIEW:
            turn.say(t.ALREADY.get(response.status, t.STALE), _to_list())
            return None
        engine = self.core.forms.engine(campaign.form_id, response.form_version)
        answers = await repo.load_answers(session, response.id)
        slots = engine.slots(answers, school.flags() if school else {})
        docs: dict[Slot, list] = {}
        for attachment in await review_queries.documents(session, response.id):
            docs.setdefault(Slot(attachment.question_id, attachment.row), []).append(attachment)
        municipality = await session.get(Municipality, school.municipality_id)
        sender = await session.get(Person, response.submitted_by) if response.submitted_by else None
        return pages.Opened(
            response=response,
            campaign=campaign,
            school_name=school.name,
            municipality_name=municipality.name if municipality else "",
            engine=engine,
            slots=slots,
            answers=answers,
            docs=docs,
            verdicts=await review.verdicts(session, response.id),
            submitted_by=sender.full_name if sender else None,
        )

    @staticmethod
    def _number(turn: Turn, opened: pages.Opened | None, payload: cb.Payload) -> int | None:
        if opened is None:
            return None
        number = payload.int_arg(1)
        if number is None or not 1 <= number <= len(opened.slots):
            log.warning("person %s pressed %s: no such answer", turn.person.id, payload.encode())
            turn.say(t.STALE)
            return None
        return number

    @staticmethod
    def _leave_comment(turn: Turn) -> None:
        if turn.state.mode == MODE_COMMENT:
            turn.state.mode = Mode.IDLE
            data = turn.state.data or {}
            turn.state.data = {k: v for k, v in data.items() if not k.startswith("coord_")}


def _to_list() -> list[list[Button]]:
    return [[Button(t.BTN_LIST, cb.encode(LIST, 0))]]


def _numbers(numbers: list[int]) -> str:
    return ", ".join(str(n) for n in numbers)
