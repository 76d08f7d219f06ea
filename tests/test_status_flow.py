"""`/status` through the real Telegram Dispatcher: counts, the chart, drill-down, the «да»
answers without an accepted document, and the scope on every press.

The region, set up through storage (the walk is not the subject here):

* «Северный район»: N1 accepted (pd_events and failure_prevention «да», both documents
  accepted); N2 submitted (pd_events «да» with a document nobody checked, curator_assigned
  «да» whose only file failed to download); N3 a draft (teachers_total 20, pd_events «да»
  without a document yet: 1 of 14 questions complete — the risk-zone questions are hidden
  for a school outside the risk zone); N4 a draft without answers; N5 nothing.
* «Южный район»: U1 returned (pd_events «да», its document returned); U2 resubmitted
  (quality_program «да» accepted, iup «да» unchecked); U3 nothing.

By hand: not started 3 (N4, N5, U3), in progress 1 (N3), submitted 2 (N2, U2), returned 1
(U1), accepted 1 (N1). Without an accepted document: N2 ×2, U1, U2 — 4 answers, 3 schools.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from PIL import Image, ImageStat
from sqlalchemy import func, select

from exports.status_chart import WIDTH_PX, chart_height
from forms.engine import Slot
from handlers import status_texts
from storage import repo, review
from storage.admin import close_campaign, import_schools, open_campaign
from storage.models import (
    AnswerReview,
    Attachment,
    AttachmentStatus,
    AuditLog,
    ConversationState,
    Delivery,
    Municipality,
    Person,
    Region,
    Response,
    ResponseEvent,
    ResponseStatus,
    Role,
    School,
    Verdict,
    respondent_key,
)
from storage.school_import import SchoolRow
from tests.pg import settings_on_both_databases
from tests.test_hot_path import statements
from tests.walk import harness_for, press_payload

settings = settings_on_both_databases()

NORTH, SOUTH = "Северный район", "Южный район"
SCHOOLS = [
    SchoolRow(2, NORTH, "СОШ №1", "N1", True, False, False, None),
    SchoolRow(3, NORTH, "СОШ №2", "N2", False, True, False, None),
    SchoolRow(4, NORTH, "СОШ №3", "N3", False, False, False, None),
    SchoolRow(5, NORTH, "СОШ №4", "N4", False, False, False, None),
    SchoolRow(6, NORTH, "СОШ №5", "N5", False, False, False, None),
    SchoolRow(7, SOUTH, "ООШ с. Южное", "U1", False, True, False, None),
    SchoolRow(8, SOUTH, "СОШ пос. Дальний", "U2", True, False, False, None),
    SchoolRow(9, SOUTH, "СОШ пос. Ясный", "U3", False, False, False, None),
]
SUBMITTED_AT = datetime(2026, 3, 2, 7, 15, tzinfo=UTC)  # 10:15 in Moscow
REGIONAL, MUNICIPAL_NORTH, DIRECTOR_N2, ADMIN = 700, 701, 703, 900  # ADMINS=tg:900

STALE = status_texts.STALE


@dataclass
class World:
    campaign: int
    schools: dict[str, int]
    municipalities: dict[str, int]
    responses: dict[str, int]


async def _person(session, user_id: int, role: str, **scope: int | None) -> None:
    person = Person(role=role, full_name=f"Пользователь {user_id}", **scope)
    session.add(person)
    await session.flush()
    await repo.create_account(session, person, "tg", str(user_id), str(user_id), None)


def _file(response: Response, question: str, status: str = AttachmentStatus.STORED) -> Attachment:
    return Attachment(
        response_id=response.id,
        question_id=question,
        row=0,
        original_name=f"{question}.pdf",
        platform="tg",
        status=status,
    )


@pytest.fixture
async def world(services) -> World:
    today = services.conversation.today()
    async with services.sessions() as session:
        await import_schools(session, "Тестовая область", SCHOOLS, "Europe/Moscow")
        form = services.forms.latest("shnor_school")
        campaign, _ = await open_campaign(
            session, form, today + timedelta(days=14), today, "Мониторинг 2026"
        )
        schools = {s.code: s.id for s in await session.scalars(select(School))}
        municipalities = {m.name: m.id for m in await session.scalars(select(Municipality))}
        region = await session.scalar(select(Region))
        responses: dict[str, Response] = {}

        async def respond(code: str, status: str, yes: tuple[str, ...] = (), **numbers: int):
            response = await repo.get_or_create_response(
                session, campaign, respondent_key(schools[code], None)
            )
            await session.flush()
            for question, value in numbers.items():
                await repo.save_answer(session, response, Slot(question), value, None)
            for question in yes:
                await repo.save_answer(session, response, Slot(question), True, None)
            response.status = status
            if status != ResponseStatus.DRAFT:
                response.submitted_at = SUBMITTED_AT
            responses[code] = response
            return response

        n1 = await respond("N1", ResponseStatus.ACCEPTED, ("pd_events", "failure_prevention"))
        n2 = await respond("N2", ResponseStatus.SUBMITTED, ("pd_events", "curator_assigned"))
        await respond("N3", ResponseStatus.DRAFT, ("pd_events",), teachers_total=20)
        await respond("N4", ResponseStatus.DRAFT)
        u1 = await respond("U1", ResponseStatus.RETURNED, ("pd_events",))
        u2 = await respond("U2", ResponseStatus.RESUBMITTED, ("quality_program", "iup"))
        session.add_all(
            [
                _file(n1, "pd_events"),
                _file(n1, "failure_prevention"),
                _file(n2, "pd_events"),
                _file(n2, "curator_assigned", AttachmentStatus.FAILED),
                _file(u1, "pd_events"),
                _file(u2, "quality_program"),
                _file(u2, "iup"),
            ]
        )
        now = datetime.now(UTC)
        for response, question, verdict in (
            (n1, "pd_events", Verdict.ACCEPTED),
            (n1, "failure_prevention", Verdict.ACCEPTED),
            (u1, "pd_events", Verdict.RETURNED),
            (u2, "quality_program", Verdict.ACCEPTED),
        ):
            await review.set_verdict(session, response.id, Slot(question), verdict, None, now)
        await _person(session, REGIONAL, Role.REGIONAL, region_id=region.id)
        await _person(
            session, MUNICIPAL_NORTH, Role.MUNICIPAL, municipality_id=municipalities[NORTH]
        )
        await _person(
            session,
            DIRECTOR_N2,
            Role.DIRECTOR,
            school_id=schools["N2"],
            municipality_id=municipalities[NORTH],
        )
        await session.commit()
    return World(campaign.id, schools, municipalities, {k: r.id for k, r in responses.items()})


def payloads(user) -> dict[str, str]:
    return {b.text: b.payload for row in user.keyboard() for b in row}


def flow_statements(seen: list[str]) -> list[str]:
    """The statements of the event's handling: after the sender is loaded, before the
    intake marks the event done and writes its replies (the intake's own statements differ by
    database and by batch)."""
    start = next(i for i, s in enumerate(seen) if s.startswith("SELECT accounts.id"))
    intake = ("INSERT INTO outbox", "UPDATE inbox")  # the done-mark and the replies, any order
    end = next(i for i, s in enumerate(seen) if i > start and s.startswith(intake))
    return seen[start + 1 : end]


def open_png(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    return image.convert("RGB")


async def written(services) -> dict[str, int]:
    """Row counts of everything a press could write."""
    tables = (Response, AnswerReview, ResponseEvent, AuditLog, Delivery, Attachment)
    async with services.sessions() as session:
        counts = {
            t.__name__: await session.scalar(select(func.count()).select_from(t)) for t in tables
        }
        states = await session.execute(
            select(ConversationState.mode, ConversationState.response_id).order_by(
                ConversationState.account_id
            )
        )
        counts["states"] = hash(tuple(tuple(s) for s in states))
    return counts


# --- the summary ----------------------------------------------------------------------------


async def test_regional_summary_counts_match_the_hand_computed_figures_and_a_chart_is_sent(
    services, world
):
    harness = harness_for(services)
    user = harness.user(REGIONAL, "Регина")
    await user.send("/status")
    text = user.expect("Ход заполнения: анкета №1 «Мониторинг 2026»")
    assert "Все школы в вашей зоне ответственности: 8." in text
    for line in (
        "• не начато: 3",
        "• заполняется: 1",
        "• отправлено, ждёт проверки: 2",
        "• возвращено на доработку: 1",
        "• принято: 1",
        f"1. {NORTH} — 2 / 1 / 1 / 0 / 1",
        f"2. {SOUTH} — 1 / 0 / 1 / 1 / 0",
    ):
        assert line in text, text
    assert "как директор видит" in text  # the rule for «X из Y» is stated
    assert f"1. {NORTH}" in user.buttons() and status_texts.BTN_MISSING in user.buttons()

    (document,) = user.sent_documents()
    assert document.filename.endswith(".png")
    assert "Анкета №1" in (document.caption or "")
    image = open_png(document.content)
    assert image.size == (WIDTH_PX, chart_height(2))
    assert ImageStat.Stat(image.convert("L")).stddev[0] > 10, "the chart is blank"
    charts = list((services.files.root / "tmp" / "charts").glob("status-1-*.png"))
    assert len(charts) == 1 and charts[0].read_bytes() == document.content


async def test_with_several_open_campaigns_the_coordinator_chooses_one(services, world):
    today = services.conversation.today()
    async with services.sessions() as session:
        form = services.forms.latest("shnor_school")
        second, _ = await open_campaign(
            session, form, today + timedelta(days=30), today, "Повторный мониторинг", force=True
        )
        await session.commit()
    user = harness_for(services).user(ADMIN, "Админ")
    await user.send("/status")
    user.expect(status_texts.CHOOSE_CAMPAIGN)
    labels = user.buttons()
    assert len(labels) == 2 and labels[0].startswith(f"№{second.id}")
    assert not user.sent_documents()
    await user.click(labels[0])
    text = user.expect(f"анкета №{second.id} «Повторный мониторинг»")
    assert "• не начато: 8" in text and "• принято: 0" in text
    assert len(user.sent_documents()) == 1
    await user.send(f"/status {world.campaign}")  # straight to a campaign by its number
    user.expect("анкета №1 «Мониторинг 2026»", "• принято: 1")


# --- drill-down -----------------------------------------------------------------------------


async def test_municipality_then_school_then_the_review_button(services, world):
    user = harness_for(services).user(REGIONAL, "Регина")
    await user.send("/status")
    await user.click(f"1. {NORTH}")
    text = user.expect(f"🏫 {NORTH} · анкета №1: школ — 5")
    for line in (
        "1. СОШ №1 — принято",
        "2. СОШ №2 — отправлено, ждёт проверки",
        "3. СОШ №3 — заполняется, 1 из 14",
        "4. СОШ №4 — не начато",
        "5. СОШ №5 — не начато",
    ):
        assert line in text, text
    assert not user.sent_documents()

    await user.click("2. СОШ №2")
    text = user.expect("🏫 СОШ №2", NORTH, "Состояние: отправлено, ждёт проверки.")
    assert "Отправлена: 02.03.2026 10:15." in text
    buttons = payloads(user)
    assert buttons[status_texts.BTN_REVIEW] == f"cr|{world.responses['N2']}|0"

    await user.click(status_texts.BTN_BACK_TO_SCHOOLS)
    await user.click("3. СОШ №3")
    text = user.expect("🏫 СОШ №3", "Состояние: заполняется.", "Заполнено: 1 из 14.")
    assert status_texts.BTN_REVIEW not in payloads(user)  # a draft has nothing to review

    await user.click(status_texts.BTN_BACK_TO_SCHOOLS)
    await user.click("5. СОШ №5")
    user.expect("Состояние: не начато.", "ещё не начала")
    assert status_texts.BTN_REVIEW not in payloads(user)

    await user.click(status_texts.BTN_BACK_TO_SCHOOLS)
    await user.click(status_texts.BTN_BACK_TO_SUMMARY)
    user.expect("• не начато: 3")


async def test_resubmitted_school_says_so(services, world):
    harness = harness_for(services)
    user = harness.user(REGIONAL, "Регина")
    await press_payload(harness, user, f"st|s|{world.schools['U2']}|{world.campaign}")
    user.expect("Состояние: отправлено повторно, ждёт проверки.")
    assert status_texts.BTN_REVIEW in payloads(user)


async def test_municipal_coordinator_gets_their_schools_and_a_one_bar_chart(services, world):
    user = harness_for(services).user(MUNICIPAL_NORTH, "Мария")
    await user.send("/status")
    summary = user.expect(f"{NORTH}: школ — 5.")
    assert "• не начато: 2" in summary and "• принято: 1" in summary
    assert SOUTH not in summary
    schools = user.expect(f"🏫 {NORTH}", "3. СОШ №3 — заполняется, 1 из 14")
    assert "Южное" not in schools
    (document,) = user.sent_documents()
    assert open_png(document.content).size == (WIDTH_PX, chart_height(1))
    assert user.buttons()[:5] == [f"{i}. СОШ №{i}" for i in range(1, 6)]


async def test_schools_are_paged(services, world):
    extra = [
        SchoolRow(10 + i, NORTH, f"Школа {i:02d}", f"X{i:02d}", False, False, False, None)
        for i in range(12)
    ]
    today = services.conversation.today()
    async with services.sessions() as session:
        await import_schools(session, "Тестовая область", SCHOOLS + extra, "Europe/Moscow")
        form = services.forms.latest("shnor_school")
        campaign, _ = await open_campaign(
            session, form, today + timedelta(days=30), today, "Большой мониторинг", force=True
        )
        await session.commit()
    harness = harness_for(services)
    user = harness.user(MUNICIPAL_NORTH, "Мария")
    await user.send(f"/status {campaign.id}")
    first = user.expect(f"🏫 {NORTH}", "школ — 17", "Страница 1 из 2.")
    assert "10. " in first and "11. " not in first
    await user.click(status_texts.BTN_NEXT)
    second = user.expect("Страница 2 из 2.")
    assert "11. " in second and "17. " in second and "10. " not in second
    assert all(len(text) <= 3500 for text in user.texts())
    await press_payload(harness, user, f"st|m|{world.municipalities[NORTH]}|{campaign.id}|2")
    user.expect(STALE)


async def test_municipalities_of_the_summary_are_paged(services, world):
    extra = [
        SchoolRow(20 + i, f"Район {i:02d}", "Школа", f"R{i:02d}", False, False, False, None)
        for i in range(10)
    ]
    today = services.conversation.today()
    async with services.sessions() as session:
        await import_schools(session, "Тестовая область", SCHOOLS + extra, "Europe/Moscow")
        form = services.forms.latest("shnor_school")
        campaign, _ = await open_campaign(
            session, form, today + timedelta(days=30), today, "Большой мониторинг", force=True
        )
        await session.commit()
    user = harness_for(services).user(REGIONAL, "Регина")
    await user.send(f"/status {campaign.id}")
    first = user.expect("Все школы в вашей зоне ответственности: 18.", "Страница 1 из 2.")
    assert "1. Район 00 — 1 / 0 / 0 / 0 / 0" in first and f"11. {NORTH}" not in first
    assert len(user.sent_documents()) == 1
    await user.click(status_texts.BTN_NEXT)
    second = user.expect("Страница 2 из 2.")
    assert f"11. {NORTH} — 5 / 0 / 0 / 0 / 0" in second and f"12. {SOUTH}" in second
    assert not user.sent_documents()  # the chart comes with the summary only
    await user.click(f"12. {SOUTH}")
    user.expect(f"🏫 {SOUTH} · анкета №{campaign.id}: школ — 3")


async def test_statements_do_not_grow_with_the_schools(services, world):
    """No query per school: a page of ten drafts costs what a page of three does."""
    extra = [
        SchoolRow(10 + i, NORTH, f"Школа {i:02d}", f"X{i:02d}", False, False, False, None)
        for i in range(12)
    ]
    today = services.conversation.today()
    async with services.sessions() as session:
        await import_schools(session, "Тестовая область", SCHOOLS + extra, "Europe/Moscow")
        form = services.forms.latest("shnor_school")
        campaign, _ = await open_campaign(
            session, form, today + timedelta(days=30), today, "Большой мониторинг", force=True
        )
        for school in await session.scalars(select(School)):
            key = respondent_key(school.id, None)
            response = await repo.get_or_create_response(session, campaign, key)
            await session.flush()
            await repo.save_answer(session, response, Slot("teachers_total"), 20, None)
            await repo.save_answer(session, response, Slot("pd_events"), True, None)
            session.add(_file(response, "pd_events"))
        await session.commit()
    harness = harness_for(services)
    user = harness.user(REGIONAL, "Регина")
    await user.send("/help")  # the first event of an account writes its state row
    costs = {}
    for name in (NORTH, SOUTH):
        payload = f"st|m|{world.municipalities[name]}|{campaign.id}|0"
        with statements(services.engine) as seen:
            await press_payload(harness, user, payload)
        costs[name] = flow_statements(seen)
    text = user.expect(f"🏫 {SOUTH}")
    assert text.count("заполняется, 2 из 14") == 3
    # the campaign, the municipality, the counts, the page of schools, their documents and
    # their answers: the same six for ten schools as for three
    assert len(costs[NORTH]) == len(costs[SOUTH]) == 6, costs
    with statements(services.engine) as seen:
        await user.send(f"/status {campaign.id}")
    assert len(flow_statements(seen)) == 2, seen  # the open campaigns and the counts
    assert user.expect("• заполняется: 20")


# --- «да» without an accepted document -------------------------------------------------------


async def test_missing_documents_grouped_by_school(services, world):
    user = harness_for(services).user(REGIONAL, "Регина")
    await user.send("/status")
    await user.click(status_texts.BTN_MISSING)
    text = user.expect("Ответы «да» без принятого документа", "Всего: ответов 4, школ 3.")
    north = text.index("🏫 СОШ №2 (Северный район)")
    south_one = text.index("🏫 ООШ с. Южное (Южный район)")
    south_two = text.index("🏫 СОШ пос. Дальний (Южный район)")
    assert north < south_one < south_two
    block_n2 = text[north:south_one]
    assert "1.2.4 «Участие в мероприятиях по профмастерству» — документ не проверен" in block_n2
    assert "1.2.4 «Определен куратор» — нет документа" in block_n2  # its file failed
    assert (
        "1.2.4 «Участие в мероприятиях по профмастерству» — документ возвращён на доработку"
        in (text[south_one:south_two])
    )
    block_u2 = text[south_two:]
    assert "1.2.5 «Разработаны ИУПы» — документ не проверен" in block_u2
    assert "ШППКО" not in block_u2  # accepted
    for absent in ("СОШ №1", "СОШ №3"):  # all accepted; a draft
        assert f"🏫 {absent} " not in text


async def test_missing_documents_for_a_municipal_coordinator(services, world):
    user = harness_for(services).user(MUNICIPAL_NORTH, "Мария")
    await user.send("/status")
    await user.click(status_texts.BTN_MISSING)
    text = user.expect("Всего: ответов 2, школ 1.")
    assert "Южный" not in text


async def test_missing_documents_none(services, world):
    async with services.sessions() as session:
        for key, question in (
            ("N2", "pd_events"),
            ("N2", "curator_assigned"),
            ("U1", "pd_events"),
            ("U2", "iup"),
        ):
            slot = Slot(question)
            await review.set_verdict(
                session, world.responses[key], slot, Verdict.ACCEPTED, None, SUBMITTED_AT
            )
        await session.commit()
    harness = harness_for(services)
    user = harness.user(REGIONAL, "Регина")
    await press_payload(harness, user, f"st|g|{world.campaign}|0")
    user.expect(status_texts.MISSING_NONE)


# --- scope ----------------------------------------------------------------------------------


async def test_a_director_is_refused_politely_and_nothing_is_written(services, world):
    harness = harness_for(services)
    user = harness.user(DIRECTOR_N2, "Денис")
    await user.send("/status")
    before = await written(services)
    user.expect("доступен координаторам", "/review")
    assert not user.sent_documents()
    for payload in (
        f"st|c|{world.campaign}",
        f"st|s|{world.schools['N2']}|{world.campaign}",  # even their own school
        f"st|m|{world.municipalities[NORTH]}|{world.campaign}|0",
        f"st|g|{world.campaign}|0",
    ):
        await press_payload(harness, user, payload)
        user.expect("доступен координаторам")
        assert not user.sent_documents()
    assert await written(services) == before


async def test_forged_and_foreign_ids_are_refused_and_nothing_is_written(services, world):
    harness = harness_for(services)
    user = harness.user(MUNICIPAL_NORTH, "Мария")
    await user.send("/help")
    user.expect("/status")
    before = await written(services)
    south, north = world.municipalities[SOUTH], world.municipalities[NORTH]
    campaign = world.campaign
    for payload in (
        f"st|m|{south}|{campaign}|0",  # another municipality
        f"st|s|{world.schools['U1']}|{campaign}",  # another municipality's school
        f"st|c|{campaign + 100}",  # no such campaign
        f"st|m|{north}|{campaign + 100}|0",
        f"st|s|{world.schools['N2']}|{campaign + 100}",
        f"st|m|{north}|{campaign}|x",
        f"st|m|-{north}|{campaign}|0",
        f"st|s|99999|{campaign}",
        f"st|g|{campaign}|7",  # past the last page
        f"st|p|{campaign}|1",
        f"st|zz|{campaign}",
        "st",
    ):
        await press_payload(harness, user, payload)
        user.expect(STALE)
        assert not user.sent_documents(), payload
    assert await written(services) == before


async def test_a_regional_coordinator_does_not_see_another_regions_schools(services, world):
    today = services.conversation.today()
    async with services.sessions() as session:
        rows = [SchoolRow(2, "Дальний район", "Чужая школа", "F1", False, False, False, None)]
        await import_schools(session, "Другая область", rows, "Europe/Moscow")
        form = services.forms.latest("shnor_school")
        other, _ = await open_campaign(
            session, form, today + timedelta(days=9), today, "Чужой мониторинг", force=True
        )
        foreign = await session.scalar(select(School).where(School.code == "F1"))
        foreign_municipality = foreign.municipality_id
        await session.commit()
    harness = harness_for(services)
    user = harness.user(REGIONAL, "Регина")
    await user.send("/status")  # the new campaign targets every school: both are listed
    user.expect(status_texts.CHOOSE_CAMPAIGN)
    await user.click(user.buttons()[0])
    text = user.expect(f"анкета №{other.id}", "Все школы в вашей зоне ответственности: 8.")
    assert "Дальний район" not in text
    for payload in (
        f"st|s|{foreign.id}|{other.id}",
        f"st|m|{foreign_municipality}|{other.id}|0",
    ):
        await press_payload(harness, user, payload)
        user.expect(STALE)
    admin = harness.user(ADMIN, "Админ")
    await admin.send(f"/status {other.id}")
    admin.expect("Все школы в вашей зоне ответственности: 9.", "Дальний район — 1 / 0 / 0 / 0 / 0")


async def test_no_open_campaign(services, world):
    async with services.sessions() as session:
        await close_campaign(session, world.campaign)
        await session.commit()
    user = harness_for(services).user(REGIONAL, "Регина")
    await user.send("/status")
    user.expect(status_texts.NO_CAMPAIGNS)
    assert not user.sent_documents()
    await user.send(f"/status {world.campaign}")  # a closed campaign, by its number
    user.expect("анкета №1 «Мониторинг 2026»", "• принято: 1")
    await user.send(f"/status {world.campaign + 100}")
    user.expect(status_texts.NO_CAMPAIGNS)
