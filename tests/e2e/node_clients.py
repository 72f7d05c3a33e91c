"""The JavaScript clients the e2e tests drive (tests/e2e/node): the graphql-http audit and Apollo
Client subscribing over HTTP, and a reader of multipart subscription responses for the tests that
read at their own pace.

The node packages are installed by `npm ci` from the committed lockfile into
tests/e2e/node/node_modules when missing or older than the lockfile; without node or npm the
tests fail, they do not skip.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
import pytest

NODE_DIR = Path(__file__).with_name("node")
MULTIPART_ACCEPT = 'multipart/mixed;boundary="graphql";subscriptionSpec="1.0",application/json'
"""What Apollo Client sends to subscribe over HTTP."""


def node() -> str:
    """The `node` that runs the clients, their packages installed."""
    found, npm = shutil.which("node"), shutil.which("npm")
    if found is None or npm is None:
        pytest.fail(
            "node and npm are needed by the tests of tests/e2e/node (Debian: apt-get install -y "
            "nodejs npm)"
        )
    installed = NODE_DIR / "node_modules" / ".package-lock.json"  # npm writes it last
    lock = NODE_DIR / "package-lock.json"
    if not installed.exists() or installed.stat().st_mtime < lock.stat().st_mtime:
        done = subprocess.run(
            [npm, "ci"], cwd=NODE_DIR, capture_output=True, text=True, timeout=600, check=False
        )
        if done.returncode != 0:
            pytest.fail(f"npm ci in {NODE_DIR} failed:\n{done.stdout}\n{done.stderr}")
    return found


def audit(url: str) -> list[dict[str, Any]]:
    """graphql-http's `auditServer(url)`: one result per audit."""
    done = subprocess.run(
        [node(), str(NODE_DIR / "audit.mjs"), url],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    results: list[dict[str, Any]] = json.loads(done.stdout)
    return results


class ApolloSubscriber:
    """One subscription of Apollo Client's HttpLink (multipart over HTTP), in a node process.

    `received` holds each result's data, `error` what the subscription failed with, and
    `completed` whether it ended cleanly."""

    def __init__(
        self,
        url: str,
        query: str,
        variables: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.received: list[dict[str, Any]] = []
        self.error: dict[str, Any] | None = None
        self.completed = False
        self.ended = asyncio.Event()
        self._changed = asyncio.Event()
        self._arguments = {
            "url": url,
            "query": query,
            "variables": variables or {},
            "headers": headers or {},
        }
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ApolloSubscriber:
        self._process = await asyncio.create_subprocess_exec(
            node(),
            str(NODE_DIR / "subscribe.mjs"),
            json.dumps(self._arguments),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *_: object) -> None:
        process = self._process
        assert process is not None and process.stdin is not None
        if process.returncode is None:
            process.stdin.close()  # the script unsubscribes and exits
        try:
            async with asyncio.timeout(10):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)

    async def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        try:
            async for line in self._process.stdout:
                said = json.loads(line)
                if "next" in said:  # the root field's value, as live.Subscriber keeps it
                    self.received.append(next(iter(said["next"].values())))
                elif "error" in said:
                    self.error = said["error"]
                elif said.get("complete"):
                    self.completed = True
                self._changed.set()
        finally:
            self.ended.set()
            self._changed.set()

    async def until(
        self, condition: Callable[[list[dict[str, Any]]], bool], within: float = 30
    ) -> None:
        async with asyncio.timeout(within):
            while not condition(self.received):
                if self.ended.is_set() or self.error is not None:
                    raise AssertionError(f"the subscription ended: {self.error!r}")
                self._changed.clear()
                await self._changed.wait()

    async def finished(self, within: float = 30) -> None:
        """Wait until it has failed or completed."""
        async with asyncio.timeout(within):
            while not (self.completed or self.error is not None or self.ended.is_set()):
                self._changed.clear()
                await self._changed.wait()


def boundary_of(content_type: str) -> str:
    message = Message()
    message["content-type"] = content_type
    boundary = message.get_param("boundary")
    assert isinstance(boundary, str), content_type
    return boundary


async def multipart_parts(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """The JSON body of each part of a multipart/mixed response, framed as RFC 2046 says: the
    preamble before the first delimiter (CRLF `--` boundary) is skipped, each part is headers,
    an empty line and its body, and the close delimiter (the delimiter and `--`) ends it."""
    assert response.headers["content-type"].startswith("multipart/mixed"), response.headers
    delimiter = b"\r\n--" + boundary_of(response.headers["content-type"]).encode()
    buffer, preamble = b"\r\n", True  # a body may open with its boundary, no CRLF before it
    after_delimiter = False  # and so maybe at the `--` that closes the body
    async for chunk in response.aiter_bytes():
        buffer += chunk
        while True:
            if after_delimiter and len(buffer) >= 2:
                if buffer.startswith(b"--"):
                    return
                after_delimiter = False
            if (at := buffer.find(delimiter)) < 0:
                break
            part, buffer = buffer[:at], buffer[at + len(delimiter) :]
            if not preamble:
                yield _part_body(part)
            preamble, after_delimiter = False, True
    raise AssertionError(f"the stream ended before its close delimiter: {buffer[-200:]!r}")


def _part_body(part: bytes) -> dict[str, Any]:
    assert part.startswith(b"\r\n"), part[:100]
    head, separator, body = part[2:].partition(b"\r\n\r\n")
    assert separator, part[:200]
    headers = dict(
        (name.strip().lower(), value.strip())
        for name, _, value in (line.partition(":") for line in head.decode().split("\r\n"))
    )
    assert headers["content-type"].startswith("application/json"), headers
    parsed: dict[str, Any] = json.loads(body)
    return parsed


@contextlib.asynccontextmanager
async def streamed(
    client: httpx.AsyncClient,
    url: str,
    payload: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> AsyncIterator[httpx.Response]:
    """A subscription POSTed as Apollo Client posts it, its response open to read."""
    request = client.build_request(
        "POST",
        url,
        json=payload,
        headers={"Accept": MULTIPART_ACCEPT, **(headers or {})},
    )
    response = await client.send(request, stream=True)
    try:
        yield response
    finally:
        await response.aclose()
