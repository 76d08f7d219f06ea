"""Benchmark of ``import-schools`` on a big file.

    .venv/bin/python bench/school_import.py                 # 100,000 rows
    .venv/bin/python bench/school_import.py --rows 10000    # a quick run

1. Generates (once, cached in ``--dir``) an N-row schools .xlsx shaped like the template:
   ~N/300 municipalities, a code on 9 of 10 schools, flags, directors on half.
2. In a child process (so generation does not count), imports it into a fresh SQLite file
   through the CLI's own path (``bot.schools_cli.import_file``: region, streamed parse,
   batched Core upserts, one transaction), then imports the same file again (every row
   matched, nothing changed), and reports each time and the child's peak RSS.

Last line: ``rows_per_s=<fresh import> peak_rss_mb=<child peak>``. Targets: ≥ 5,000 rows/s;
peak RSS that does not grow much with N (compare ``--rows 10000`` with the default).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

HEADERS = ("Муниципалитет", "Код ОО", "Наименование ОО", "ШНОР", "ШНСУ", "Зона риска", "Директор")
NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG = "http://schemas.openxmlformats.org/package/2006"
PARTS = {
    "[Content_Types].xml": (
        f'<Types xmlns="{PKG}/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
        'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-'
        'officedocument.spreadsheetml.sheet.main+xml"/>'
        '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.'
        'openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
        '<Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.'
        'openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>'
    ),
    "_rels/.rels": (
        f'<Relationships xmlns="{PKG}/relationships"><Relationship Id="rId1" '
        f'Type="{REL}/officeDocument" Target="xl/workbook.xml"/></Relationships>'
    ),
    "xl/workbook.xml": (
        f'<workbook xmlns="{NS}" xmlns:r="{REL}"><sheets>'
        '<sheet name="Школы" sheetId="1" r:id="rId1"/></sheets></workbook>'
    ),
    "xl/_rels/workbook.xml.rels": (
        f'<Relationships xmlns="{PKG}/relationships">'
        f'<Relationship Id="rId1" Type="{REL}/worksheet" Target="worksheets/sheet1.xml"/>'
        f'<Relationship Id="rId2" Type="{REL}/sharedStrings" Target="sharedStrings.xml"/>'
        "</Relationships>"
    ),
}
SURNAMES = ("Иванова", "Петров", "Сидорова", "Кузнецов", "Смирнова", "Попов", "Васильева")


def school_rows(rows: int) -> Iterator[list[str]]:
    municipalities = max(1, rows // 300)
    for i in range(rows):
        municipality = f"Муниципальный район № {i % municipalities + 1}"
        code = "" if i % 10 == 9 else f"{390000 + i}"
        kind = ("МБОУ «Средняя общеобразовательная школа", "МАОУ «Основная школа")[i % 2]
        name = f"{kind} № {i + 1} с. Новое-{i // municipalities}»"
        director = f"{SURNAMES[i % len(SURNAMES)]} А. В." if i % 2 else ""
        flags = ("да" if i % 3 == 0 else "нет", "да" if i % 5 == 0 else "", "+" if i % 7 else "")
        yield [municipality, code, name, *flags, director]


def generate(path: Path, rows: int) -> None:
    """Write the file the way Excel and LibreOffice do: text cells point into a shared
    strings table (openpyxl itself writes inline strings, which read much slower)."""
    strings: dict[str, int] = {}
    sheet = io.StringIO()
    sheet.write(
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<worksheet xmlns="{NS}">'
        f'<dimension ref="A1:G{rows + 2}"/><sheetData>'
    )
    lines = [["Перечень школ ШНОР/ШНСУ (бенчмарк)"], list(HEADERS)]
    for r, values in enumerate(itertools.chain(lines, school_rows(rows)), start=1):
        sheet.write(f'<row r="{r}">')
        for c, value in enumerate(values):
            if value:
                index = strings.setdefault(value, len(strings))
                sheet.write(f'<c r="{"ABCDEFG"[c]}{r}" t="s"><v>{index}</v></c>')
        sheet.write("</row>")
    sheet.write("</sheetData></worksheet>")
    shared = "".join(f"<si><t>{escape(s)}</t></si>" for s in strings)
    partial = path.with_suffix(".partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in PARTS.items():
            archive.writestr(name, text)
        archive.writestr("xl/worksheets/sheet1.xml", sheet.getvalue())
        archive.writestr(
            "xl/sharedStrings.xml",
            f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<sst xmlns="{NS}" '
            f'count="{len(strings)}" uniqueCount="{len(strings)}">{shared}</sst>',
        )
    partial.replace(path)


async def import_once(file: Path, db: Path) -> tuple[float, float, object]:
    """Wall and CPU seconds of one import (CPU includes the aiosqlite thread's), summary."""
    from bot.schools_cli import import_file
    from storage.database import create_engine, create_sessionmaker, upgrade

    url = f"sqlite+aiosqlite:///{db}"
    await upgrade(url)
    engine = create_engine(url)
    try:
        async with create_sessionmaker(engine)() as session:
            started, cpu = time.perf_counter(), time.process_time()
            outcome = await import_file(session, file, "Бенчмарковая область", "Europe/Moscow")
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        await engine.dispose()
    if isinstance(outcome, str):
        raise SystemExit(outcome)
    _, stream, summary = outcome
    if stream.issues:
        raise SystemExit("\n".join(map(str, stream.issues.result()[:5])))
    return elapsed, cpu, summary


def peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM, not ru_maxrss: on Linux ru_maxrss keeps the peak
    of the process before exec (here the parent)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def floor(file: Path) -> tuple[float, float]:
    """Wall and CPU seconds of bare openpyxl read-only iteration over the file."""
    from storage.xlsx_safety import open_workbook_safely

    started, cpu = time.perf_counter(), time.process_time()
    workbook = open_workbook_safely(file)
    sheet = workbook.worksheets[0]
    sheet.reset_dimensions()
    for _ in sheet.iter_rows(max_col=60, values_only=True):
        pass
    workbook.close()
    return time.perf_counter() - started, time.process_time() - cpu


def child(file: Path, db: Path) -> None:
    import bot.schools_cli  # noqa: F401  (imports are not the import's memory)

    before = peak_rss_mb()
    fresh, fresh_cpu, first = asyncio.run(import_once(file, db))
    after_fresh = peak_rss_mb()
    again, again_cpu, second = asyncio.run(import_once(file, db))
    floor_s, floor_cpu_s = floor(file)
    print(
        json.dumps(
            {
                "fresh_s": fresh,
                "fresh_cpu_s": fresh_cpu,
                "again_s": again,
                "again_cpu_s": again_cpu,
                "created": first.created,
                "unchanged": second.unchanged,
                "updated": second.updated,
                "floor_s": floor_s,
                "floor_cpu_s": floor_cpu_s,
                "baseline_rss_mb": before,
                "fresh_peak_rss_mb": after_fresh,
                "peak_rss_mb": peak_rss_mb(),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "shnor-bench")
    parser.add_argument("--child", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return

    args.dir.mkdir(parents=True, exist_ok=True)
    file = args.dir / f"schools_{args.rows}.xlsx"
    if not file.exists():
        started = time.perf_counter()
        code = f"import sys; sys.path.insert(0, {str(ROOT / 'bench')!r}); import school_import; "
        code += f"school_import.generate(school_import.Path({str(file)!r}), {args.rows})"
        subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)  # its memory apart
        print(f"generated {args.rows} rows in {time.perf_counter() - started:.1f} s → {file}")
    db = args.dir / f"import_{args.rows}.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(file), str(db)],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["created"] == args.rows and report["unchanged"] == args.rows, report
    print(json.dumps(report, ensure_ascii=False))
    fresh_rate = args.rows / report["fresh_s"]
    print(
        f"fresh import: {report['fresh_s']:.2f} s, {fresh_rate:,.0f} rows/s "
        f"(CPU {report['fresh_cpu_s']:.2f} s, {args.rows / report['fresh_cpu_s']:,.0f} rows/s); "
        f"re-import (all unchanged): {report['again_s']:.2f} s, "
        f"{args.rows / report['again_s']:,.0f} rows/s (CPU {report['again_cpu_s']:.2f} s)"
    )
    print(
        f"floor (bare openpyxl read-only iteration): {report['floor_s']:.2f} s, "
        f"CPU {report['floor_cpu_s']:.2f} s, {args.rows / report['floor_cpu_s']:,.0f} rows/s CPU"
    )
    print(f"load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(
        f"peak RSS: {report['baseline_rss_mb']:.0f} MB after imports, "
        f"{report['fresh_peak_rss_mb']:.0f} MB after the fresh import, "
        f"{report['peak_rss_mb']:.0f} MB after the re-import "
        f"({args.rows} rows, a {file.stat().st_size / 1e6:.1f} MB file)"
    )
    print(f"rows_per_s={fresh_rate:.0f} peak_rss_mb={report['peak_rss_mb']:.0f}")


if __name__ == "__main__":
    main()
