"""Command line: python -m bot …"""

from __future__ import annotations

import asyncio
import logging
import sys
from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from bot.config import ConfigError, Settings, load_settings

app = typer.Typer(
    help="Бот мониторинга ШНОР/ШНСУ: Telegram, консоль и инструменты администратора.",
    no_args_is_help=True,
    add_completion=False,
)
db_app = typer.Typer(help="База данных.", no_args_is_help=True)
campaign_app = typer.Typer(help="Анкетирования (кампании).", no_args_is_help=True)
forms_app = typer.Typer(help="Анкеты.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(campaign_app, name="campaign")
app.add_typer(forms_app, name="forms")

log = logging.getLogger("bot")


def settings_or_exit() -> Settings:
    try:
        settings = load_settings()
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
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
    if settings.telegram.bot_token is None:
        typer.echo(
            "BOT_TOKEN не задан, поэтому Telegram не запущен.\n"
            "Попробовать анкету можно в консоли: python -m bot console\n"
            "Для Telegram получите токен у @BotFather и задайте BOT_TOKEN в .env."
        )
        if sys.stdin.isatty():
            typer.echo("Запускаю консольный режим…\n")
            console(form="shnor_school")
            return
        raise typer.Exit(1)
    from bot.runner import run_bot

    asyncio.run(run_bot(settings))


@app.command()
def console(
    form: Annotated[str, typer.Option(help="Какую анкету заполнять в демо.")] = "shnor_school",
    database: Annotated[
        str | None, typer.Option(help="База для консоли (по умолчанию DATA_DIR/demo.sqlite3).")
    ] = None,
) -> None:
    """Пройти анкету в терминале на демо-школе, без Telegram."""
    settings = settings_or_exit()
    from bot.runner import run_console

    asyncio.run(run_console(settings, form, database))


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
    region: Annotated[str, typer.Option(help="Название региона.")] = "Регион",
    template: Annotated[
        bool, typer.Option("--template", help="Не загружать, а записать в FILE пустой шаблон.")
    ] = False,
) -> None:
    """Загрузить (или обновить) список школ из Excel. Повторная загрузка ничего не дублирует."""
    from storage.school_import import parse_schools, write_schools_template

    if template:
        write_schools_template(file)
        typer.echo(f"Шаблон записан: {file}")
        return
    settings = settings_or_exit()
    parsed = parse_schools(file)
    if parsed.errors:
        typer.echo("Файл не загружен: исправьте ошибки и попробуйте снова.", err=True)
        for issue in parsed.errors:
            typer.echo(f"  {issue}", err=True)
        raise typer.Exit(1)

    async def go():
        from storage.admin import import_schools as do_import

        async with _session(settings) as session:
            summary = await do_import(session, region, parsed.rows, settings.app.timezone)
            await session.commit()
            return summary

    summary = asyncio.run(go())
    typer.echo(
        f"Готово: новых школ {summary.created}, обновлено {summary.updated}, "
        f"без изменений {summary.unchanged}; "
        f"новых муниципалитетов {summary.municipalities_created}."
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
) -> None:
    """Коды приглашения и ссылки: по одному на школу и на муниципалитет."""
    settings = settings_or_exit()

    async def go():
        from storage.admin import issue_invites

        username = bot_username or await _bot_username(settings)
        async with _session(settings) as session:
            rows = await issue_invites(session, reissue=reissue)
            await session.commit()
        return rows, username

    rows, username = asyncio.run(go())
    if not rows:
        raise fail("Нет ни одной школы. Сначала: python -m bot import-schools ФАЙЛ.xlsx")
    from exports.invites import write_invites

    write_invites(out, rows, username)
    new = sum(r.new for r in rows)
    typer.echo(f"Записано кодов: {len(rows)} (новых {new}) → {out}")
    if not username:
        typer.echo("Ссылки не построены: задайте BOT_TOKEN или --bot-username.")


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
                        session, chosen, due, start, title, municipality, only
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
