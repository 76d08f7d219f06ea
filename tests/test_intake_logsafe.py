"""Item 21: the bot token never reaches a log record or ``attachments.last_error``."""

from __future__ import annotations

import logging

import aiohttp
import pytest
from yarl import URL

from bot.logsafe import SecretFilter, install
from bot.telegram import TelegramFileFetcher
from scheduler.downloads import retry_pending_downloads
from storage.errors import error_summary
from tests.tg_harness import TgHarness
from tests.walk import PDF, attachments

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"


def test_filter_masks_tokens_in_message_arguments_and_exception_text(caplog):
    install([TOKEN])
    log = logging.getLogger("bot.test.logsafe")
    log.warning("GET https://api.telegram.org/file/bot%s/documents/x.pdf failed", TOKEN)
    log.warning("unknown bot token in url https://h/bot987654:XyZ-secret_part/getMe")
    try:
        raise RuntimeError(f"connect to https://api.telegram.org/bot{TOKEN}/getUpdates")
    except RuntimeError:
        log.exception("poll failed")
    assert "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw" not in caplog.text
    assert "XyZ-secret_part" not in caplog.text
    assert caplog.text.count("***") >= 3
    assert "bot987654:***" in caplog.text


def test_filter_masks_a_bare_token_of_botfathers_shape() -> None:
    masking = SecretFilter()
    assert masking.mask(f"token={TOKEN}") == "token=123456789:***"


def test_error_summary_keeps_type_and_status_only() -> None:
    request = aiohttp.RequestInfo(URL(f"https://h/file/bot{TOKEN}/x"), "GET", {}, URL("https://h"))
    error = aiohttp.ClientResponseError(request, (), status=404, message="Not Found")
    assert error_summary(error) == "ClientResponseError (HTTP 404)"
    assert error_summary(TimeoutError()) == "TimeoutError"


class _LeakyFetcher:
    async def fetch(self, file_id, dest):
        raise aiohttp.ClientConnectionError(f"cannot reach https://h/file/bot{TOKEN}/{file_id}")


@pytest.fixture
async def harness(services):
    harness = TgHarness.for_core(services.conversation)
    services.conversation.register_fetcher("tg", TelegramFileFetcher(harness.bot))
    yield harness


async def test_failed_downloads_store_no_token(services, region, harness):
    user = harness.user(1001, "Анна")
    await user.send(f"/start {region.codes['S1']}")
    await user.click("▶ Начать заполнение")
    for _ in range(8):
        await user.send("10")
    await user.click("Да")
    services.conversation.register_fetcher("tg", _LeakyFetcher())
    await user.send_document(PDF, "договор.pdf", "application/pdf")
    user.expect("Прикреплено файлов: 1")
    [pending] = await attachments(services)
    assert pending.last_error == "ClientConnectionError"
    await retry_pending_downloads(services.sessions, services.files, {"tg": _LeakyFetcher()})
    [pending] = await attachments(services)
    assert pending.attempts == 2 and pending.last_error == "ClientConnectionError"
