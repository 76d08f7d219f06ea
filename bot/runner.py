"""Long-running modes: every configured channel with the intake, and the console.

``run_bot`` starts the channels found in :data:`CHANNELS` (a channel is configured when its
settings are present), the processor, the scheduler and, with ``WEBHOOK_BASE_URL``, the
webhook server; otherwise each channel polls. On SIGTERM/SIGINT it stops taking updates,
lets running events finish and send their replies (bounded), and only then closes the HTTP
sessions. An operator's error (bad token, a second bot process) is one Russian message and a
non-zero exit, never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from pydantic import SecretStr

from bot.app import Services, create_services
from bot.channel import Channel, ChannelSetupError
from bot.config import Settings
from bot.handover import Handover
from bot.logsafe import install as install_log_masking
from bot.processor import Processor
from bot.runlock import AlreadyRunning, RunLock, identity
from handlers.types import Platform

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 15.0
FOREIGN_GRACE_S = 1.0  # another worker's fresh events are left to it this long
EXIT_SETUP = 2


@dataclass(frozen=True)
class ChannelSpec:
    """How the runner finds and builds one platform's channel."""

    configured: Callable[[Settings], bool]
    create: Callable[[Settings], Channel]
    # One process per bot and database: the bot's id, not the token, so that after a token
    # rotation the old process (still draining) and the new one never run at once.
    lock_name: Callable[[Settings], str]
    secrets: Callable[[Settings], list[str]]  # masked in every log record


def _telegram(settings: Settings) -> Channel:
    from bot.telegram import TelegramChannel, create_bot, webhook_secret_for

    token = settings.telegram.bot_token
    assert token is not None
    bot = create_bot(
        token.get_secret_value(), settings.telegram.api_url, settings.telegram.local_files
    )
    configured = settings.webhook.telegram_secret
    secret = webhook_secret_for(
        token.get_secret_value(), configured.get_secret_value() if configured else None
    )
    return TelegramChannel(bot, webhook_secret=secret)


def _telegram_bot_id(settings: Settings) -> str:
    """The part of ``<bot id>:<secret>`` that BotFather's /revoke keeps."""
    token = settings.telegram.bot_token
    assert token is not None
    return token.get_secret_value().partition(":")[0]


def _telegram_secrets(settings: Settings) -> list[str]:
    return _secrets(settings.telegram.bot_token, settings.webhook.telegram_secret)


def _vk(settings: Settings) -> Channel:
    from bot.vk import create_channel

    return create_channel(settings)


def _max(settings: Settings) -> Channel:
    from bot.max.channel import MaxChannel

    return MaxChannel.from_settings(settings.max)


def _redis_password(settings: Settings) -> list[str]:
    url = settings.workers.redis_url
    password = urlsplit(url.get_secret_value()).password if url else None
    return [password] if password else []


def _secrets(*values: SecretStr | None) -> list[str]:
    return [value.get_secret_value() for value in values if value]


CHANNELS: dict[str, ChannelSpec] = {
    str(Platform.TELEGRAM): ChannelSpec(
        configured=lambda s: s.telegram.bot_token is not None,
        create=_telegram,
        lock_name=lambda s: identity("tg", _telegram_bot_id(s)),
        secrets=_telegram_secrets,
    ),
    str(Platform.VK): ChannelSpec(
        configured=lambda s: s.vk.configured,
        create=_vk,
        lock_name=lambda s: identity("vk", str(s.vk.group_id)),
        secrets=lambda s: _secrets(s.vk.token, s.vk.callback_secret),
    ),
    str(Platform.MAX): ChannelSpec(
        configured=lambda s: s.max.token is not None,
        create=_max,
        lock_name=lambda s: identity("max", "bot"),  # the token does not name the bot
        secrets=lambda s: _secrets(s.max.token, s.max.webhook_secret),
    ),
}


def configured_specs(settings: Settings) -> dict[str, ChannelSpec]:
    return {name: spec for name, spec in CHANNELS.items() if spec.configured(settings)}


def any_configured(settings: Settings) -> bool:
    return bool(configured_specs(settings))


def _run_locks(settings: Settings, specs: dict[str, ChannelSpec], services: Services) -> list[str]:
    """One process per token, unless WORKERS > 1 webhook workers share PostgreSQL: then they
    split the webhook traffic, claim chats (bot.processor), export jobs and the scheduler
    (scheduler.leader) between them. Pollers always stay alone: the platforms refuse a
    second poller on one token."""
    several = settings.workers.count > 1 and settings.webhook.enabled
    if several and services.engine.dialect.name == "postgresql":
        return []
    return [spec.lock_name(settings) for spec in specs.values()]


def _fail(message: str) -> SystemExit:
    print(message, file=sys.stderr)
    return SystemExit(EXIT_SETUP)


async def run_bot(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """Serve until SIGTERM/SIGINT (or ``stop`` is set). Raises SystemExit on setup errors."""
    specs = configured_specs(settings)
    secrets = [secret for spec in specs.values() for secret in spec.secrets(settings)]
    install_log_masking([*secrets, *_redis_password(settings)])
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, stop.set)
    try:
        services = await create_services(settings)
    except Exception as exc:
        log.exception("Не удалось открыть базу данных")
        raise _fail(
            f"Не удалось открыть базу данных ({type(exc).__name__}). Проверьте DATABASE_URL "
            "и что сервер базы запущен, затем запустите бота снова."
        ) from None
    names = _run_locks(settings, specs, services)
    lock = RunLock(services.engine, settings.storage.data_dir, names)
    try:
        await lock.acquire()
    except AlreadyRunning as exc:
        await services.close()
        raise _fail(str(exc)) from None
    try:
        await _serve(settings, services, specs, stop)
    except SystemExit:
        raise
    except Exception as exc:
        # Logged through the masking filter: a raw traceback could quote the token.
        log.exception("Бот остановлен из-за ошибки")
        raise _fail(
            f"Бот остановлен из-за ошибки ({type(exc).__name__}); подробности в журнале выше. "
            "Проверьте настройки (TELEGRAM_API_URL, DATABASE_URL) и запустите бота снова."
        ) from None
    finally:
        await lock.release()
        await services.close()
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(signum)


async def _serve(
    settings: Settings, services: Services, specs: dict[str, ChannelSpec], stop: asyncio.Event
) -> None:
    from bot.webhook import WebhookServer, create_app
    from scheduler.leader import run_when_leading
    from scheduler.runner import create_rates, create_scheduler, create_sender

    channels = {name: spec.create(settings) for name, spec in specs.items()}
    webhook = settings.webhook
    try:
        started = await _start_channels(channels, webhook.base_url, stop)
        if not started:
            return
        for name, channel in channels.items():
            services.conversation.register_fetcher(name, channel.fetcher)
        # Everything the bot sends unprompted (reminders, export progress and files) goes
        # through one rate-limited sender that waits out the platforms' flood control.
        # With REDIS_URL the send rate of a token is shared by every process using it.
        # Replies too: every request a channel sends with its token takes from that token's
        # one budget (shared), so the sender spaces its messages per chat only.
        tokens = {name: spec.lock_name(settings) for name, spec in specs.items()}
        shared = create_rates(settings, tokens)
        for name, channel in channels.items():
            channel.share_rate(shared.rates[name])
        sender = create_sender(services, channels, tokens, shared_rates=shared.rates)
        services.conversation.messengers.update(sender.messengers_view())
        scheduler = create_scheduler(services, channels, sender=sender)
        handover = None
        telegram = channels.get(str(Platform.TELEGRAM))
        if webhook.enabled and webhook.answer_wait_s > 0 and telegram is not None:
            handover = Handover(services.sessions, webhook.answer_wait_s)
            telegram.handover = handover  # type: ignore[attr-defined]
        processor = Processor(
            services.sessions,
            channels,
            services.conversation,
            handover=handover,
            # a webhook request is answered only by its own process: the others wait a moment
            foreign_grace=FOREIGN_GRACE_S if handover and settings.workers.count > 1 else 0.0,
        )
        server = None
        if webhook.enabled:
            app = create_app(list(channels.values()), processor.sink, services.sessions)
            server = WebhookServer(app, webhook.host, webhook.port)
            await server.start()
        # The jobs run only in the process holding the PostgreSQL leader lock (SQLite: here).
        leader = run_when_leading(
            scheduler, services.engine, retry_s=settings.workers.leader_retry_seconds
        )
        leader_stop = asyncio.Event()
        leading = asyncio.create_task(leader.run(leader_stop), name="scheduler leader")
        # Export jobs queued by any worker (or left by a dead one) are claimed here too.
        exporting = asyncio.create_task(
            services.conversation.exports.run(leader_stop), name="export jobs"
        )
        processing = asyncio.create_task(processor.run(), name="processor")
        polls = (
            []
            if webhook.enabled
            else [
                asyncio.create_task(channel.poll(processor.sink), name=f"poll {name}")
                for name, channel in channels.items()
            ]
        )
        log.info("Бот запущен: %s", ", ".join(channels))
        stopping = asyncio.create_task(stop.wait(), name="stop")
        failure: BaseException | None = None
        try:
            done, _ = await asyncio.wait(
                [stopping, processing, *polls], return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                if task is not stopping and not task.cancelled() and task.exception():
                    failure = task.exception()
        finally:
            log.info("Останавливаюсь: новые сообщения не принимаю, дожидаюсь ответов…")
            stopping.cancel()
            for task in polls:
                task.cancel()
            await asyncio.gather(*polls, return_exceptions=True)
            if server is not None:
                await server.stop()
            await processor.stop(STOP_TIMEOUT_S)
            processing.cancel()
            await asyncio.gather(processing, return_exceptions=True)
            leader_stop.set()  # gives the lock back: another worker takes over at once
            await asyncio.gather(leading, exporting, return_exceptions=True)
            scheduler.shutdown(wait=False)
            await sender.close()
            await shared.close()
        if isinstance(failure, ChannelSetupError):
            raise _fail(str(failure))
        if failure is not None:
            raise failure
    finally:
        for channel in channels.values():
            with contextlib.suppress(Exception):
                await channel.close()
        log.info("Бот остановлен")


async def _start_channels(
    channels: dict[str, Channel], base_url: str | None, stop: asyncio.Event
) -> bool:
    """Start every channel (each retries an unreachable API itself); False if stopped."""

    async def start(channel: Channel) -> None:
        url = f"{base_url}{channel.webhook_path}" if base_url else None
        await channel.start(webhook_url=url)

    starting = asyncio.gather(*(start(c) for c in channels.values()))
    stopping = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([starting, stopping], return_when=asyncio.FIRST_COMPLETED)
    if starting not in done:
        starting.cancel()
        with contextlib.suppress(BaseException):
            await starting
        return False
    stopping.cancel()
    try:
        starting.result()
    except ChannelSetupError as exc:
        raise _fail(str(exc)) from None
    return True


async def run_console(settings: Settings, form_id: str, database_url: str | None) -> None:
    from bot.console import ConsoleFileFetcher, ConsoleSession, stdin_reader
    from storage.demo import demo_user_id, seed_demo

    url = database_url or (
        f"sqlite+aiosqlite:///{(settings.storage.data_dir / 'demo.sqlite3').resolve()}"
    )
    services = await create_services(settings, database_url=url)
    try:
        form = services.forms.latest(form_id)
        async with services.sessions() as session:
            await seed_demo(session, form, services.conversation.today())
            await session.commit()
        services.conversation.register_fetcher(str(Platform.CONSOLE), ConsoleFileFetcher())
        console = ConsoleSession(services.conversation, demo_user_id(form))
        await console.run(stdin_reader())
    finally:
        await services.close()
