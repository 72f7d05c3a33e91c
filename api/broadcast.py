"""The doorbell across processes, through `broadcaster`, supervised.

`broadcaster` (0.3.1) has no reconnect: a dropped Postgres or Redis connection leaves its
subscribers waiting silently. `RingListener` therefore watches its own line: when nothing has
arrived for a while it rings itself, and if that ring does not come back (or publishing fails)
it reconnects with backoff. After every (re)connect it wakes the local readers, which re-read
the store from their own checkpoints: a dead listener costs latency, never an event.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from broadcaster import Broadcast

from store.doorbell import RING_CHANNEL

log = logging.getLogger(__name__)

HEARTBEAT = "heartbeat"


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

    async def publish(self, broadcast: Broadcast, message: str) -> None:
        await broadcast.publish(self.channel, message)

    async def run(self, stop: asyncio.Event) -> None:
        backoff = 0.1
        while not stop.is_set():
            try:
                await self._listen(stop)
                backoff = 0.1
            except Exception as error:
                self.connected.clear()
                self.reconnects += 1
                log.warning("doorbell listener lost (%s); reconnecting in %.1fs", error, backoff)
                try:
                    await asyncio.wait_for(stop.wait(), backoff)
                except TimeoutError:
                    pass
                backoff = min(backoff * 2, 5.0)

    async def _listen(self, stop: asyncio.Event) -> None:
        async with Broadcast(self.url) as broadcast, broadcast.subscribe(self.channel) as rings:
            self.connected.set()
            self.on_ring(None)  # anything committed while we were away is read now
            unanswered = 0
            while not stop.is_set():
                try:
                    ring = await asyncio.wait_for(rings.get(), self.heartbeat)
                except TimeoutError:
                    if unanswered >= 2:
                        raise ConnectionError("no heartbeat came back") from None
                    await broadcast.publish(self.channel, HEARTBEAT)
                    unanswered += 1
                    continue
                unanswered = 0
                self.on_ring(int(ring.message) if ring.message.isdigit() else None)
