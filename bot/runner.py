"""Long-running modes: the Telegram bot and the console."""

from __future__ import annotations

import logging

from bot.app import create_services
from bot.config import Settings
from handlers.types import Platform

log = logging.getLogger(__name__)


async def run_bot(settings: Settings) -> None:
    from bot.telegram import (
        TelegramFileFetcher,
        TelegramMessenger,
        create_bot,
        create_dispatcher,
        run_polling,
    )
    from scheduler.runner import create_scheduler, create_sender

    services = await create_services(settings)
    token = settings.telegram.bot_token.get_secret_value()
    bot = create_bot(token, settings.telegram.api_url, settings.telegram.local_files)
    services.conversation.register_fetcher(str(Platform.TELEGRAM), TelegramFileFetcher(bot))
    messengers = {str(Platform.TELEGRAM): TelegramMessenger(bot)}
    # Everything the bot sends unprompted (reminders, export progress and files) goes
    # through one rate-limited sender that waits out Telegram's 429s.
    sender = create_sender(services, messengers)
    services.conversation.messengers.update(sender.messengers_view())
    scheduler = create_scheduler(services, messengers, sender=sender)
    scheduler.start()
    log.info("bot started (Telegram API: %s)", settings.telegram.api_url or "official")
    try:
        await run_polling(bot, create_dispatcher(services.conversation))
    finally:
        scheduler.shutdown(wait=False)
        await bot.session.close()
        await services.close()


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
