"""A thin aiohttp client for the endpoints of the MAX Bot API we use.

Checked against the official OpenAPI spec (max-messenger/api-schema, schema.yaml):

* the token goes in the ``Authorization`` header (``securitySchemes.access_token``: apiKey in
  header), never in the query and never to another host (upload and file URLs are not ours);
* errors come as HTTP status + JSON ``{"code": …, "message": …}`` (``Error``);
* every request first takes a token from one :class:`TokenBucket` (about 25 requests/s), whose
  clock and sleep are injectable so tests run on virtual time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp

from scheduler.ratelimit import TokenRate

RATE_PER_S = 25.0
BURST = 5
POLL_SLACK_S = 15.0  # HTTP timeout beyond the long-poll timeout
REQUEST_TIMEOUT_S = 60.0
TRANSFER_TIMEOUT_S = 600.0


class MaxApiError(Exception):
    """The API answered with an error status; ``code`` is the spec's error key."""

    def __init__(
        self, status: int, code: str, message: str, retry_after: float | None = None
    ) -> None:
        super().__init__(f"MAX API {status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up; ``acquire`` waits for one."""

    def __init__(
        self,
        rate: float = RATE_PER_S,
        burst: int = BURST,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = float(burst)
        self.clock = clock
        self.sleep = sleep
        self._tokens = float(burst)
        self._stamp = clock()
        self._lock: asyncio.Lock | None = None

    async def acquire(self) -> None:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # waiters are served in arrival order
            while True:
                now = self.clock()
                self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
                self._stamp = now
                if self._tokens >= 1 - 1e-9:  # float rounding must not spin forever
                    self._tokens = max(0.0, self._tokens - 1)
                    return
                await self.sleep((1 - self._tokens) / self.rate)


def ssl_context(ca_file: Path | None) -> ssl.SSLContext:
    """The system trust store plus ``ca_file`` (the Russian Trusted Root CA). Verification
    stays on: a certificate that chains to neither is refused."""
    context = ssl.create_default_context()
    if ca_file is not None:
        context.load_verify_locations(cafile=str(ca_file))
    return context


def _retry_after(headers: Mapping[str, str]) -> float | None:
    try:
        return max(0.0, float(headers.get("Retry-After", "")))
    except ValueError:
        return None


class MaxApi:
    def __init__(
        self,
        token: str,
        base_url: str,
        *,
        ca_file: Path | None = None,
        bucket: TokenBucket | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._ssl = ssl_context(ca_file)
        self.bucket = bucket or TokenBucket()
        # The token's budget shared with every process on it (bot.runner sets it).
        self.rate: TokenRate | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ssl),
                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _headers(self, url: str) -> dict[str, str]:
        own = url == self.base_url or url.startswith(self.base_url + "/")
        return {"Authorization": self._token} if own else {}

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        timeout: float | None = None,
    ) -> Any:
        """One API call; returns the decoded JSON or raises :class:`MaxApiError`."""
        await self.bucket.acquire()
        url = self.base_url + path
        query = {k: str(v) for k, v in (params or {}).items() if v is not None}
        async with (
            self._shared(),
            self.session.request(
                method,
                url,
                params=query,
                json=json,
                headers=self._headers(url),
                timeout=aiohttp.ClientTimeout(total=timeout or REQUEST_TIMEOUT_S),
            ) as response,
        ):
            return await self._result(response)

    @contextlib.asynccontextmanager
    async def _shared(self) -> AsyncIterator[None]:
        """A slot of the shared budget, if any; a 429 pauses every process on the token."""
        if self.rate is None:
            yield
            return
        async with self.rate.request():
            try:
                yield
            except MaxApiError as e:
                if e.status == 429:
                    await self.rate.pause(e.retry_after or 1.0)
                raise

    async def _result(self, response: aiohttp.ClientResponse) -> Any:
        try:
            body = await response.json(content_type=None)
        except ValueError:
            body = None
        if response.status == 200:
            return body
        error = body if isinstance(body, dict) else {}
        raise MaxApiError(
            response.status,
            str(error.get("code") or error.get("error") or response.status),
            str(error.get("message") or response.reason or ""),
            _retry_after(response.headers),
        )

    async def upload(self, url: str, path: Path, filename: str) -> Any:
        """Multipart upload of one file (field ``data``) to a URL from ``POST /uploads``."""
        await self.bucket.acquire()
        form = aiohttp.FormData(quote_fields=False)  # a UTF-8 filename, as browsers send it
        async with self._shared():
            with path.open("rb") as handle:
                form.add_field("data", handle, filename=filename)
                async with self.session.post(
                    url,
                    data=form,
                    headers=self._headers(url),
                    timeout=aiohttp.ClientTimeout(total=TRANSFER_TIMEOUT_S),
                ) as response:
                    return await self._result(response)

    async def download(self, url: str, dest: Path) -> None:
        """Stream ``url`` into a hidden temp file next to ``dest``, renamed on success, so a
        partial download never looks complete."""
        await self.bucket.acquire()
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.part")
        try:
            async with self.session.get(
                url,
                headers=self._headers(url),
                timeout=aiohttp.ClientTimeout(total=TRANSFER_TIMEOUT_S),
            ) as response:
                if response.status != 200:
                    await self._result(response)  # raises MaxApiError
                with tmp.open("wb") as out:
                    async for chunk in response.content.iter_chunked(1 << 16):
                        out.write(chunk)
            os.replace(tmp, dest)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
