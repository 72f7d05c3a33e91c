"""Rate limits on mutations and subscription starts, per caller, counted by the `limits` library.

`CHRONICLE_RATE_LIMIT` (a `limits` rate such as `20/second` or `100/minute`; unset, the
default, limits nothing) is each caller's budget of mutations, and apart from it the same budget
of subscription starts: a page that opens a few subscriptions does not use up its user's writes.
A caller is its token's subject, wherever it calls from; an anonymous caller, and every caller in
open mode (where no one has a subject), is its client address. A request counts once, however
many mutation fields its document holds; queries are never limited. Over the budget, the request
is refused with `RATE_LIMITED` and `extensions.retryAfter` before any resolver runs, so nothing
is written; over HTTP the answer is still a 200 (a GraphQL error) and carries `Retry-After`.

The window moves: at most N requests in any period of the rate's length, never the 2N a fixed
window lets through around its boundary, and `retryAfter` is exactly when the oldest request
counted leaves the window. In Redis (when `BROADCAST_URL` is a redis:// URL, so every process
spends the same budget) that costs one script call per request and a list of at most N
timestamps per caller. Redis failing must not stop the service: requests go through unchecked
(fail open) with a warning, and Redis is asked again a few seconds later.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from redis.asyncio import ConnectionPool
from starlette.responses import Response
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from api.auth import Identity
from api.context import Context
from api.errors import ClientError
from api.settings import Settings

log = logging.getLogger("chronicle.rate_limits")

LIMITED = {OperationType.MUTATION: "mutations", OperationType.SUBSCRIPTION: "subscription starts"}
"""What is counted, each kind against a budget of its own."""

REDIS_TIMEOUT = 0.5
"""Seconds a request waits for Redis before going through unchecked."""
PAUSE_AFTER_FAILURE = 5.0
"""Seconds Redis is left alone after it failed: a Redis that hangs would otherwise add its
timeout to every mutation."""


def parse_rate(text: str) -> RateLimitItem:
    """The rate of `CHRONICLE_RATE_LIMIT`; a ValueError saying what is expected otherwise."""
    try:
        rate = parse(text)
    except ValueError:
        rate = None
    if rate is None or rate.amount < 1:
        raise ValueError(
            f"CHRONICLE_RATE_LIMIT={text!r} is not a rate: write it as `limits` does, "
            "for example 20/second, 100/minute or 1000 per hour"
        )
    return rate


def caller_key(identity: Identity, client_host: str | None) -> str:
    """Whose budget a request spends: a signed-in subject's own, from any address; an anonymous
    caller's, and in open mode (where no caller has a subject) everyone's, that of its address."""
    if identity.subject is not None and not identity.open_mode:
        return f"subject:{identity.subject}"
    return f"address:{client_host or 'unknown'}"


class RateLimits:
    """Each caller's budgets, in a moving window (see the module's docstring)."""

    def __init__(
        self, rate: RateLimitItem, storage: Storage, *, pool: ConnectionPool | None = None
    ) -> None:
        self.rate = rate
        self._limiter = MovingWindowRateLimiter(storage)
        self._pool = pool
        self._failing = False
        self._paused_until = 0.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimits | None:
        """The limits `settings` ask for, or None when no rate is set."""
        if settings.rate_limit is None:
            return None
        rate = parse_rate(settings.rate_limit)
        url = settings.broadcast_url
        if url is None or urlsplit(url).scheme not in ("redis", "rediss"):
            log.info("rate limits: %s per caller, counted in this process", rate)
            return cls(rate, MemoryStorage())
        # A pool of our own, so that it can be closed; limits' storage takes it as it is.
        pool = ConnectionPool.from_url(
            url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT
        )
        options: dict[str, Any] = {"connection_pool": pool}
        storage = RedisStorage(
            f"async+{url}",
            implementation="redispy",  # redis-py is here already (api/broadcast.py)
            key_prefix=settings.rate_limit_prefix,
            wrap_exceptions=True,
            **options,
        )
        log.info("rate limits: %s per caller, counted in Redis", rate)
        return cls(rate, storage, pool=pool)

    async def retry_after(self, kind: str, caller: str) -> float | None:
        """Count a request of `kind` by `caller`: None when it may go on, else the seconds until
        it may. None too while the counters cannot be reached."""
        if time.monotonic() < self._paused_until:
            return None
        try:
            if await self._limiter.hit(self.rate, kind, caller):
                self._reached()
                return None
            stats = await self._limiter.get_window_stats(self.rate, kind, caller)
        except StorageError as error:
            self._unreached(error)
            return None
        self._reached()
        return max(round(stats.reset_time - time.time(), 3), 0.001)

    def _reached(self) -> None:
        if self._failing:
            self._failing = False
            log.warning("rate limits: the counters answer again; limiting resumes")

    def _unreached(self, error: StorageError) -> None:
        self._paused_until = time.monotonic() + PAUSE_AFTER_FAILURE
        if not self._failing:
            self._failing = True
            log.warning(
                "rate limits: the counters cannot be reached (%s: %s); requests go through "
                "unlimited until they answer",
                type(error.storage_error).__name__,
                error.storage_error,
            )

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.disconnect()


class RateLimited(SchemaExtension):
    """Refuses a mutation or a subscription start over its caller's budget with RATE_LIMITED,
    before any resolver runs; both websocket protocols and HTTP execute through this hook."""

    def __init__(self, limits: RateLimits) -> None:
        self.limits = limits

    async def on_execute(self) -> AsyncIterator[None]:
        execution = self.execution_context
        kind = LIMITED.get(execution.operation_type)
        if kind is not None:
            context: Context = execution.context
            client = context.request.client
            caller = caller_key(context.identity, client.host if client else None)
            wait = await self.limits.retry_after(kind, caller)
            if wait is not None:
                if isinstance(context.response, Response):
                    context.response.headers["Retry-After"] = str(math.ceil(wait))
                raise ClientError(
                    "RATE_LIMITED",
                    f"Too many {kind}: at most {self.limits.rate}; try again in {wait:g} s",
                    retryAfter=wait,
                )
        yield
