"""`people …` and `invites reissue`: who is registered where, an invite for a new person,
removing a person, switching an account off, a new code. Errors are Russian, exit code 1
(2 for a malformed argument), and nothing is written."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from bot.cli_common import cli_session, fail, settings_or_exit

people_app = typer.Typer(
    help="Люди: кто где зарегистрирован, приглашения, удаление.", no_args_is_help=True
)
START = "Передайте код человеку: пусть отправит боту /start {code}"


def _number(value: str, what: str) -> int:
    text = value.strip().lstrip("№#")
    if not text.isdigit() or len(text) > 18:
        raise fail(
            f"{what}: «{value}» — ожидается номер, например 12. "
            "Номера — в списке: python3 scripts/dev.py people list",
            2,
        )
    return int(text)


def _run(work):
    """Run ``work(session)`` in one transaction: committed on success; a PeopleError rolls
    everything back and is printed with exit code 1."""
    from storage.people_admin import PeopleError

    settings = settings_or_exit()

    async def go():
        async with cli_session(settings) as session:
            try:
                result = await work(session)
            except PeopleError as exc:
                await session.rollback()
                return exc
            await session.commit()
            return result

    result = asyncio.run(go())
    if isinstance(result, PeopleError):
        raise fail(str(result))
    return result, settings


@people_app.command("list")
def people_list(
    municipality: Annotated[
        str | None, typer.Option(help="Только этот муниципалитет (название как в списке школ).")
    ] = None,
) -> None:
    """Кто зарегистрирован: роль, школа или муниципалитет, мессенджеры, последняя активность."""
    from storage import people_admin as pa

    async def work(session):
        found = await pa.find_municipality(session, municipality) if municipality else None
        return await pa.list_people(session, found.id if found else None)

    rows, settings = _run(work)
    if not rows:
        typer.echo("Пока никто не зарегистрирован. Коды: python3 scripts/dev.py invites --out …")
        return
    zone = settings.app.zone
    current: object = ()
    for row in rows:
        if row.municipality != current:
            current = row.municipality
            typer.echo(row.municipality or "Региональный уровень")
        accounts = ", ".join(
            f"{a.platform_name} (аккаунт {a.id}{', отключён' if a.deactivated else ''})"
            for a in row.accounts
        )
        active = row.last_active
        seen = f"{active.astimezone(zone):%d.%m.%Y %H:%M}" if active else "не заходил(а)"
        removed = " — УДАЛЁН(А)" if row.removed else ""
        typer.echo(
            f"  №{row.id} {row.name} — {row.role_name}, {row.place} · "
            f"{accounts or 'нет аккаунтов'} · {seen}{removed}"
        )
    typer.echo(f"Всего: {len(rows)}")


@people_app.command("add")
def people_add(
    role: Annotated[str, typer.Option(help="director, municipal или regional.")],
    school: Annotated[str | None, typer.Option(help="Код школы (для director).")] = None,
    municipality: Annotated[str | None, typer.Option(help="Муниципалитет (для municipal).")] = None,
    region: Annotated[str | None, typer.Option(help="Регион (для regional).")] = None,
    name: Annotated[str | None, typer.Option(help="Имя — для журнала.")] = None,
) -> None:
    """Добавить человека: выдать код приглашения с ролью; он регистрируется по коду."""
    from storage import people_admin as pa

    async def work(session):
        return await pa.add_person(
            session,
            role.strip().lower(),
            school_code=school,
            municipality=municipality,
            region=region,
            name=name,
        )

    (invite, where), _ = _run(work)
    whom = f" для «{name}»" if name else ""
    typer.echo(f"Код приглашения{whom} ({pa.ROLE_NAMES[invite.role]}, {where}): {invite.code}")
    typer.echo(START.format(code=invite.code))


@people_app.command("remove")
def people_remove(
    person: Annotated[str, typer.Argument(help="Номер человека из people list.")],
) -> None:
    """Удалить человека: доступ к боту закрывается, напоминания прекращаются."""
    from storage import people_admin as pa
    from storage.models import utcnow

    number = _number(person, "ID")

    async def work(session):
        found = await pa.remove_person(session, number, utcnow())
        return found.full_name or "без имени"

    name, _ = _run(work)
    typer.echo(f"Человек №{number} ({name}) удалён: доступ закрыт, напоминаний не будет.")


@people_app.command("deactivate-account")
def people_deactivate_account(
    account: Annotated[str, typer.Argument(help="Номер аккаунта из people list.")],
) -> None:
    """Отключить один аккаунт (мессенджер) человека; другие его аккаунты продолжают работать."""
    from storage import people_admin as pa
    from storage.models import utcnow

    number = _number(account, "ID")

    async def work(session):
        found = await pa.deactivate_account(session, number, utcnow())
        return pa.PLATFORM_NAMES.get(found.platform, found.platform)

    platform, _ = _run(work)
    typer.echo(f"Аккаунт №{number} ({platform}) отключён: бот ему больше не отвечает.")


def invites_reissue(
    id_or_code: Annotated[
        str, typer.Argument(metavar="ID-или-КОД", help="Код приглашения или номер человека.")
    ],
) -> None:
    """Новый код вместо неиспользованного (старый отзывается) или для зарегистрированного
    человека — с той же ролью."""
    from storage import people_admin as pa
    from storage.models import utcnow

    async def work(session):
        return await pa.reissue(session, id_or_code, utcnow())

    (invite, done), _ = _run(work)
    typer.echo(done)
    typer.echo(f"Новый код: {invite.code}")
    typer.echo(START.format(code=invite.code))
