"""Declared and confirmed values in the export, and the «Журнал изменений» sheet, read back
with openpyxl. Figures are computed by hand below (seed 004: shares over the imported list).

Северный район: S1 (ШНОР, зона риска) and S2 (обычная); Южный район: U1 (ШНСУ), not started.
Both schools of Северный submit; the coordinator accepts some «да» answers and returns one:

            pd_events (ШНОР/ШНСУ)    failure_prevention (все)    iup (все)
    S1      да, принят               да, возвращён               нет
    S2      да, без решения          да, принят                  да, без решения
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook

from exports.data import ExportScope
from exports.service import run_export
from forms.engine import Slot
from storage import repo, review
from storage.models import Municipality, Person, ResponseStatus, Role, Verdict
from tests.pg import settings_on_both_databases
from tests.test_export_workbook import by_id

settings = settings_on_both_databases()

ANSWERS = {
    "S1": {"pd_events": True, "failure_prevention": True, "iup": False},
    "S2": {"pd_events": True, "failure_prevention": True, "iup": True},
}
VERDICTS = {
    "S1": {
        "pd_events": (Verdict.ACCEPTED, None),
        "failure_prevention": (Verdict.RETURNED, "Нет печати"),
    },
    "S2": {"failure_prevention": (Verdict.ACCEPTED, None)},
}
SHA = "ab" * 32
NORTH = "Северный район"


async def build(services, region) -> dict[str, int]:
    """The two schools' answers, verdicts and submits; U1 gets one draft answer."""
    now = datetime.now(UTC)
    async with services.sessions() as session:
        north = await session.scalar(
            Municipality.__table__.select()
            .with_only_columns(Municipality.id)
            .where(Municipality.name == "Северный район")
        )
        boris = Person(role=Role.MUNICIPAL, municipality_id=north, full_name="Петров Борис")
        session.add(boris)
        campaign = await session.get(
            __import__("storage.models").models.Campaign, region.campaign_id
        )
        ids = {}
        for code in ("S1", "S2", "U1"):
            director = Person(
                role=Role.DIRECTOR, school_id=region.school_ids[code], full_name=f"Директор {code}"
            )
            session.add(director)
            await session.flush()
            response = await repo.get_or_create_response(
                session, campaign, f"school:{region.school_ids[code]}"
            )
            await session.flush()
            ids[code] = response.id
            if code == "U1":
                await repo.save_answer(session, response, Slot("teachers_total"), 9, director.id)
                continue
            await repo.save_answer(session, response, Slot("teachers_total"), 20, director.id)
            for qid, value in ANSWERS[code].items():
                note = None if value else "Программа в разработке, утвердим весной."
                await repo.save_answer(session, response, Slot(qid), value, director.id, note=note)
            if code == "S1":
                await repo.audit(
                    session, "attach", "response", response.id, director.id,
                    question="pd_events", row=0, old=None, new=repo.document_ref("приказ.pdf", SHA),
                )  # fmt: skip
            await review.move(session, response, ResponseStatus.SUBMITTED, director.id, now)
            for qid, (verdict, comment) in VERDICTS[code].items():
                await review.set_verdict(
                    session, response.id, Slot(qid), verdict, boris.id, now, comment
                )
        await session.commit()
    return ids


async def export(services, tmp_path: Path, scope: ExportScope) -> Path:
    out = tmp_path / f"out-{scope.municipality_id}.xlsx"
    await run_export(
        services.sessions,
        services.forms,
        scope,
        out,
        timezone=ZoneInfo("Europe/Moscow"),
        files=services.files,
        writer_process=False,
    )
    return out


async def test_declared_and_confirmed_per_school_and_per_municipality(services, region, tmp_path):
    await build(services, region)
    wb = load_workbook(await export(services, tmp_path, ExportScope()))

    ids, rows = by_id(wb["Показатели"])
    # the confirmed column stands right after its declared one; count shares have none
    assert ids[ids.index("pd_events") + 1] == "pd_events__confirmed"
    assert "support_share__confirmed" not in ids
    header = [c.value for c in wb["Показатели"][2]]
    assert header[ids.index("iup__confirmed")].endswith(", подтверждено, балл")
    school = {r["school_code"]: r for r in rows}
    pairs = {
        code: [(school[code][i], school[code][f"{i}__confirmed"]) for i in ANSWERS["S1"]]
        for code in ("S1", "S2")
    }
    assert pairs == {"S1": [(1, 1), (1, 0), (0, 0)], "S2": [(1, 0), (1, 1), (1, 0)]}
    assert school["U1"]["pd_events__confirmed"] == "нет данных"  # not started

    _, rows = by_id(wb["Муниципалитеты"])
    by_name = {r["municipality"]: r for r in rows}
    north, south, total = (
        by_name["Северный район"],
        by_name["Южный район"],
        by_name["Итого по региону"],
    )

    def declared_confirmed(row, ind):
        return (
            row[ind], row[f"{ind}__numerator"], row[f"{ind}__denominator"],
            row[f"{ind}__confirmed"], row[f"{ind}__confirmed__numerator"],
        )  # fmt: skip

    # pd_events over ШНОР/ШНСУ: Северный has S1 only (1 of 1 declared, 1 of 1 confirmed)
    assert declared_confirmed(north, "pd_events") == (1.0, 1, 1, 1.0, 1)
    # failure_prevention over all schools: 2 of 2 declared, S2 only confirmed
    assert declared_confirmed(north, "failure_prevention") == (1.0, 2, 2, 0.5, 1)
    # iup: S2 declared, nobody confirmed
    assert declared_confirmed(north, "iup") == (0.5, 1, 2, 0.0, 0)
    assert declared_confirmed(south, "iup") == (0.0, 0, 1, 0.0, 0)  # U1 in the denominator
    # the region: sums over schools — ШНОР/ШНСУ S1 and U1; all schools S1, S2, U1
    assert declared_confirmed(total, "pd_events") == (0.5, 1, 2, 0.5, 1)
    assert declared_confirmed(total, "failure_prevention")[:3] == (pytest.approx(2 / 3), 2, 3)
    assert declared_confirmed(total, "failure_prevention")[3:] == (pytest.approx(1 / 3), 1)
    assert declared_confirmed(total, "iup")[3:] == (0.0, 0)
    assert "support_share__confirmed" not in north


async def test_change_log_sheet_rows_in_scope(services, region, tmp_path):
    await build(services, region)
    wb = load_workbook(await export(services, tmp_path, ExportScope()))
    keys, rows = by_id(wb["Журнал изменений"])
    assert keys == [
        "at", "person", "role", "school", "municipality", "campaign", "question", "old", "new",
        "action",
    ]  # fmt: skip
    assert all(isinstance(r["at"], datetime) for r in rows)
    s1 = [
        tuple(r[k] for k in ("person", "role", "question", "old", "new", "action"))
        for r in rows
        if r["school"] == "МБОУ СОШ № 1"
    ]
    director = ("Директор S1", "директор")
    pd = "1.2.4 «Участие в мероприятиях по профмастерству»"
    fp = "1.2.5 «Программа профилактики неуспешности»"
    iup = "1.2.5 «Разработаны ИУПы»"
    assert s1 == [
        (*director, "1.2.3 «Педагогов всего»", None, 20, "ответ изменён"),
        (*director, pd, None, "да", "ответ изменён"),
        (*director, fp, None, "да", "ответ изменён"),
        (*director, iup, None, "нет", "ответ изменён"),
        (*director, iup, None, "Программа в разработке, утвердим весной.", "пояснение изменено"),
        (*director, pd, None, "приказ.pdf", "документ добавлен"),
        (*director, None, "черновик", "отправлена", "статус анкеты"),
        ("Петров Борис", "муниципальный координатор", pd, None, "принят", "решение координатора"),
        ("Петров Борис", "муниципальный координатор", fp, None, "возвращён: Нет печати",
         "решение координатора"),
    ]  # fmt: skip
    assert {r["municipality"] for r in rows if r["school"] == "МБОУ СОШ № 1"} == {"Северный район"}
    assert {r["campaign"] for r in rows} == {f"№{region.campaign_id} Мониторинг 2026"}
    assert [r["new"] for r in rows if r["school"] == "МБОУ ООШ с. Южное"] == [9]

    # a municipal coordinator's export: only their municipality's changes
    async with services.sessions() as session:
        north = await session.scalar(
            Municipality.__table__.select()
            .with_only_columns(Municipality.id)
            .where(Municipality.name == "Северный район")
        )
    wb = load_workbook(await export(services, tmp_path, ExportScope(municipality_id=north)))
    _, scoped = by_id(wb["Журнал изменений"])
    assert {r["school"] for r in scoped} == {"МБОУ СОШ № 1", "МБОУ СОШ № 2"}
    assert len(scoped) == len(rows) - 1
