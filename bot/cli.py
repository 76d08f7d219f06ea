"""Command line: python -m bot … (the README runs it as python3 scripts/dev.py …)."""

from __future__ import annotations

import asyncio
import logging
import sys
from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from bot import COMMAND, roadmap_report
from bot.config import ConfigError, Settings, load_settings

app = typer.Typer(
    help="Бот мониторинга ШНОР/ШНСУ: Telegram, консоль и инструменты администратора.",
    no_args_is_help=True,
    add_completion=False,
)
db_app = typer.Typer(help="База данных.", no_args_is_help=True)
campaign_app = typer.Typer(help="Анкетирования (кампании).", no_args_is_help=True)
forms_app = typer.Typer(help="Анкеты.", no_args_is_help=True)
roadmap_app = typer.Typer(help="Дорожные карты.", no_args_is_help=True)
reminders_app = typer.Typer(help="Напоминания о сроках.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(campaign_app, name="campaign")
app.add_typer(forms_app, name="forms")
app.add_typer(roadmap_app, name="roadmap")
app.add_typer(reminders_app, name="reminders")

log = logging.getLogger("bot")
DATABASE_SCHEMES = ("sqlite+aiosqlite://", "postgresql+asyncpg://")


def settings_or_exit() -> Settings:
    try:
        settings = load_settings()
    except ConfigError as exc:
        typer.echo(
            f"{exc}\nИсправьте настройку в .env или в окружении и запустите снова.", err=True
        )
        raise typer.Exit(2) from None
    logging.basicConfig(
        level=settings.app.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return settings


def fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(code)


def parse_day(value: str, option: str) -> date:
    for parse in (date.fromisoformat, lambda v: date(*reversed([int(p) for p in v.split(".")]))):
        try:
            return parse(value)
        except (ValueError, TypeError):
            continue
    raise fail(f"{option}: не удалось прочитать дату «{value}». Формат: ГГГГ-ММ-ДД.", 2)


# --- run and console ---------------------------------------------------------------------------


@app.command()
def run() -> None:
    """Запустить бота на всех настроенных платформах (сейчас — Telegram)."""
    settings = settings_or_exit()
    from bot.runner import any_configured, run_bot

    if not any_configured(settings):
        typer.echo(
            "BOT_TOKEN не задан, поэтому Telegram не запущен.\n"
            f"Попробовать анкету можно в консоли: {COMMAND} console\n"
            "Для Telegram получите токен у @BotFather и задайте BOT_TOKEN в .env."
        )
        if sys.stdin.isatty():
            typer.echo("Запускаю консольный режим…\n")
            console(form="shnor_school", database=None, reset=False)
            return
        raise typer.Exit(1)
    asyncio.run(run_bot(settings))


@app.command()
def console(
    form: Annotated[str, typer.Option(help="Какую анкету заполнять в демо.")] = "shnor_school",
    database: Annotated[
        str | None,
        typer.Option(help="Файл или URL базы для консоли (по умолчанию DATA_DIR/demo.sqlite3)."),
    ] = None,
    reset: Annotated[
        bool, typer.Option("--reset", help="Начать демо заново: удалить демо-базу с ответами.")
    ] = False,
) -> None:
    """Пройти анкету в терминале на демо-школе, без Telegram."""
    settings = settings_or_exit()
    from bot.console import reset_demo, run_interactive
    from bot.runner import run_console
    from forms.loader import load_bundled

    known = sorted({f.id for f in load_bundled().values()})
    if form not in known:
        raise fail(f"--form: анкеты «{form}» нет. Есть: {', '.join(known)}.", 2)
    if database is not None and "://" not in database:  # a file name: an SQLite database
        database = f"sqlite+aiosqlite:///{Path(database).resolve()}"
    elif database is not None and not database.startswith(DATABASE_SCHEMES):
        raise fail("--database: ожидается путь к файлу или sqlite+aiosqlite:///путь.", 2)
    if reset:
        if database is not None:
            raise fail("--reset сбрасывает только демо-базу; базу из --database удалите сами.", 2)
        if reset_demo(settings.storage.data_dir):
            typer.echo("Демо-база удалена: анкета начнётся заново.\n")
    code = run_interactive(run_console(settings, form, database))
    if code:
        raise typer.Exit(code)


# --- database ---------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Применить миграции базы данных."""
    settings = settings_or_exit()
    from storage.database import upgrade_sync

    upgrade_sync(settings.storage.url)
    typer.echo("База данных обновлена.")


# --- schools and invites -----------------------------------------------------------------------


@app.command("import-schools")
def import_schools(
    file: Annotated[Path, typer.Argument(help="Таблица .xlsx со списком школ.")],
    region: Annotated[
        str | None,
        typer.Option(help="Название региона; можно не указывать, если он в базе один."),
    ] = None,
    template: Annotated[
        bool, typer.Option("--template", help="Не загружать, а записать в FILE пустой шаблон.")
    ] = False,
) -> None:
    """Загрузить (или обновить) список школ из Excel. Повторная загрузка ничего не дублирует."""
    from sqlalchemy.exc import SQLAlchemyError

    from storage.school_import import write_schools_template

    if template:
        try:
            write_schools_template(file)
        except OSError:
            raise fail(
                f"Не удалось записать шаблон в «{file}». Проверьте, что папка существует "
                "и в неё можно писать, и попробуйте снова."
            ) from None
        typer.echo(f"Шаблон записан: {file}")
        return
    settings = settings_or_exit()

    async def go():
        from bot.schools_cli import import_file

        async with _session(settings) as session:
            return await import_file(session, file, region, settings.app.timezone)

    try:
        outcome = asyncio.run(go())
    except (SQLAlchemyError, OSError):
        raise fail(
            "Список школ не загружен: база данных недоступна или вернула ошибку. "
            "Ничего не изменено. Проверьте DATABASE_URL и попробуйте снова."
        ) from None
    if isinstance(outcome, str):
        raise fail(outcome)
    region_name, stream, summary = outcome
    if stream.issues:
        typer.echo("Файл не загружен: исправьте ошибки и попробуйте снова.", err=True)
        for issue in stream.issues.result():
            typer.echo(f"  {issue}", err=True)
        raise typer.Exit(1)
    skipped = (
        f"; пропущено строк-примеров из шаблона: {stream.examples_skipped}"
        if stream.examples_skipped
        else ""
    )
    typer.echo(
        f"Готово, регион «{region_name}»: новых школ {summary.created}, "
        f"обновлено {summary.updated}, без изменений {summary.unchanged}; "
        f"новых муниципалитетов {summary.municipalities_created}{skipped}."
    )


@app.command()
def invites(
    out: Annotated[Path, typer.Option("--out", help="Куда записать таблицу с кодами (.xlsx).")],
    reissue: Annotated[
        bool, typer.Option(help="Заменить ещё не использованные коды новыми.")
    ] = False,
    bot_username: Annotated[
        str | None, typer.Option(help="Имя бота для ссылок t.me/<бот>?start=КОД.")
    ] = None,
    vk_group: Annotated[
        str | None,
        typer.Option(help="Короткое имя сообщества для ссылок vk.me/<имя>?ref=КОД."),
    ] = None,
    max_bot: Annotated[
        str | None, typer.Option(help="Имя бота MAX для ссылок max.ru/<бот>?start=КОД.")
    ] = None,
) -> None:
    """Коды приглашения и ссылки: по одному на школу и на муниципалитет."""
    from bot import invite_links

    settings = settings_or_exit()
    try:  # a typo in a name is reported before anything is written
        invite_links.columns(bot_username, vk_group, max_bot)
    except invite_links.BadName as exc:
        raise fail(str(exc), 2) from None

    async def go():
        from storage.admin import issue_invites

        columns = invite_links.columns(
            bot_username or await _bot_username(settings),
            vk_group or invite_links.vk_group_from(settings),
            max_bot or await invite_links.max_bot_name(settings),
        )
        async with _session(settings) as session:
            rows = await issue_invites(session, reissue=reissue)
            await session.commit()
        return rows, columns

    rows, columns = asyncio.run(go())
    if not rows:
        raise fail(f"Нет ни одной школы. Сначала: {COMMAND} import-schools ФАЙЛ.xlsx")
    from exports.invites import write_invites

    write_invites(out, rows, columns)
    new = sum(r.new for r in rows)
    typer.echo(f"Записано кодов: {len(rows)} (новых {new}) → {out}")
    if not columns:
        typer.echo(
            "Ссылки не построены: задайте BOT_TOKEN, VK_GROUP_ID или MAX_TOKEN "
            "(или --bot-username, --vk-group, --max-bot)."
        )


async def _bot_username(settings: Settings) -> str | None:
    if settings.telegram.bot_token is None:
        return None
    from bot.telegram import create_bot

    bot = create_bot(settings.telegram.bot_token.get_secret_value(), settings.telegram.api_url)
    try:
        return (await bot.get_me()).username
    except Exception as exc:  # no network, wrong token: links are optional
        log.warning("could not ask Telegram for the bot name: %s", exc)
        return None
    finally:
        await bot.session.close()


# --- campaigns and forms ----------------------------------------------------------------------


@campaign_app.command("open")
def campaign_open(
    form: Annotated[
        str, typer.Option(help="Анкета: shnor_school, shnor_municipality, program_report.")
    ],
    deadline: Annotated[str, typer.Option(help="Срок сдачи, ГГГГ-ММ-ДД.")],
    opens: Annotated[str | None, typer.Option(help="Дата открытия (по умолчанию сегодня).")] = None,
    title: Annotated[str | None, typer.Option(help="Название для пользователей.")] = None,
    municipality: Annotated[
        list[str] | None, typer.Option(help="Только эти муниципалитеты (можно несколько раз).")
    ] = None,
    only: Annotated[
        str | None, typer.Option(help="Только школы: shnor, shnsu, shnor_shnsu или risk_zone.")
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Открыть, даже если у части школ эта анкета уже открыта."),
    ] = False,
) -> None:
    """Открыть анкету для школ (или муниципалитетов) со сроком сдачи."""
    settings = settings_or_exit()
    if only not in (None, "shnor", "shnsu", "shnor_shnsu", "risk_zone"):
        raise fail("--only: допустимо shnor, shnsu, shnor_shnsu или risk_zone.", 2)
    due = parse_day(deadline, "--deadline")

    async def go():
        from forms.loader import load_bundled
        from handlers.registry import FormRegistry
        from storage.admin import CampaignError, open_campaign

        registry = FormRegistry(load_bundled())
        try:
            chosen = registry.latest(form)
        except LookupError:
            names = ", ".join(sorted({f.id for f in registry.all()}))
            raise fail(f"Анкета «{form}» не найдена. Есть: {names}.", 2) from None
        from bot.app import create_services

        services = await create_services(settings)
        try:
            start = parse_day(opens, "--opens") if opens else services.conversation.today()
            async with services.sessions() as session:
                try:
                    campaign, count = await open_campaign(
                        session, chosen, due, start, title, municipality, only, force
                    )
                except CampaignError as exc:
                    raise fail(str(exc)) from None
                await session.commit()
                return campaign, count
        finally:
            await services.close()

    campaign, count = asyncio.run(go())
    typer.echo(
        f"Открыта анкета №{campaign.id} «{campaign.title}» (v{campaign.form_version}) "
        f"для {count} участников, срок до {campaign.deadline:%d.%m.%Y}."
    )


def _change_campaign(change):
    """Run ``change(session, today)`` in one transaction; a CampaignError is the message."""
    settings = settings_or_exit()

    async def go():
        from bot.app import create_services
        from storage.admin import CampaignError

        services = await create_services(settings)
        try:
            async with services.sessions() as session:
                try:
                    result = await change(session, services.conversation.today())
                except CampaignError as exc:
                    raise fail(str(exc)) from None
                await session.commit()
                return result
        finally:
            await services.close()

    return asyncio.run(go())


@campaign_app.command("close")
def campaign_close(
    number: Annotated[int, typer.Argument(help="Номер анкетирования (campaign list).")],
) -> None:
    """Закрыть анкетирование: ответы и напоминания прекращаются, данные остаются."""
    from storage.admin import close_campaign

    campaign = _change_campaign(lambda session, _today: close_campaign(session, number))
    typer.echo(
        f"Анкетирование №{campaign.id} «{campaign.title}» закрыто: ответы больше не "
        "принимаются, напоминания не отправляются. Выгрузка по-прежнему доступна."
    )


@campaign_app.command("extend")
def campaign_extend(
    number: Annotated[int, typer.Argument(help="Номер анкетирования (campaign list).")],
    deadline: Annotated[str, typer.Option(help="Новый срок сдачи, ГГГГ-ММ-ДД.")],
) -> None:
    """Перенести срок сдачи анкетирования."""
    from storage.admin import extend_campaign

    due = parse_day(deadline, "--deadline")
    campaign, old = _change_campaign(
        lambda session, today: extend_campaign(session, number, due, today)
    )
    typer.echo(
        f"Срок анкетирования №{campaign.id} «{campaign.title}» перенесён: "
        f"{old:%d.%m.%Y} → {campaign.deadline:%d.%m.%Y}. Напоминания придут к новому сроку."
    )


@campaign_app.command("reopen")
def campaign_reopen(
    number: Annotated[int, typer.Argument(help="Номер анкетирования (campaign list).")],
    school: Annotated[str, typer.Option("--school", help="Код школы («Код ОО»).")],
) -> None:
    """Вернуть отправленную анкету школы на доработку: директор снова сможет её изменить."""
    from storage.admin import reopen_response

    campaign, found, _response = _change_campaign(
        lambda session, _today: reopen_response(session, number, school)
    )
    typer.echo(
        f"Анкета школы «{found.name}» в анкетировании №{campaign.id} «{campaign.title}» "
        "возвращена на доработку: директор может исправить ответы и отправить её снова."
    )


@campaign_app.command("list")
def campaign_list() -> None:
    """Открытые и закрытые анкетирования."""
    settings = settings_or_exit()

    async def go():
        from sqlalchemy import func, select

        from storage.models import Campaign, CampaignTarget, Response, ResponseStatus

        async with _session(settings) as session:
            rows = []
            for campaign in await session.scalars(select(Campaign).order_by(Campaign.id)):
                targets = await session.scalar(
                    select(func.count()).where(CampaignTarget.campaign_id == campaign.id)
                )
                submitted = await session.scalar(
                    select(func.count()).where(
                        Response.campaign_id == campaign.id,
                        Response.status == ResponseStatus.SUBMITTED,
                    )
                )
                rows.append((campaign, targets, submitted))
            return rows

    for campaign, targets, submitted in asyncio.run(go()):
        state = "закрыта" if campaign.closed_at else "открыта"
        typer.echo(
            f"№{campaign.id} {campaign.title} [{campaign.form_id} v{campaign.form_version}] "
            f"{state}, срок {campaign.deadline:%d.%m.%Y}, отправили {submitted} из {targets}"
        )


@forms_app.command("list")
def forms_list() -> None:
    """Анкеты, которые знает бот."""
    from forms.loader import load_bundled

    for form in sorted(load_bundled().values(), key=lambda f: (f.id, f.version)):
        typer.echo(f"{form.id} v{form.version} ({form.respondent}): {form.title}")


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
        async with _session(settings) as session:
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

        async with _session(settings) as session:
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

    years = [int(p) for p in text.replace("/", "-").split("-") if p.strip().isdigit()]
    if len(years) == 1:
        return Period.calendar_year(years[0])
    if len(years) == 2 and years[1] == years[0] + 1:
        return Period.academic_year(years[0])
    raise fail("--period: ожидается 2024 (календарный год) или 2024-2025 (учебный).", 2)


@reminders_app.command("status")
def reminders_status(
    limit: Annotated[int, typer.Option(help="Сколько последних проблем показать.")] = 20,
) -> None:
    """Сколько напоминаний отправлено, пропущено (бот не работал), не доставлено."""
    settings = settings_or_exit()

    async def go():
        from scheduler.reminders import delivery_report

        async with _session(settings) as session:
            return await delivery_report(session, limit)

    report = asyncio.run(go())
    counts = ", ".join(f"{k}: {v}" for k, v in sorted(report.counts.items())) or "нет"
    typer.echo(f"Напоминания — {counts}")
    for delivery, chat in report.problems:
        typer.echo(
            f"  {delivery.status:12} {delivery.due_at:%d.%m.%Y %H:%M} UTC  {delivery.key}  "
            f"чат {chat}  {delivery.error or ''}"
        )


class _session:
    """Migrated database session for one CLI command."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def __aenter__(self):
        from storage.database import create_engine, create_sessionmaker, upgrade

        await upgrade(self.settings.storage.url)
        self.engine = create_engine(self.settings.storage.url)
        self.session = create_sessionmaker(self.engine)()
        return self.session

    async def __aexit__(self, *exc) -> None:
        await self.session.close()
        await self.engine.dispose()


# --- the Excel export ----------------------------------------------------------------------------


@app.command("export")
def export(
    out: Annotated[Path, typer.Option("--out", help="Куда записать таблицу (.xlsx).")],
    campaign: Annotated[
        list[int] | None,
        typer.Option("--campaign", help="Номер анкетирования (можно несколько раз); иначе все."),
    ] = None,
    municipality: Annotated[
        str | None, typer.Option("--municipality", help="Только этот муниципалитет.")
    ] = None,
    documents: Annotated[
        Path | None, typer.Option("--documents", help="Куда записать архив документов (.zip).")
    ] = None,
    include_drafts: Annotated[
        bool,
        typer.Option("--include-drafts", help="Учитывать в показателях и неотправленные анкеты."),
    ] = False,
) -> None:
    """Выгрузка в Excel: ответы, мероприятия, показатели, муниципалитеты, прогресс."""
    settings = settings_or_exit()

    async def go():
        from sqlalchemy import select

        from bot.app import create_services
        from exports.data import ExportScope, load_header
        from exports.service import run_export
        from storage.models import Municipality
        from storage.school_import import normalize_key

        services = await create_services(settings)
        try:
            async with services.sessions() as session:
                municipality_id = None
                if municipality:
                    wanted = normalize_key(municipality)
                    found = [
                        m
                        for m in await session.scalars(select(Municipality))
                        if normalize_key(m.name) == wanted
                    ]
                    if len(found) != 1:
                        raise fail(f"Муниципалитет «{municipality}» не найден.", 2)
                    municipality_id = found[0].id
                scope = ExportScope(
                    municipality_id, tuple(campaign) if campaign else None, include_drafts
                )
                header = await load_header(session, scope)
            unknown = sorted(set(campaign or ()) - {c.id for c in header.campaigns})
            if unknown:
                numbers = ", ".join(f"№{n}" for n in unknown)
                raise fail(f"Анкетирование {numbers} не найдено. Список: {COMMAND} campaign list")
            if not header.campaigns:
                raise fail("Выгружать нечего: анкетирований пока нет.")
            return await run_export(
                services.sessions,
                services.forms,
                scope,
                out,
                timezone=settings.app.zone,
                files=services.files,
                documents=documents,
                header=header,
            )
        finally:
            await services.close()

    result = asyncio.run(go())
    summary = result.summary
    typer.echo(
        f"Готово: {out} — анкет {summary.responses} из {summary.targets}, "
        f"в расчёте показателей {summary.counted}."
    )
    if documents is not None:
        typer.echo(f"Документы: {summary.archived} файлов → {documents}")
    if summary.missing_documents:
        typer.echo(
            f"Не нашлось на диске файлов: {len(summary.missing_documents)} "
            "(отмечены в листах «Ответы — …»).",
            err=True,
        )
