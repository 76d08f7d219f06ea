"""Benchmark of the Excel export against bare openpyxl (the floor).

    .venv/bin/python bench/export.py                 # 40,000 schools, ~300 municipalities
    .venv/bin/python bench/export.py --schools 2000  # a quick run

1. Generates (once, cached next to the output) a SQLite database: one region, a few hundred
   municipalities, N schools with complete submitted ``shnor_school`` responses (numbers,
   yes/no with a document for «да» and a note for «нет», the risk questions for risk-zone
   schools), directors linked to 4 of 5 schools. Generation runs in a child process so its
   memory does not count.
2. Runs the real export (``exports.service.run_export``: database → rows → indicators →
   workbook) and measures its time and the process's peak RSS.
3. Writes the same cells — same sheets, columns, value types, number formats, header styles,
   widths, chart — with bare openpyxl write-only from the generator's own numbers (the floor).

Prints the times, the peak RSS, rows/s and, as the last line,
``ratio=<export time / floor time> peak_rss_mb=<N>``. Targets: ratio ≤ 1.2, peak RSS ≤ 200 MB.
``OPENPYXL_LXML=False`` in the environment runs both without lxml, for the comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

REGION = "Ивановская область"
CAMPAIGN_TITLE = "Мониторинг ШНОР и ШНСУ — 2024"
SUBMITTED = datetime(2024, 5, 20, 9, 30)  # UTC, stored naive as SQLite returns it
UPDATED = datetime(2024, 5, 20, 9, 31)
NOTE = "Работа запланирована на следующий учебный год, ответственный назначен приказом."
YES_NO = (
    "pd_events",
    "curator_assigned",
    "quality_program",
    "failure_prevention",
    "iup",
    "tutor_support",
)
RISKS = ("risk_internet", "risk_computers", "risk_staff")
NUMBERS = (
    "diag_subject",
    "diag_methodological",
    "diag_psychological",
    "support_provided",
    "network_associations",
    "regional_asset",
    "iom",
)
DOC_NAMES = ("Приказ о назначении ответственного.pdf", "Программа.docx", "Скан договора.pdf")


# --- the generated data (shared by the generator and the floor) ------------------------------


def municipality_of(i: int, schools: int, municipalities: int) -> int:
    return i * municipalities // schools


def municipality_name(m: int) -> str:
    return f"Муниципальный район №{m + 1:03d}"


def school_name(i: int) -> str:
    return f"Муниципальное бюджетное общеобразовательное учреждение «Средняя школа №{i + 1}»"


def flags(i: int) -> tuple[bool, bool, bool]:
    return i % 7 == 0, i % 11 == 0, i % 5 == 0  # ШНОР, ШНСУ, risk zone


def answers(i: int) -> dict[str, object]:
    total = 20 + i % 60
    values: dict[str, object] = {"teachers_total": total}
    for k, qid in enumerate(NUMBERS):
        values[qid] = (i * (k + 3)) % (total + 1)
    for k, qid in enumerate(YES_NO):
        values[qid] = (i + k) % 3 != 0
    if flags(i)[2]:
        for k, qid in enumerate(RISKS):
            values[qid] = (i + k) % 4 != 0
    return values


def director_linked(i: int) -> bool:
    return i % 5 != 4


# --- generation ------------------------------------------------------------------------------


def generate(db: Path, schools: int, municipalities: int) -> None:
    from sqlalchemy import create_engine, insert

    from forms.loader import load_bundled
    from storage.database import upgrade_sync
    from storage.forms_sync import form_checksum
    from storage.models import (
        Account,
        Answer,
        Attachment,
        Campaign,
        CampaignTarget,
        FormVersion,
        Municipality,
        Person,
        Region,
        Response,
        School,
    )

    db.unlink(missing_ok=True)
    upgrade_sync(f"sqlite+aiosqlite:///{db}")
    engine = create_engine(f"sqlite:///{db}")
    forms = load_bundled()
    with engine.begin() as conn:
        conn.exec_driver_sql("PRAGMA synchronous=OFF")
        conn.execute(
            insert(FormVersion),
            [
                {
                    "form_id": f.id,
                    "version": f.version,
                    "title": f.title,
                    "checksum": form_checksum(f),
                    "definition": f.model_dump(mode="json"),
                }
                for f in forms.values()
            ],
        )
        conn.execute(insert(Region), [{"id": 1, "name": REGION, "timezone": "Europe/Moscow"}])
        conn.execute(
            insert(Municipality),
            [
                {"id": m + 1, "region_id": 1, "name": municipality_name(m)}
                for m in range(municipalities)
            ],
        )
        conn.execute(
            insert(Campaign),
            [
                {
                    "id": 1,
                    "form_id": "shnor_school",
                    "form_version": 1,
                    "title": CAMPAIGN_TITLE,
                    "opens_on": date(2024, 5, 1),
                    "deadline": date(2024, 6, 1),
                }
            ],
        )
        batch = 2000
        for start in range(0, schools, batch):
            school_rows, targets, responses, answer_rows, attachments = [], [], [], [], []
            people, accounts = [], []
            for i in range(start, min(start + batch, schools)):
                sid = i + 1
                mid = municipality_of(i, schools, municipalities) + 1
                shnor, shnsu, risk = flags(i)
                school_rows.append(
                    {
                        "id": sid,
                        "municipality_id": mid,
                        "code": f"{370000 + i}",
                        "name": school_name(i),
                        "is_shnor": shnor,
                        "is_shnsu": shnsu,
                        "is_risk_zone": risk,
                    }
                )
                key = f"school:{sid}"
                targets.append(
                    {
                        "campaign_id": 1,
                        "respondent_key": key,
                        "school_id": sid,
                        "municipality_id": mid,
                    }
                )
                responses.append(
                    {
                        "id": sid,
                        "campaign_id": 1,
                        "respondent_key": key,
                        "school_id": sid,
                        "form_version": 1,
                        "status": "submitted",
                        "started_at": SUBMITTED,
                        "updated_at": UPDATED,
                        "submitted_at": SUBMITTED,
                    }
                )
                for qid, value in answers(i).items():
                    note = NOTE if value is False else None
                    answer_rows.append(
                        {
                            "response_id": sid,
                            "question_id": qid,
                            "row": 0,
                            "value": value,
                            "note": note,
                            "form_version": 1,
                            "answered_at": UPDATED,
                        }
                    )
                    if value is True:
                        name = DOC_NAMES[(i + len(qid)) % len(DOC_NAMES)]
                        attachments.append(
                            {
                                "response_id": sid,
                                "question_id": qid,
                                "row": 0,
                                "original_name": name,
                                "size": 150_000,
                                "storage_path": f"{i % 256:02x}/{qid[:2]}/{sid:08d}{qid}.pdf",
                                "platform": "tg",
                                "status": "stored",
                                "created_at": UPDATED,
                            }
                        )
                if director_linked(i):
                    people.append(
                        {
                            "id": sid,
                            "role": "director",
                            "region_id": 1,
                            "municipality_id": mid,
                            "school_id": sid,
                            "created_at": UPDATED,
                        }
                    )
                    accounts.append(
                        {
                            "person_id": sid,
                            "platform": "tg",
                            "platform_user_id": str(100000 + i),
                            "chat_id": str(100000 + i),
                            "created_at": UPDATED,
                        }
                    )
            for model, rows in (
                (School, school_rows),
                (CampaignTarget, targets),
                (Response, responses),
                (Answer, answer_rows),
                (Attachment, attachments),
                (Person, people),
                (Account, accounts),
            ):
                if rows:
                    conn.execute(insert(model), rows)
    engine.dispose()


# --- the export ------------------------------------------------------------------------------


async def run_real_export(
    db: Path, out: Path, writer_process: bool | None
) -> tuple[float, int, int, int | None]:
    from zoneinfo import ZoneInfo

    from exports.data import ExportScope
    from exports.service import run_export
    from forms.loader import load_bundled
    from handlers.registry import FormRegistry
    from storage.database import create_engine, create_sessionmaker

    engine = create_engine(f"sqlite+aiosqlite:///{db}")
    sessions = create_sessionmaker(engine)
    forms = FormRegistry(load_bundled())
    started = time.perf_counter()
    result = await run_export(
        sessions,
        forms,
        ExportScope(),
        out,
        timezone=ZoneInfo("Europe/Moscow"),
        writer_process=writer_process,
    )
    elapsed = time.perf_counter() - started
    await engine.dispose()
    summary = result.summary
    return elapsed, summary.targets, summary.responses, summary.writer_peak_rss_kb


# --- the floor: the same cells with bare openpyxl --------------------------------------------


def write_floor(out: Path, schools: int, municipalities: int) -> float:
    from zoneinfo import ZoneInfo

    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.chart import BarChart, Reference
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    from exports.archive import document_name, question_label
    from forms.loader import load_bundled

    started = time.perf_counter()
    form = load_bundled()[("shnor_school", 1)]
    zone = ZoneInfo("Europe/Moscow")
    submitted = SUBMITTED.replace(tzinfo=UTC).astimezone(zone).replace(tzinfo=None)
    updated = UPDATED.replace(tzinfo=UTC).astimezone(zone).replace(tzinfo=None)
    questions = [q for _, g, q in form.iter_questions() if g is None]
    # «1.2.4 вопрос 9 «…» <file>»: every question is numbered as the walk shows it (the risk
    # block comes last, so the other numbers are the same for every school)
    file_names = {
        (q.id, doc): document_name(
            question_label(section.shown_number, number, q.short or q.text), doc
        )
        for number, (section, _, q) in enumerate(form.iter_questions(), start=1)
        for doc in DOC_NAMES
    }
    indicators = form.indicators
    wb = Workbook(write_only=True)
    bold, fill = Font(bold=True), PatternFill("solid", fgColor="DDEBF7")
    wrap = Alignment(wrap_text=True, vertical="top")

    def sheet(title: str, ids: list[str], widths: list[float], freeze: str):
        ws = wb.create_sheet(title)
        for n, width in enumerate(widths, 1):
            ws.column_dimensions[get_column_letter(n)].width = width
        ws.row_dimensions[1].hidden = True
        ws.row_dimensions[2].height = 150
        ws.freeze_panes = freeze
        ws.append(ids)
        header = []
        for text in ids:
            cell = WriteOnlyCell(ws, value=text)
            cell.font, cell.fill, cell.alignment = bold, fill, wrap
            header.append(cell)
        ws.append(header)
        ws.auto_filter.ref = f"A2:{get_column_letter(len(ids))}{schools + 2}"
        return ws

    def fmt(ws, value, number_format):
        cell = WriteOnlyCell(ws, value=value)
        cell.number_format = number_format
        return cell

    identity = ["campaign_id", "campaign", "municipality", "school", "school_code"]
    answer_ids = [*identity, "status", "submitted_at", "updated_at"]
    for q in questions:
        answer_ids.append(q.id)
        if q.note_when_no:
            answer_ids.append(f"{q.id}__note")
    answer_ids += ["documents_count", "documents"]
    answers_ws = sheet("Ответы — Анкета ОО", answer_ids, [14] * len(answer_ids), "E3")
    events_ids = [*identity, "status", "group", "row", "event_name"]
    sheet("Мероприятия", events_ids, [14] * len(events_ids), "E3")
    ind_ids = [*identity, "shnor", "shnsu", "risk_zone", "status", "counted"]
    ind_ids += [ind.id for ind in indicators]
    indicators_ws = sheet("Показатели", ind_ids, [14] * len(ind_ids), "E3")
    muni_ids = ["region", "municipality", "share", "num", "den", "targets", "counted"]
    muni_ids += [f"{ind.id}{s}" for ind in indicators for s in ("", "_n", "_d", "_m")]
    muni_ids.append("not_sent")
    muni_ws = sheet("Муниципалитеты", muni_ids, [14] * len(muni_ids), "C3")
    progress_ids = [*identity, "state", "answered", "questions", "last_activity", "linked"]
    progress_ws = sheet("Прогресс", progress_ids, [14] * len(progress_ids), "E3")
    done_ids = ["region", "municipality", "targets", "started", "submitted", "share"]
    done_ws = sheet("Готовность", done_ids, [14] * len(done_ids), "C3")

    for i in range(schools):
        values = answers(i)
        m = municipality_name(municipality_of(i, schools, municipalities))
        name = school_name(i)
        shnor, shnsu, risk = flags(i)
        ident = [1, CAMPAIGN_TITLE, m, name, f"{370000 + i}"]
        row = [*ident, "отправлена", fmt(answers_ws, submitted, "DD.MM.YYYY HH:MM")]
        row.append(fmt(answers_ws, updated, "DD.MM.YYYY HH:MM"))
        paths = []
        for q in questions:
            value = values.get(q.id)
            if isinstance(value, bool):
                row.append("да" if value else "нет")
            else:
                row.append(value)
            if q.note_when_no:
                row.append(NOTE if value is False else None)
            if value is True:
                doc = DOC_NAMES[(i + len(q.id)) % len(DOC_NAMES)]
                paths.append(f"{m}/{name}/{file_names[(q.id, doc)]}")
        row += [len(paths), "\n".join(paths)]
        answers_ws.append(row)

        row = [*ident, "да" if shnor else "нет", "да" if shnsu else "нет"]
        row += ["да" if risk else "нет", "отправлена", "да"]
        total = values["teachers_total"]
        for ind in indicators:
            if ind.kind == "share":
                row.append(fmt(indicators_ws, values[ind.numerator] / total, "0.0%"))
            elif ind.kind == "yes_no":
                row.append(1 if values[ind.question] else 0)
            elif risk:
                row.append(1 if sum(values[q] is True for q in ind.questions) >= 2 else 0)
            else:
                row.append("не применяется")
        indicators_ws.append(row)

        slots = len(questions) if risk else len(questions) - len(RISKS)
        progress_ws.append(
            [
                *ident,
                "отправлена",
                slots,
                slots,
                fmt(progress_ws, updated, "DD.MM.YYYY HH:MM"),
                "да" if director_linked(i) else "нет",
            ]
        )

    for m in range(municipalities + 1):  # the municipalities and the region row
        name = municipality_name(m) if m < municipalities else "Итого по региону"
        row = [REGION, name, fmt(muni_ws, 0.2, "0.0%"), 20, 130, 130, 130]
        for _ in indicators:
            row += [fmt(muni_ws, 0.42, "0.0%"), 1234, 2900, 0]
        row.append(None)
        muni_ws.append(row)
    for m in range(municipalities):
        row = [REGION, municipality_name(m), 130, 130, 130, fmt(done_ws, 1.0, "0.0%")]
        done_ws.append(row)
    chart = BarChart()
    chart.type = "bar"
    chart.add_data(
        Reference(done_ws, min_col=6, min_row=2, max_row=2 + municipalities),
        titles_from_data=True,
    )
    chart.set_categories(Reference(done_ws, min_col=2, min_row=3, max_row=2 + municipalities))
    done_ws.add_chart(chart, "H3")
    wb.save(out)
    return time.perf_counter() - started


# --- main ------------------------------------------------------------------------------------


def forms_fingerprint() -> str:
    """Changes when a bundled form changes: the cached database must then be rebuilt."""
    import hashlib

    from forms.loader import form_checksum, load_bundled

    checksums = sorted(form_checksum(form) for form in load_bundled().values())
    return hashlib.sha256("".join(checksums).encode()).hexdigest()[:8]


def cell_census(path: Path) -> dict[str, dict[str, int]]:
    """Per sheet: how many cells of each type and how many with a number format."""
    from collections import Counter

    from openpyxl import load_workbook

    census = {}
    workbook = load_workbook(path, read_only=True)
    for ws in workbook.worksheets:
        counts: Counter[str] = Counter()
        for row in ws.iter_rows(min_row=3):
            for cell in row:
                if cell.value is not None:
                    counts[type(cell.value).__name__] += 1
                    counts["formatted"] += cell.number_format != "General"
        census[ws.title] = dict(counts)
    workbook.close()
    return census


def peak_rss_mb() -> float:
    from exports.xlsx import peak_rss_kb

    return peak_rss_kb() / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--schools", type=int, default=40_000)
    parser.add_argument("--municipalities", type=int, default=None, help="default: schools/130")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/shnor_bench"))
    parser.add_argument("--regenerate", action="store_true", help="rebuild the cached database")
    parser.add_argument(
        "--writer",
        choices=("auto", "process", "thread"),
        default="auto",
        help="serialise in a writer process or in the exporting thread (default: by size)",
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        help="after timing, check that the floor wrote the same cells (slow for big runs)",
    )
    parser.add_argument("--generate-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    municipalities = args.municipalities or max(1, round(args.schools / 130))
    args.dir.mkdir(parents=True, exist_ok=True)
    db = args.dir / f"bench_{args.schools}_{municipalities}_{forms_fingerprint()}.sqlite3"

    if args.generate_only:
        generate(db, args.schools, municipalities)
        return
    if args.regenerate or not db.exists():
        print(f"generating {args.schools} schools in {municipalities} municipalities → {db}")
        started = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                __file__,
                "--generate-only",
                "--schools",
                str(args.schools),
                "--municipalities",
                str(municipalities),
                "--dir",
                str(args.dir),
            ],
            check=True,
        )
        print(f"generated in {time.perf_counter() - started:.1f} s")

    import openpyxl

    lxml = openpyxl.LXML
    export_path = args.dir / "export.xlsx"
    floor_path = args.dir / "floor.xlsx"
    writer_process = {"auto": None, "process": True, "thread": False}[args.writer]
    export_time, targets, responses, writer_kb = asyncio.run(
        run_real_export(db, export_path, writer_process)
    )
    own_rss = peak_rss_mb()
    writer_rss = (writer_kb or 0) / 1024
    export_rss = own_rss + writer_rss  # both processes at their peaks: an upper bound
    floor_time = write_floor(floor_path, args.schools, municipalities)
    rows = targets * 3  # «Ответы — Анкета ОО», «Показатели», «Прогресс»
    report = {
        "schools": args.schools,
        "municipalities": municipalities,
        "lxml": lxml,
        "export_s": round(export_time, 2),
        "floor_s": round(floor_time, 2),
        "export_mb": round(export_path.stat().st_size / 2**20, 1),
        "floor_mb": round(floor_path.stat().st_size / 2**20, 1),
        "responses": responses,
        "writer_process": writer_kb is not None,
    }
    print(json.dumps(report, ensure_ascii=False))
    if args.verify:
        exported, floor = cell_census(export_path), cell_census(floor_path)
        for title in exported:
            if title in ("Муниципалитеты", "Готовность"):
                continue  # a few hundred summary rows: the floor writes placeholder figures
            same = exported[title] == floor.get(title)
            print(f"verify {title}: {'same cells' if same else 'DIFFERENT'} {exported[title]}")
            if not same:
                print(f"       floor {title}: {floor.get(title)}")
    print(f"export: {export_time:.2f} s, {rows / export_time:,.0f} rows/s ({targets} targets)")
    print(f"floor:  {floor_time:.2f} s, {rows / floor_time:,.0f} rows/s")
    print(
        f"peak RSS: exporting process {own_rss:.0f} MB + writer process {writer_rss:.0f} MB "
        f"= {export_rss:.0f} MB (pid {os.getpid()})"
    )
    print(f"ratio={export_time / floor_time:.2f} peak_rss_mb={export_rss:.0f}")


if __name__ == "__main__":
    main()
