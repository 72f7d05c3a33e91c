"""Chromium for the browser tests: Debian's, pages that may reach the origins a test names and
no other host, their console errors collected, and screenshots of each step kept.

Chromium is Debian's (`apt-get install -y chromium`, which .ci/run does): Playwright's own
browser download is not available here. Screenshots land in
`test-artifacts/screenshots/<test name>/<n>-<step>.png` at the repository's root (gitignored),
the test's folder emptied when it starts, so a run leaves the screenshots of its last attempt
of each test for a person or a CI job to look at.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Request,
    Route,
    WebSocket,
    sync_playwright,
)

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


@contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's Chromium, driven by Playwright; a test fails with what to install when the
    machine has none."""
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail(
            "Chromium is not installed: `apt-get install -y chromium` (.ci/run does). "
            "Playwright's own browser download is not available here."
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable)
        try:
            yield browser
        finally:
            browser.close()


def origin_of(url: str) -> str:
    """The origin of a page, a request or a websocket (`ws://host:port/x` is `http://host:port`)."""
    parts = urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return f"{scheme}://{parts.netloc}"


@dataclass
class Confined:
    """A browser context whose pages may reach `allowed` origins only: any other request is
    aborted and recorded. Each page's console errors and uncaught exceptions, requests and
    websockets are recorded too."""

    context: BrowserContext
    allowed: frozenset[str]
    blocked: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    sockets: list[WebSocket] = field(default_factory=list)

    def new_page(self) -> Page:
        page = self.context.new_page()

        def console(message: ConsoleMessage) -> None:
            if message.type == "error":
                self.console_errors.append(message.text)

        page.on("console", console)
        page.on("pageerror", lambda error: self.console_errors.append(str(error)))
        # Playwright wants Python functions as handlers, not a builtin's bound method.
        page.on("request", lambda request: self.requests.append(request))
        page.on("websocket", lambda socket: self.sockets.append(socket))
        return page

    def assert_clean(self) -> None:
        """Nothing asked of another host, every request and websocket to an allowed origin,
        no console error."""
        assert self.blocked == [], self.blocked
        elsewhere = [
            r.url
            for r in self.requests
            if urlsplit(r.url).scheme in ("http", "https") and origin_of(r.url) not in self.allowed
        ]
        assert elsewhere == [], elsewhere
        strangers = [s.url for s in self.sockets if origin_of(s.url) not in self.allowed]
        assert strangers == [], strangers
        assert self.console_errors == [], self.console_errors


@contextmanager
def confined(browser: Browser, *allowed: str) -> Iterator[Confined]:
    """A fresh context (its own storage) whose pages may reach the `allowed` origins only.

    Websockets pass no route: `assert_clean` checks theirs. Playwright's `route_web_socket`
    would stand in for the page's WebSocket rather than watch it."""
    context = browser.new_context()
    context.set_default_timeout(10_000)
    opened = Confined(context=context, allowed=frozenset(allowed))

    def only_the_allowed(route: Route) -> None:
        if origin_of(route.request.url) in opened.allowed:
            route.continue_()
        else:
            opened.blocked.append(route.request.url)
            route.abort("blockedbyclient")

    context.route("**/*", only_the_allowed)
    try:
        yield opened
    finally:
        context.close()


class Screenshots:
    """The screenshots of one test, numbered in the order taken:
    `test-artifacts/screenshots/<test>/<n>-<step>.png`."""

    def __init__(self, test: str) -> None:
        self.folder = SCREENSHOTS / test
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True)
        self.taken = 0

    def shot(self, page: Page, step: str) -> Path:
        self.taken += 1
        path = self.folder / f"{self.taken}-{step}.png"
        page.screenshot(path=path, full_page=True)
        return path
