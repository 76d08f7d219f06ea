"""One aiohttp server for every channel's webhook, and ``/health``.

Each channel answers on its own path (``channel.webhook_path``) and checks its platform's
secret itself; the HTTP answer goes out only after ``sink`` stored the events, so a 200 means
the events are in the inbox. ``/health`` reports the database, the inbox backlog and the
last event per platform as JSON (HTTP 503 when the database does not answer); ``/metrics``
the Prometheus metrics of :mod:`bot.metrics`.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime

import aiohttp
from aiohttp import web
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker

from bot import metrics
from bot.channel import Channel, Sink
from storage import inbox

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat()


async def health(sessions: async_sessionmaker) -> tuple[int, dict]:
    try:
        async with sessions() as session:
            await session.execute(text("SELECT 1"))
            backlog = await inbox.backlog(session)
            last = await inbox.last_event_per_platform(session)
    except Exception as exc:
        log.warning("health: база данных не отвечает (%s)", type(exc).__name__)
        return 503, {"database": "error", "error": type(exc).__name__}
    return 200, {
        "database": "ok",
        "inbox": backlog,
        "last_event": {platform: _iso(at) for platform, at in sorted(last.items())},
    }


def _form(fields: dict[str, str]) -> aiohttp.MultipartWriter:
    """A method for the platform to run, as form fields (as aiogram's own webhook answers)."""
    writer = aiohttp.MultipartWriter("form-data", boundary=f"answer{secrets.token_urlsafe(16)}")
    for name, value in fields.items():
        part = writer.append(value)
        part.set_content_disposition("form-data", name=name)
    return writer


def create_app(
    channels: Sequence[Channel], sink: Sink, sessions: async_sessionmaker
) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES)

    def endpoint(channel: Channel):
        async def receive(request: web.Request) -> web.Response:
            body = await request.read()
            try:
                status, answer = await channel.webhook(request.headers, body, sink)
            except Exception:
                log.exception("Вебхук %s: не удалось принять события", channel.platform)
                return web.Response(status=500, text="error")
            if status == 403:
                log.warning(
                    "Вебхук %s: запрос без верного секрета отклонён (%s)",
                    channel.platform,
                    request.remote,
                )
            if isinstance(answer, dict):
                return web.Response(status=status, body=_form(answer))
            return web.Response(status=status, text=answer)

        return receive

    for channel in channels:
        app.router.add_post(channel.webhook_path, endpoint(channel))

    async def get_health(_request: web.Request) -> web.Response:
        status, report = await health(sessions)
        return web.json_response(report, status=status)

    async def get_metrics(_request: web.Request) -> web.Response:
        try:
            async with sessions() as session:
                await metrics.refresh(session, platforms, datetime.now(UTC))
        except Exception as exc:
            log.warning("metrics: база данных не отвечает (%s)", type(exc).__name__)
            return web.Response(status=503, text=f"database error: {type(exc).__name__}\n")
        response = web.Response(body=metrics.generate())
        response.headers["Content-Type"] = metrics.CONTENT_TYPE
        return response

    platforms = [str(channel.platform) for channel in channels]
    app.router.add_get("/health", get_health)
    app.router.add_get("/metrics", get_metrics)
    return app


class WebhookServer:
    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    async def start(self) -> int:
        """Listen; returns the port (useful with port 0 in tests)."""
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            self.port = sockets[0].getsockname()[1]
        log.info("Вебхуки принимаются на %s:%s", self.host, self.port)
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
