"""The doorbell across processes, through `broadcaster`, supervised.

`broadcaster` (0.3.1) has no reconnect: a dropped Postgres or Redis connection leaves its
subscribers waiting silently. `RingListener` therefore watches its own line: when nothing has
arrived for a while it rings itself, and if that ring does not come back (or publishing fails)
it reconnects with backoff. After every (re)connect it wakes the local readers, which re-read
the store from their own checkpoints: a dead listener costs latency, never an event.

Redis goes through `RedisPubSub`, our own backend, rather than broadcaster's: with redis-py 8
broadcaster's listener starts before its SUBSCRIBE has completed, finds nothing subscribed,
ends, and never listens again, so every message is lost. Ours also reports a lost connection
instead of dying silently.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from broadcaster import Broadcast, BroadcastBackend, Event
from redis import asyncio as aioredis
from redis.exceptions import RedisError

from api.metrics import DOORBELL_RECONNECTS
from store.doorbell import RING_CHANNEL

log = logging.getLogger(__name__)

HEARTBEAT = "heartbeat"
LOST = "lost"


def open_broadcast(url: str) -> Broadcast:
    """A (not yet connected) `Broadcast` for `url`: postgres://, redis:// or memory://."""
    if urlsplit(url).scheme in ("redis", "rediss"):
        return Broadcast(backend=RedisPubSub(url))
    return Broadcast(url)


class RedisPubSub(BroadcastBackend):
    """Redis pub/sub for `broadcaster`, correct with redis-py 5 to 8."""

    def __init__(self, url: str) -> None:
        self._redis = aioredis.Redis.from_url(url)
        self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        self._subscribed = asyncio.Event()
        self._channel = ""
        self._lost = False

    async def connect(self) -> None:
        await self._redis.ping()  # fail now, not at the first message, when Redis is down

    async def disconnect(self) -> None:
        await self._pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]
        await self._redis.aclose()

    async def subscribe(self, channel: str) -> None:
        await self._pubsub.subscribe(channel)
        self._channel = channel
        self._subscribed.set()  # only now may the listener read: the subscription exists

    async def unsubscribe(self, channel: str) -> None:
        await self._pubsub.unsubscribe(channel)

    async def publish(self, channel: str, message: Any) -> None:
        await self._redis.publish(channel, message)

    async def next_published(self) -> Event:
        await self._subscribed.wait()
        if self._lost:
            await asyncio.Future()  # down for good: wait to be disconnected
        while True:
            try:
                message = await self._pubsub.get_message(timeout=None)
            except (RedisError, OSError) as error:
                # broadcaster's listener task would die unseen: tell the subscriber instead.
                self._lost = True
                return Event(channel=self._channel, message=f"{LOST}: {error}")
            if message is not None and message["type"] == "message":
                return Event(channel=message["channel"].decode(), message=message["data"].decode())


class RingListener:
    def __init__(
        self,
        url: str,
        on_ring: Callable[[int | None], None],
        *,
        channel: str = RING_CHANNEL,
        heartbeat: float = 2.0,
    ) -> None:
        self.url = url
        self.on_ring = on_ring
        self.channel = channel
        self.heartbeat = heartbeat
        self.connected = asyncio.Event()
        self.reconnects = 0

    async def run(self, stop: asyncio.Event) -> None:
        backoff = 0.1
        while not stop.is_set():
            try:
                await self._listen(stop)
                backoff = 0.1
            except Exception as error:
                self.connected.clear()
                self.reconnects += 1
                DOORBELL_RECONNECTS.inc()
                log.warning("doorbell listener lost (%s); reconnecting in %.1fs", error, backoff)
                try:
                    await asyncio.wait_for(stop.wait(), backoff)
                except TimeoutError:
                    pass
                backoff = min(backoff * 2, 5.0)

    async def _listen(self, stop: asyncio.Event) -> None:
        broadcast = open_broadcast(self.url)
        async with broadcast, broadcast.subscribe(self.channel) as rings:
            self.connected.set()
            log.info("doorbell listener connected")
            self.on_ring(None)  # anything committed while we were away is read now
            unanswered = 0
            while not stop.is_set():
                ring = await self._next_ring(rings, stop)
                if stop.is_set():
                    return
                if ring is None:
                    if unanswered >= 2:
                        raise ConnectionError("no heartbeat came back")
                    await broadcast.publish(self.channel, HEARTBEAT)
                    unanswered += 1
                    continue
                unanswered = 0
                if ring.message.startswith(LOST):
                    raise ConnectionError(ring.message)
                self.on_ring(int(ring.message) if ring.message.isdigit() else None)

    async def _next_ring(self, rings: Any, stop: asyncio.Event) -> Event | None:
        """The next ring; None after `heartbeat` seconds of silence or once `stop` is set."""
        ring = asyncio.ensure_future(rings.get())
        stopped = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait(
                (ring, stopped), timeout=self.heartbeat, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            stopped.cancel()
            if not ring.done():
                ring.cancel()
        return ring.result() if ring.done() and not ring.cancelled() else None
