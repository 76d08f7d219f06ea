"""``MaxChannel``: the MAX messenger behind the :class:`bot.channel.Channel` contract.

* ``poll`` asks ``GET /updates`` with the last confirmed ``marker``; passing a marker commits
  every update before it (schema.yaml, ``getUpdates``), so the marker of a batch is sent only
  after ``sink`` returned. A failed ``sink`` is retried with the old marker: the same batch
  comes again. At most one poll each ``MIN_POLL_INTERVAL_S`` (MAX: «minimum polling time»).
* ``parse`` answers a button press with ``POST /answers``, removing the pressed keyboard (the
  answer's ``message`` with an empty attachment list); a second answer after a crash is
  harmless, its error is logged and ignored.
* ``send``: 403 → ``RecipientBlocked``; 429 on the first part → ``RetryLater`` (nothing was
  delivered), on a later part it is waited out; a file is ``POST /uploads`` → upload →
  ``POST /messages`` with its token, retried while MAX answers 400 ``attachment.not.ready``.
* ``bot_stopped``/``dialog_removed`` mean nothing for the core (``parse`` returns an empty
  ``Parsed``); :meth:`MaxChannel.stopped_user` names the chat so the intake can mark its
  account unreachable, and the next send to it fails with 403 → ``RecipientBlocked`` anyway.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import ssl
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote

import aiohttp

from bot.channel import ChannelSetupError, Parsed, RawEvent, Sink
from bot.config import MaxSettings
from bot.max.api import POLL_SLACK_S, MaxApi, MaxApiError, TokenBucket
from bot.max.events import raw_events, stopped_user, understand
from bot.max.render import FilePart, TextPart, edited_body, render
from bot.text_parts import BOT_COMMANDS
from handlers.types import Outgoing, OutText, Platform, RecipientBlocked, RetryLater, TokenRejected
from scheduler.ratelimit import TokenRate

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Max-Bot-Api-Secret"
POLL_TIMEOUT_S = 30  # schema.yaml allows 0..90
POLL_LIMIT = 100
MIN_POLL_INTERVAL_S = 0.5
MAX_POLL_BACKOFF_S = 30.0
NOT_READY_DELAYS_S = (0.5, 1.0, 2.0, 4.0, 8.0, 8.0)  # about 25 s in all
LATER_PART_RETRIES = 2
DEFAULT_RETRY_AFTER_S = 1.0
PRESSED = "Принято"
DEEP_LINK_LIMIT = 128

TOKEN_REJECTED = (
    "MAX не принял токен. Проверьте MAX_TOKEN: скопируйте токен бота из личного кабинета "
    "платформы MAX для партнёров (business.max.ru)."
)
CERT_REJECTED = (
    "Не удалось проверить сертификат MAX API ({url}). Скачайте корневой сертификат "
    "«Russian Trusted Root CA» (https://www.gosuslugi.ru/crt) и укажите путь к нему в MAX_CA_FILE."
)
API_UNREACHABLE = "MAX API по адресу {url} недоступен ({error}). Проверьте MAX_API_URL и сеть."
API_FAILED = (
    "MAX API ответил ошибкой {status} ({code}) при проверке токена. "
    "Попробуйте ещё раз позже или проверьте MAX_API_URL."
)
BAD_CA_FILE = (
    "Файл {path} из MAX_CA_FILE не похож на сертификат в формате PEM. Преобразуйте его: "
    "openssl x509 -inform der -in russian_trusted_root_ca.cer -out russian_trusted_root_ca.pem"
)
NEED_SECRET = (
    "Для вебхука MAX задайте MAX_WEBHOOK_SECRET: 5–256 символов, латинские буквы, цифры, _ и -."
)
NEED_HTTPS = "MAX принимает вебхуки только по https. Проверьте WEBHOOK_BASE_URL ({url})."
SUBSCRIBE_FAILED = (
    "MAX не принял подписку на вебхук {url}: {error}. "
    "Проверьте WEBHOOK_BASE_URL и что сервер доступен из интернета."
)


def deep_link(bot_username: str, code: str) -> str:
    """``https://max.ru/<bot>?start=<code>``: MAX passes it as ``bot_started.payload``; a
    payload over 128 characters is dropped by MAX (schema.yaml, «Deep linking»)."""
    if not 1 <= len(code) <= DEEP_LINK_LIMIT:
        raise ValueError(f"a deep-link payload is 1..{DEEP_LINK_LIMIT} characters")
    return f"https://max.ru/{quote(bot_username)}?start={quote(code, safe='')}"


def _is_not_ready(error: MaxApiError) -> bool:
    text = f"{error.code} {error.message}".lower()
    return error.status == 400 and (
        error.code == "attachment.not.ready" or "not.processed" in text or "not ready" in text
    )


def _target(chat_id: str) -> dict[str, str]:
    if chat_id.startswith("chat:"):
        return {"chat_id": chat_id.removeprefix("chat:")}
    return {"user_id": chat_id}


class MaxFileFetcher:
    """:class:`handlers.types.FileFetcher`: ``file_id`` is the attachment URL, or
    ``<mid>#<index>`` for a URL too long to store, looked up again by ``GET /messages/{mid}``."""

    def __init__(self, api: MaxApi) -> None:
        self.api = api

    async def fetch(self, file_id: str, dest) -> None:
        url = file_id
        if not file_id.startswith(("http://", "https://")):
            mid, _, index = file_id.rpartition("#")
            message = await self.api.call("GET", f"/messages/{mid}")
            attachments = (message.get("body") or {}).get("attachments") or []
            url = attachments[int(index)]["payload"]["url"]
        await self.api.download(url, dest)


class MaxChannel:
    platform = Platform.MAX
    webhook_path = "/max"

    def __init__(
        self,
        api: MaxApi,
        *,
        webhook_secret: str | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        poll_timeout: int = POLL_TIMEOUT_S,
    ) -> None:
        self.api = api
        self.fetcher = MaxFileFetcher(api)
        self.marker: int | None = None  # the last confirmed marker
        self.me: dict[str, Any] | None = None
        self.poll_timeout = poll_timeout
        self._secret = webhook_secret
        self._sleep = sleep or api.bucket.sleep
        self._clock = api.bucket.clock

    @classmethod
    def from_settings(
        cls, settings: MaxSettings, *, bucket: TokenBucket | None = None
    ) -> MaxChannel:
        if settings.token is None:
            raise ChannelSetupError("Задайте MAX_TOKEN, чтобы запустить бота в MAX.")
        try:
            api = MaxApi(
                settings.token.get_secret_value(),
                settings.api_url,
                ca_file=settings.ca_file,
                bucket=bucket,
            )
        except ssl.SSLError:
            raise ChannelSetupError(BAD_CA_FILE.format(path=settings.ca_file)) from None
        secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
        return cls(api, webhook_secret=secret)

    # ------------------------------------------------------------------ setup

    async def start(self, *, webhook_url: str | None = None) -> None:
        url = self.api.base_url
        try:
            self.me = await self.api.call("GET", "/me")
        except MaxApiError as e:
            if e.status == 401:
                raise ChannelSetupError(TOKEN_REJECTED) from None
            raise ChannelSetupError(API_FAILED.format(status=e.status, code=e.code)) from None
        except aiohttp.ClientSSLError as e:
            if isinstance(e, aiohttp.ClientConnectorCertificateError):
                raise ChannelSetupError(CERT_REJECTED.format(url=url)) from None
            raise ChannelSetupError(API_UNREACHABLE.format(url=url, error=e)) from None
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise ChannelSetupError(API_UNREACHABLE.format(url=url, error=e)) from None
        await self._set_commands()
        if webhook_url is None:
            await self._drop_subscriptions()
        else:
            await self._subscribe(webhook_url)

    async def _set_commands(self) -> None:
        commands = [{"name": name, "description": text} for name, text in BOT_COMMANDS]
        try:
            await self.api.call("PATCH", "/me/commands", json={"commands": commands})
        except (MaxApiError, aiohttp.ClientError, TimeoutError) as e:
            log.warning("MAX: could not set the command list: %s", e)

    async def _drop_subscriptions(self) -> None:
        """Long polling and webhooks exclude each other (schema.yaml): polling drops them."""
        try:
            found = await self.api.call("GET", "/subscriptions")
            for subscription in (found or {}).get("subscriptions") or []:
                log.warning("MAX: removing webhook %s to poll instead", subscription.get("url"))
                params = {"url": subscription["url"]}
                await self.api.call("DELETE", "/subscriptions", params=params)
        except (MaxApiError, aiohttp.ClientError, TimeoutError) as e:
            log.warning("MAX: could not check webhook subscriptions: %s", e)

    async def _subscribe(self, webhook_url: str) -> None:
        if not self._secret:
            raise ChannelSetupError(NEED_SECRET)
        if not webhook_url.startswith("https://"):
            raise ChannelSetupError(NEED_HTTPS.format(url=webhook_url))
        body = {"url": webhook_url, "secret": self._secret}
        try:
            result = await self.api.call("POST", "/subscriptions", json=body)
        except MaxApiError as e:
            error = SUBSCRIBE_FAILED.format(url=webhook_url, error=e.message)
            raise ChannelSetupError(error) from None
        except (aiohttp.ClientError, TimeoutError) as e:
            error = SUBSCRIBE_FAILED.format(url=webhook_url, error=e)
            raise ChannelSetupError(error) from None
        if not (result or {}).get("success", False):
            error = (result or {}).get("message") or "?"
            raise ChannelSetupError(SUBSCRIBE_FAILED.format(url=webhook_url, error=error))

    async def close(self) -> None:
        await self.api.close()

    # ------------------------------------------------------------------ intake

    def raw_events(self, body: Any) -> Iterable[RawEvent]:
        return raw_events(body)

    async def webhook(self, headers: Mapping[str, str], body: bytes, sink: Sink) -> tuple[int, str]:
        given = next((v for k, v in headers.items() if k.lower() == SECRET_HEADER.lower()), None)
        if not self._secret or given is None:
            return 401, "secret required"
        if not hmac.compare_digest(given.encode(), self._secret.encode()):
            return 403, "wrong secret"
        try:
            data = json.loads(body)
        except ValueError:
            return 400, "bad json"
        batch = list(self.raw_events(data))
        if batch:
            await sink(batch)
        return 200, "ok"

    async def poll_once(self, sink: Sink, *, timeout: int | None = None) -> int:
        """One ``GET /updates``; the batch goes to ``sink``; only then its marker is kept, to
        be sent (and so confirmed) with the next request."""
        wait = self.poll_timeout if timeout is None else timeout
        params = {"limit": POLL_LIMIT, "timeout": wait, "marker": self.marker}
        data = await self.api.call("GET", "/updates", params=params, timeout=wait + POLL_SLACK_S)
        batch = list(self.raw_events(data))
        if batch:
            await sink(batch)
        marker = (data or {}).get("marker")
        if marker is not None:
            self.marker = int(marker)
        return len(batch)

    async def poll(self, sink: Sink) -> None:
        delay = 1.0
        while True:
            started = self._clock()
            try:
                await self.poll_once(sink)
                delay = 1.0
                wait = MIN_POLL_INTERVAL_S - (self._clock() - started)
            except asyncio.CancelledError:
                raise
            except MaxApiError as e:
                if e.status == 401:
                    raise ChannelSetupError(TOKEN_REJECTED) from None
                log.warning("MAX: polling failed: %s; again in %.0f s", e, delay)
                wait = e.retry_after if e.retry_after is not None else delay
                delay = min(delay * 2, MAX_POLL_BACKOFF_S)
            except Exception:
                log.exception("MAX: polling or its sink failed; the batch comes again")
                wait = delay
                delay = min(delay * 2, MAX_POLL_BACKOFF_S)
            if wait > 0:
                await self._sleep(wait)

    async def parse(self, event: RawEvent) -> Parsed:
        update = event.payload
        parsed = understand(update)
        if update.get("update_type") == "message_callback":
            await self._answer(update)
        return parsed

    def deep_link(self, code: str) -> str:
        """The invite link for ``code``; needs :meth:`start` (it reads the bot's username)."""
        if not self.me or not self.me.get("username"):
            raise RuntimeError("start() the channel first: the bot's username comes from /me")
        return deep_link(str(self.me["username"]), code)

    @staticmethod
    def stopped_user(event: RawEvent) -> str | None:
        return stopped_user(event.payload)

    async def _answer(self, update: dict[str, Any]) -> None:
        callback_id = (update.get("callback") or {}).get("callback_id")
        if not callback_id:
            return
        text = (((update.get("message") or {}).get("body")) or {}).get("text")
        answer: dict[str, Any] = (
            {"message": {"text": text, "attachments": []}} if text else {"notification": PRESSED}
        )
        try:
            params = {"callback_id": callback_id}
            await self.api.call("POST", "/answers", params=params, json=answer)
        except (MaxApiError, aiohttp.ClientError, TimeoutError) as e:
            log.info("MAX: answering callback %s failed: %s", callback_id, e)

    # ------------------------------------------------------------------ sending

    def share_rate(self, rate: TokenRate) -> None:
        """Take every API request of this token from ``rate`` (the shared budget)."""
        self.api.rate = rate

    async def send(
        self, chat_id: str, message: Outgoing, *, dedup: str | None = None
    ) -> str | None:
        """MAX has no idempotency key, so ``dedup`` is unused: the intake's outbox is what
        keeps a reply from being sent twice."""
        parts = render(message)
        last: str | None = None
        try:
            for index, part in enumerate(parts):
                if index == 0:
                    try:
                        last = await self._send_part(chat_id, part)
                    except MaxApiError as e:
                        if e.status == 429:
                            raise RetryLater(e.retry_after or DEFAULT_RETRY_AFTER_S) from e
                        raise
                else:
                    last = await self._send_later_part(chat_id, part)
        except MaxApiError as e:
            if e.status == 403:
                raise RecipientBlocked(e.message) from e
            if e.status == 401:  # a revoked token: the next process sends it
                raise TokenRejected(e.message) from e
            raise
        return last

    async def _send_later_part(self, chat_id: str, part: TextPart | FilePart) -> str | None:
        for attempt in range(LATER_PART_RETRIES + 1):
            try:
                return await self._send_part(chat_id, part)
            except MaxApiError as e:
                if e.status != 429 or attempt == LATER_PART_RETRIES:
                    raise
                await self._sleep(e.retry_after or DEFAULT_RETRY_AFTER_S)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send_part(self, chat_id: str, part: TextPart | FilePart) -> str | None:
        if isinstance(part, TextPart):
            return await self._post(chat_id, part.body())
        token = await self._upload(part)
        body: dict[str, Any] = {"attachments": [{"type": "file", "payload": {"token": token}}]}
        if part.caption:
            body["text"] = part.caption
        for delay in (*NOT_READY_DELAYS_S, None):
            try:
                return await self._post(chat_id, body)
            except MaxApiError as e:
                if delay is None or not _is_not_ready(e):
                    raise
                await self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _post(self, chat_id: str, body: dict[str, Any]) -> str | None:
        result = await self.api.call("POST", "/messages", params=_target(chat_id), json=body)
        mid = (((result or {}).get("message") or {}).get("body") or {}).get("mid")
        return str(mid) if mid else None

    async def _upload(self, part: FilePart) -> str:
        endpoint = await self.api.call("POST", "/uploads", params={"type": "file"})
        uploaded = await self.api.upload(endpoint["url"], part.path, part.filename)
        token = (uploaded or {}).get("token") or endpoint.get("token")
        if not token:
            raise MaxApiError(500, "upload", "the upload answered without a token")
        return str(token)

    async def edit(self, chat_id: str, message_id: str, message: OutText) -> None:
        await self.api.call(
            "PUT", "/messages", params={"message_id": message_id}, json=edited_body(message)
        )
