"""Command line: python -m bot … (the README runs it as python3 scripts/dev.py …)."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from bot import COMMAND
from bot.cli_backup import register as register_backup
from bot.cli_campaign import campaign_app
from bot.cli_common import cli_session, fail, settings_or_exit
from bot.cli_people import invites_reissue, people_app
from bot.cli_roadmap import roadmap_app
from bot.config import Settings

app = typer.Typer(
    help="Бот мониторинга ШНОР/ШНСУ: Telegram, консоль и инструменты администратора.",
    no_args_is_help=True,
    add_completion=False,
)
db_app = typer.Typer(help="База данных.", no_args_is_help=True)
forms_app = typer.Typer(help="Анкеты.", no_args_is_help=True)
reminders_app = typer.Typer(help="Напоминания о сроках.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(campaign_app, name="campaign")
app.add_typer(forms_app, name="forms")
app.add_typer(roadmap_app, name="roadmap")
app.add_typer(reminders_app, name="reminders")
app.add_typer(people_app, name="people")
# `invites --out …` makes the workbook; `invites reissue ID-или-КОД` one new code
invites_app = typer.Typer(help="Коды приглашения.", invoke_without_command=True)
invites_app.command("reissue")(invites_reissue)
app.add_typer(invites_app, name="invites")
register_backup(app)

log = logging.getLogger("bot")
DATABASE_SCHEMES = ("sqlite+aiosqlite://", "postgresql+asyncpg://")


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

        async with cli_session(settings) as session:
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


@invites_app.callback()
def invites(
    ctx: typer.Context,
    out: Annotated[
        Path | None, typer.Option("--out", help="Куда записать таблицу с кодами (.xlsx).")
    ] = None,
    reissue: Annotated[
        bool, typer.Option(help="Заменить ещё не использованные коды новыми.")
    ] = False,
    regional: Annotated[
        bool,
        typer.Option("--regional", help="Добавить коды региональных координаторов (по региону)."),
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
    """Коды приглашения и ссылки: по одному на школу и на муниципалитет (с --regional — и на
    регион). Один новый код: invites reissue ID-или-КОД."""
    if ctx.invoked_subcommand is not None:
        return
    if out is None:
        raise fail(
            "Укажите, куда записать таблицу: invites --out invites.xlsx "
            "(или invites reissue КОД — один новый код).",
            2,
        )
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
        async with cli_session(settings) as session:
            rows = await issue_invites(session, reissue=reissue)
            if regional:
                from storage.people_admin import issue_regional_invites

                rows = [*await issue_regional_invites(session, reissue), *rows]
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


@forms_app.command("list")
def forms_list() -> None:
    """Анкеты, которые знает бот."""
    from forms.loader import load_bundled

    for form in sorted(load_bundled().values(), key=lambda f: (f.id, f.version)):
        typer.echo(f"{form.id} v{form.version} ({form.respondent}): {form.title}")


@reminders_app.command("status")
def reminders_status(
    limit: Annotated[int, typer.Option(help="Сколько последних проблем показать.")] = 20,
) -> None:
    """Сколько напоминаний отправлено, пропущено (бот не работал), не доставлено."""
    settings = settings_or_exit()

    async def go():
        from scheduler.reminders import delivery_report

        async with cli_session(settings) as session:
            return await delivery_report(session, limit)

    report = asyncio.run(go())
    counts = ", ".join(f"{k}: {v}" for k, v in sorted(report.counts.items())) or "нет"
    typer.echo(f"Напоминания — {counts}")
    for delivery, chat in report.problems:
        typer.echo(
            f"  {delivery.status:12} {delivery.due_at:%d.%m.%Y %H:%M} UTC  {delivery.key}  "
            f"чат {chat}  {delivery.error or ''}"
        )


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
