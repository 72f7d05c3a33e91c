"""`Shared`: one computation per key, whoever asks (api/fanout.py)."""

from __future__ import annotations

import asyncio
import json

import pytest

from api.fanout import Shared, legacy_ws_delivery, transport_ws_delivery


async def test_concurrent_askers_of_one_key_share_one_computation() -> None:
    shared: Shared[int] = Shared()
    calls = 0
    release = asyncio.Event()

    async def compute() -> int:
        nonlocal calls
        calls += 1
        await release.wait()
        return 42

    askers = [asyncio.create_task(shared.get("k", compute)) for _ in range(50)]
    await asyncio.sleep(0)  # every asker is waiting on the one computation
    release.set()
    assert await asyncio.gather(*askers) == [42] * 50
    assert calls == 1
    assert await shared.get("k", compute) == 42 and calls == 1  # kept


async def test_an_asker_cancelled_cancels_the_computation_for_no_one() -> None:
    shared: Shared[str] = Shared()
    release = asyncio.Event()

    async def compute() -> str:
        await release.wait()
        return "done"

    first = asyncio.create_task(shared.get("k", compute))
    second = asyncio.create_task(shared.get("k", compute))
    await asyncio.sleep(0)
    first.cancel()
    release.set()
    assert await second == "done"
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_a_failed_computation_is_forgotten_and_the_next_asker_computes_again() -> None:
    shared: Shared[int] = Shared()
    attempts = 0

    async def compute() -> int:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise ConnectionError("the database went away")
        return attempts

    with pytest.raises(ConnectionError):
        await shared.get("k", compute)
    assert await shared.get("k", compute) == 2


async def test_only_the_last_keys_are_kept() -> None:
    shared: Shared[int] = Shared(size=3)
    calls: list[int] = []

    def computing(n: int):  # type: ignore[no-untyped-def]
        async def compute() -> int:
            calls.append(n)
            return n

        return compute

    for n in range(5):
        await shared.get(n, computing(n))
    await shared.get(4, computing(4))  # kept
    await shared.get(0, computing(0))  # forgotten: computed again
    assert calls == [0, 1, 2, 3, 4, 0]


@pytest.mark.parametrize("operation_id", ["1", 'a"b\\c', "é\u2028ü", "x" * 300])
async def test_a_frame_is_the_json_strawberry_would_send_with_the_id_spliced_in(
    operation_id: str,
) -> None:
    sent: list[str] = []

    async def send(text: str) -> None:
        sent.append(text)

    payload = {"data": {"events": {"position": "7", "data": {"q": 'he said "hi"'}}}}
    await transport_ws_delivery(send, operation_id, lambda: False).push(json.dumps(payload))
    await legacy_ws_delivery(send, operation_id, lambda: False).push(json.dumps(payload))
    await transport_ws_delivery(send, operation_id, lambda: True).push("{}")  # gone: nothing
    assert sent == [
        json.dumps({"id": operation_id, "type": "next", "payload": payload}),
        json.dumps({"type": "data", "id": operation_id, "payload": payload}),
    ]
