"""`roadmap …`: import and list roadmaps."""

from __future__ import annotations

import asyncio
import logging
import re
import sys
from pathlib import Path
from typing import Annotated

import typer

from bot import COMMAND, roadmap_report
from bot.cli_common import cli_session, fail, settings_or_exit

log = logging.getLogger("bot")

roadmap_app = typer.Typer(help="Дорожные карты.", no_args_is_help=True)

# --- roadmaps and reminders -------------------------------------------------------------------


@roadmap_app.command("import")
def roadmap_import(
    file: Annotated[
        Path | None, typer.Argument(help="Таблица .xlsx или файл .yaml с дорожной картой.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Только проверить: как прочитан каждый срок.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Вывод в JSON.")] = False,
    bundled: Annotated[
        bool, typer.Option("--bundled", help="Загрузить встроенные карты (сиды 002 и 003).")
    ] = False,
    roadmap_id: Annotated[
        str | None, typer.Option("--id", help="Код карты (по умолчанию — имя файла).")
    ] = None,
    title: Annotated[
        str | None, typer.Option(help="Название карты (для .xlsx; иначе — из заголовка таблицы).")
    ] = None,
    period: Annotated[
        str | None,
        typer.Option(
            help="Период (для .xlsx, если его нет в заголовке таблицы): 2024 — календарный "
            "год, 2024-2025 — учебный."
        ),
    ] = None,
    level: Annotated[
        str | None, typer.Option(help="Уровень карты (для .xlsx): region или municipality.")
    ] = None,
    region: Annotated[str | None, typer.Option(help="Регион, как он назван в списке школ.")] = None,
    municipality: Annotated[
        str | None, typer.Option(help="Муниципалитет (для муниципальной карты).")
    ] = None,
    applies_to: Annotated[
        str | None,
        typer.Option(
            "--applies-to",
            help="Для кого карта: all (все школы), shnor_shnsu (ШНОР и ШНСУ — по умолчанию для "
            "региональной), risk_zone (зона риска). Для пункта — столбец «Для кого».",
        ),
    ] = None,
) -> None:
    """Загрузить дорожную карту. С --dry-run --json показывает, как прочитан срок каждой строки."""
    import json

    from roadmaps.audience import AppliesToError, parse_applies_to
    from roadmaps.importer import RoadmapFormatError

    if bundled == (file is not None):
        raise fail("Укажите файл или --bundled.", 2)
    if bundled and (region or municipality or applies_to):
        raise fail(
            "--region, --municipality и --applies-to не используются с --bundled: встроенные "
            "карты загружаются только в свой регион (тот, чьи школы есть в базе).",
            2,
        )
    try:
        audience = parse_applies_to(applies_to) if applies_to else None
    except AppliesToError as exc:
        raise fail(
            f"--applies-to: {exc} Для всей карты: all, shnor_shnsu или risk_zone.", 2
        ) from None
    try:
        results = _read_roadmaps(
            file, roadmap_id, title, period, level, region, municipality, audience
        )
    except RoadmapFormatError as exc:
        raise fail(str(exc)) from None
    report = [roadmap_report.roadmap_report(result) for result in results]
    blocked = any(result.blocking for result in results)
    if dry_run:
        if as_json:
            typer.echo(json.dumps(report, ensure_ascii=False, indent=2))
        else:
            for entry in report:
                roadmap_report.echo_report(entry)
        raise typer.Exit(0 if all(entry["items"] for entry in report) and not blocked else 1)
    empty = [entry for entry in report if not entry["items"]]
    if empty:
        for entry in empty:
            roadmap_report.echo_report(entry, err=True)
        raise fail("Файл не загружен: не найдено ни одного пункта.")
    if blocked:
        for result in results:
            for problem in result.blocking:
                typer.echo(f"  ✗ стр. {problem.row}: {problem.message}", err=True)
        raise fail("Файл не загружен: исправьте столбец «Для кого» в этих строках и повторите.")
    settings = settings_or_exit()

    async def go():
        from storage.roadmaps_save import Skipped, home_of, save_roadmap

        saved, skipped = [], []
        async with cli_session(settings) as session:
            for entry, result in zip(report, results, strict=True):
                home = (region, municipality)
                if bundled:
                    found = await home_of(session, result.roadmap)
                    if isinstance(found, Skipped):
                        skipped.append(found)
                        entry["skipped"] = found.reason
                        continue
                    home = found
                summary = await save_roadmap(
                    session,
                    result.roadmap,
                    region=home[0],
                    municipality=home[1],
                    source_file=str(file) if file else None,
                )
                saved.append((entry, summary))
            await session.commit()
        return saved, skipped

    saved, skipped = asyncio.run(go())
    if as_json:
        for entry, summary in saved:
            entry["saved"] = {
                "created": summary.created,
                "items_new": summary.items_new,
                "items_updated": summary.items_updated,
                "items_retired": summary.items_retired,
                "scope": summary.scope,
                "schools": summary.schools,
                "warnings": summary.warnings,
            }
        typer.echo(json.dumps(report, ensure_ascii=False, indent=2))
        raise typer.Exit(0 if saved else 1)
    for entry, summary in saved:
        unread = [row for row in entry["rows"] if row["error"]]
        typer.echo(
            f"Карта «{summary.key}» {roadmap_report.saved_word(summary)}: "
            f"пунктов новых {summary.items_new}, изменено {summary.items_updated}, "
            f"снято {summary.items_retired}; охват — {summary.scope}, школ {summary.schools}."
        )
        if entry.get("period_from_title"):
            typer.echo(f"  Период из заголовка таблицы: {roadmap_report.period_text(entry)}.")
        for warning in summary.warnings:
            typer.echo(f"  ! {warning}")
        if unread:
            typer.echo("  Сроки не распознаны (напоминаний по этим пунктам не будет):")
            for row in unread:
                typer.echo(f"    стр. {row['row']}, п. {row['number']}: {row['error']}")
    for skip in skipped:
        typer.echo(f"Карта «{skip.key}» пропущена: {skip.reason}.")
    if not saved:
        raise fail("Ничего не загружено.")


@roadmap_app.command("list")
def roadmap_list() -> None:
    """Дорожные карты в базе."""
    settings = settings_or_exit()

    async def go():
        from storage.roadmaps_db import list_roadmaps

        async with cli_session(settings) as session:
            return await list_roadmaps(session)

    rows = asyncio.run(go())
    if not rows:
        typer.echo(f"Дорожных карт нет. Загрузите: {COMMAND} roadmap import ФАЙЛ")
    for row in rows:
        rm = row.roadmap
        state = "" if rm.active else " [выключена]"
        typer.echo(
            f"{rm.key}: {rm.title[:80]} — {rm.period_start:%d.%m.%Y}–{rm.period_end:%d.%m.%Y}, "
            f"пунктов {row.items} (без срока {row.undated}), {row.scope}, школ {row.schools}"
            f"{state}"
        )


def _read_roadmaps(file, roadmap_id, title, period, level, region, municipality, audience):
    from roadmaps.importer import PeriodNotFound, bundled_results, import_xlsx, import_yaml_all

    if file is None:
        return bundled_results()
    if not file.exists():
        raise fail(f"Файл не найден: {file}", 2)
    if file.suffix.lower() in (".yaml", ".yml"):
        results = import_yaml_all(file)
        if audience is not None:
            for result in results:
                result.roadmap = result.roadmap.model_copy(update={"applies_to": audience})
        return results
    if file.suffix.lower() != ".xlsx":
        raise fail("Поддерживаются таблицы .xlsx и файлы .yaml.", 2)
    chosen = _parse_period(period) if period else None
    chosen_level = level or ("municipality" if municipality else "region")
    if chosen_level not in ("region", "municipality"):
        raise fail("--level: region или municipality.", 2)

    def read(chosen_period):
        return import_xlsx(
            file,
            roadmap_id=roadmap_id or roadmap_report.slug(file.stem),
            title=title,
            period=chosen_period,
            level=chosen_level,
            region=region,
            municipality=municipality,
            applies_to=audience,
        )

    try:
        return [read(chosen)]
    except PeriodNotFound as exc:
        if not sys.stdin.isatty():
            raise fail(str(exc), 2) from None
        typer.echo(str(exc))
        answer = typer.prompt("Период карты (например, 2024 или 2024-2025)")
        return [read(_parse_period(answer))]


def _parse_period(text: str):
    from roadmaps.deadlines import Period

    parts = [p.strip() for p in text.replace("/", "-").split("-")]
    years = [int(p) for p in parts if re.fullmatch(r"[0-9]{4}", p)]  # not «²», not 99999
    if len(years) == 1 and 1900 <= years[0] <= 2100:
        return Period.calendar_year(years[0])
    if len(years) == 2 and years[1] == years[0] + 1 and 1900 <= years[0] <= 2100:
        return Period.academic_year(years[0])
    raise fail("--period: ожидается 2024 (календарный год) или 2024-2025 (учебный).", 2)
