"""A small region for the export tests, with figures that can be checked by hand.

Region «Тестовая область»:

* «Алексеевский район», 4 schools:
  - A1 «Школа №1» — ШНОР, risk zone, director linked; submitted: 10 teachers, diag_subject 5,
    support 4; pd_events yes, failure_prevention yes, iup no; risks 2 of 3 eliminated.
  - A2 «Школа №2» — ШНСУ; submitted: 30 teachers, diag_subject 15, support 6; pd_events no,
    failure_prevention no, iup yes.
  - A3 «=Школа №3» (a formula-like name) — draft: 20 teachers, diag_subject 20.
  - A4 «Школа №4» — not started.
* «Борисовский район», 1 plain school B1 «Школа №1» (same name as A1), submitted: 8 teachers,
  diag_subject 2, failure_prevention yes. No ШНОР/ШНСУ here: the ШНОР-and-ШНСУ figures have a
  zero denominator.
* «Васильевский район» with no schools at all.

Municipal form: Алексеевский submitted (analytical_reference yes, practices_system no,
risk_resources_monitoring yes); Борисовский a draft; Васильевский not started.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import shutil
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.app import Services, create_services
from bot.config import Settings, load_settings
from forms.engine import Slot
from storage import repo
from storage.admin import import_schools, open_campaign
from storage.models import (
    Account,
    Attachment,
    AttachmentStatus,
    Campaign,
    Municipality,
    Person,
    Response,
    ResponseStatus,
    Role,
    School,
    respondent_key,
)
from storage.school_import import SchoolRow

REGION = "Тестовая область"
MUN_A = "Алексеевский район"
MUN_B = "Борисовский район"
MUN_C = "Васильевский район"
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n"
SUBMITTED_AT = datetime(2024, 5, 20, 9, 30, tzinfo=UTC)  # 12:30 in Moscow

YES_NO_SCHOOL = (
    "pd_events",
    "curator_assigned",
    "quality_program",
    "failure_prevention",
    "iup",
    "tutor_support",
)
NUMBERS = (
    "teachers_total",
    "diag_subject",
    "diag_methodological",
    "diag_psychological",
    "support_provided",
    "network_associations",
    "regional_asset",
    "iom",
)


@dataclass
class Region:
    services: Services
    school_campaign: int
    municipal_campaign: int
    program_campaign: int
    schools: dict[str, int]  # "A1" -> id
    municipalities: dict[str, int]  # MUN_A -> id


ADMIN_ID = "1"  # in ADMINS: bootstrapped as an admin on the first message


def make_settings(data_dir: Path) -> Settings:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DATA_DIR", str(data_dir))
        mp.setenv("ADMINS", f"tg:{ADMIN_ID}")
        mp.setenv("TIMEZONE", "Europe/Moscow")
        for name in ("DATABASE_URL", "BOT_TOKEN", "TELEGRAM_API_URL"):
            mp.delenv(name, raising=False)
        return load_settings(env_file=None)


async def make_services(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Services:
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    settings = make_settings(tmp_path / "data")
    url = f"sqlite+aiosqlite:///{tmp_path / 'export.sqlite3'}"
    return await create_services(settings, database_url=url)


@dataclass(frozen=True)
class BuiltRegion:
    """The region's database and documents, built once; tests open copies of the database."""

    data_dir: Path
    database: Path
    school_campaign: int
    municipal_campaign: int
    program_campaign: int
    schools: dict[str, int]
    municipalities: dict[str, int]

    async def open(self, tmp_path: Path) -> Services:
        """Services over a private copy of the database (the documents are shared)."""
        copy = tmp_path / "region.sqlite3"
        shutil.copyfile(self.database, copy)
        settings = make_settings(self.data_dir)
        return await create_services(
            settings, migrate=False, database_url=f"sqlite+aiosqlite:///{copy}"
        )


_BUILT: dict[str, BuiltRegion] = {}


def built_region(factory: pytest.TempPathFactory) -> BuiltRegion:
    """The fixture region, built on first use in this test session."""
    if "region" not in _BUILT:
        root = factory.mktemp("export-region")

        async def build() -> BuiltRegion:
            settings = make_settings(root / "data")
            database = root / "region.sqlite3"
            services = await create_services(
                settings, database_url=f"sqlite+aiosqlite:///{database}"
            )
            try:
                region = await build_region(services)
            finally:
                await services.close()
            return BuiltRegion(
                root / "data",
                database,
                region.school_campaign,
                region.municipal_campaign,
                region.program_campaign,
                region.schools,
                region.municipalities,
            )

        # asyncio.run in a thread of its own: callers may be inside a running loop
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            _BUILT["region"] = pool.submit(asyncio.run, build()).result()
    return _BUILT["region"]


async def _document(services: Services, session, response: Response, qid: str, name: str) -> None:
    temp = services.files.temp_path()
    temp.write_bytes(PDF + name.encode())
    stored = services.files.put(temp, name)
    session.add(
        Attachment(
            response_id=response.id,
            question_id=qid,
            row=0,
            original_name=name,
            size=stored.size,
            mime_type=stored.mime_type,
            sha256=stored.sha256,
            storage_path=stored.relative_path,
            platform="tg",
            status=AttachmentStatus.STORED,
        )
    )


async def _answer_school(
    services: Services,
    session,
    campaign: Campaign,
    school_id: int,
    numbers: dict[str, int],
    yes_no: dict[str, bool],
    status: str,
) -> Response:
    response = await repo.get_or_create_response(session, campaign, respondent_key(school_id, None))
    await session.flush()
    for qid, value in numbers.items():
        await repo.save_answer(session, response, Slot(qid), value, None)
    for qid, value in yes_no.items():
        note = None if value else "Причина: не успели в этом году, запланировано."
        await repo.save_answer(session, response, Slot(qid), value, None, note=note)
        if value:
            await _document(services, session, response, qid, f"{qid}.pdf")
    response.status = status
    if status == ResponseStatus.SUBMITTED:
        response.submitted_at = SUBMITTED_AT
    return response


def _numbers(total: int, subject: int, support: int) -> dict[str, int]:
    values = dict.fromkeys(NUMBERS, 0)
    values.update(teachers_total=total, diag_subject=subject, support_provided=support)
    values["diag_methodological"] = total // 5
    return values


def _yes_no(**overrides: bool) -> dict[str, bool]:
    values = dict.fromkeys(YES_NO_SCHOOL, False)
    values.update(overrides)
    return values


async def build_region(services: Services) -> Region:
    rows = [
        SchoolRow(2, MUN_A, "Школа №1", "A1", True, False, True, "Иванова"),
        SchoolRow(3, MUN_A, "Школа №2", "A2", False, True, False, None),
        SchoolRow(4, MUN_A, "=Школа №3", "A3", False, False, False, None),
        SchoolRow(5, MUN_A, "Школа №4", "A4", False, False, False, None),
        SchoolRow(6, MUN_B, "Школа №1", "B1", False, False, False, None),
    ]
    today = date(2024, 5, 1)
    async with services.sessions() as session:
        await import_schools(session, REGION, rows, "Europe/Moscow")
        region = await repo.get_or_create_region(session, REGION)
        await repo.get_or_create_municipality(session, region, MUN_C)
        schools = {s.code: s.id for s in await session.scalars(select(School))}
        municipalities = {m.name: m.id for m in await session.scalars(select(Municipality))}
        school_form = services.forms.latest("shnor_school")
        municipal_form = services.forms.latest("shnor_municipality")
        program_form = services.forms.latest("program_report")
        school_campaign, _ = await open_campaign(
            session, school_form, date(2024, 6, 1), today, "Мониторинг ШНОР 2024"
        )
        municipal_campaign, _ = await open_campaign(
            session, municipal_form, date(2024, 6, 1), today, "Муниципальный мониторинг 2024"
        )
        program_campaign, _ = await open_campaign(
            session, program_form, date(2024, 6, 1), today, "Отчёт о программе 2024"
        )
        await session.flush()

        a1 = await _answer_school(
            services,
            session,
            school_campaign,
            schools["A1"],
            _numbers(10, 5, 4),
            _yes_no(pd_events=True, failure_prevention=True, curator_assigned=True),
            ResponseStatus.SUBMITTED,
        )
        for qid, value in (
            ("risk_internet", True),
            ("risk_computers", True),
            ("risk_staff", False),
        ):
            note = None if value else "Вакансии пока не закрыты, объявлен набор."
            await repo.save_answer(session, a1, Slot(qid), value, None, note=note)
        await _document(services, session, a1, "risk_internet", "договор.pdf")
        await _document(services, session, a1, "risk_internet", "Договор.pdf")
        await _document(services, session, a1, "risk_computers", "CON.pdf")
        await _answer_school(
            services,
            session,
            school_campaign,
            schools["A2"],
            _numbers(30, 15, 6),
            _yes_no(iup=True, quality_program=True),
            ResponseStatus.SUBMITTED,
        )
        await _answer_school(
            services,
            session,
            school_campaign,
            schools["A3"],
            {"teachers_total": 20, "diag_subject": 20},
            {},
            ResponseStatus.DRAFT,
        )
        await _answer_school(
            services,
            session,
            school_campaign,
            schools["B1"],
            _numbers(8, 2, 0),
            _yes_no(failure_prevention=True),
            ResponseStatus.SUBMITTED,
        )

        mun_a = await repo.get_or_create_response(
            session, municipal_campaign, respondent_key(None, municipalities[MUN_A])
        )
        await session.flush()
        for qid, value in (
            ("analytical_reference", True),
            ("practices_system", False),
            ("risk_resources_monitoring", True),
        ):
            note = None if value else "Дорожная карта на согласовании в отделе образования."
            await repo.save_answer(session, mun_a, Slot(qid), value, None, note=note)
            if value:
                await _document(services, session, mun_a, qid, f"{qid}.pdf")
        mun_a.status = ResponseStatus.SUBMITTED
        mun_a.submitted_at = SUBMITTED_AT
        mun_b = await repo.get_or_create_response(
            session, municipal_campaign, respondent_key(None, municipalities[MUN_B])
        )
        await session.flush()
        await repo.save_answer(session, mun_b, Slot("analytical_reference"), True, None)

        report = await repo.get_or_create_response(
            session, program_campaign, respondent_key(schools["A1"], None)
        )
        await session.flush()
        await repo.save_answer(session, report, Slot("program_name"), "Программа «Успех»", None)
        await repo.save_answer(session, report, Slot("program_details"), None, None)
        events = [
            ("Семинар «Формирующее оценивание»", "10.2023", "15.10.2023", "+ 12 учителей"),
            ('=HYPERLINK("http://x")', "11.2023", "не проведено", "@перенос"),
        ]
        for row, (name, planned, actual, result) in enumerate(events):
            for qid, value in (
                ("event_name", name),
                ("planned_dates", planned),
                ("actual_dates", actual),
                ("result", result),
            ):
                await repo.save_answer(session, report, Slot(qid, row), value, None)
            await repo.save_answer(session, report, Slot("events", row), row == 0, None)
        report.status = ResponseStatus.SUBMITTED
        report.submitted_at = SUBMITTED_AT

        director = Person(role=Role.DIRECTOR, school_id=schools["A1"])
        director.municipality_id = municipalities[MUN_A]
        session.add(director)
        await session.flush()
        session.add(
            Account(person_id=director.id, platform="tg", platform_user_id="501", chat_id="501")
        )
        await session.commit()
        return Region(
            services,
            school_campaign.id,
            municipal_campaign.id,
            program_campaign.id,
            schools,
            municipalities,
        )


async def add_person(
    services: Services,
    role: str,
    user_id: str,
    *,
    municipality_id: int | None = None,
    school_id: int | None = None,
) -> None:
    """A registered chat user of the given role (Telegram user id = chat id)."""
    async with services.sessions() as session:
        person = Person(
            role=role, municipality_id=municipality_id, school_id=school_id, full_name=user_id
        )
        session.add(person)
        await session.flush()
        session.add(
            Account(person_id=person.id, platform="tg", platform_user_id=user_id, chat_id=user_id)
        )
        await session.commit()
