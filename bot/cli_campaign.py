"""`campaign …`: open, close, extend, reopen and list questionnaire campaigns."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

import typer

from bot import COMMAND
from bot.cli_common import cli_session, fail, parse_day, settings_or_exit

log = logging.getLogger("bot")

campaign_app = typer.Typer(help="Анкетирования (кампании).", no_args_is_help=True)

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

        from storage.models import SENT_STATUSES, Campaign, CampaignTarget, Response

        async with cli_session(settings) as session:
            rows = []
            for campaign in await session.scalars(select(Campaign).order_by(Campaign.id)):
                targets = await session.scalar(
                    select(func.count()).where(CampaignTarget.campaign_id == campaign.id)
                )
                submitted = await session.scalar(
                    select(func.count()).where(
                        Response.campaign_id == campaign.id,
                        Response.status.in_(SENT_STATUSES),
                    )
                )
                rows.append((campaign, targets, submitted))
            return rows

    rows = asyncio.run(go())
    if not rows:
        typer.echo(
            "Анкетирований пока нет. Откройте первое: "
            f"{COMMAND} campaign open --form shnor_school --deadline ГГГГ-ММ-ДД"
        )
    for campaign, targets, submitted in rows:
        state = "закрыта" if campaign.closed_at else "открыта"
        typer.echo(
            f"№{campaign.id} {campaign.title} [{campaign.form_id} v{campaign.form_version}] "
            f"{state}, срок {campaign.deadline:%d.%m.%Y}, отправили {submitted} из {targets}"
        )
