"""The built-in playground (GraphiQL built from web/ into api/static/graphiql) in a real
Chromium, with every request to another host blocked: it loads, runs a query typed into its
editor, sends the headers of its Headers tab, shows the explorer, and receives a subscription's
event over graphql-ws, under its Content-Security-Policy, with no console error and nothing asked
of the internet. With GraphiQL off, neither the page nor its assets are served.

Chromium is Debian's (`apt-get install -y chromium`, which .ci/run does): Playwright's own
browser download is not available here. Screenshots of each step are kept in the test's
tmp_path (pytest keeps the last three runs' under its basetemp).
"""

from __future__ import annotations

import re
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    Request,
    Route,
    WebSocket,
    expect,
    sync_playwright,
)

from api.playground import ASSETS_PATH, BUILT, CONTENT_SECURITY_POLICY
from tests.e2e.conftest import Server, start_server, unique_email

REGISTER = """mutation($email: String!, $name: String!) {
  registerUser(input: {email: $email, name: $name, age: 40}) { streamId }
}"""
UPDATE = """mutation($id: ID!, $age: Int!) {
  updateUser(input: {userId: $id, age: $age}) { position }
}"""

RECORD_CSP_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(`${event.violatedDirective} ${event.blockedURI}`);
});
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail(
            "Chromium is not installed: `apt-get install -y chromium` (.ci/run does). "
            "Playwright's own browser download is not available here."
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium)
        yield launched
        launched.close()


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return f"{scheme}://{parts.netloc}"


@dataclass
class Playground:
    """GraphiQL open in a page that may reach the service's origin only."""

    page: Page
    origin: str
    screenshots: Path
    requests: list[Request] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    sockets: list[WebSocket] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    def snap(self, step: str) -> None:
        self.page.screenshot(path=self.screenshots / f"{step}.png")

    def type_into(self, editor: str, text: str) -> None:
        """Replace what the Monaco editor `editor` (its file name's end) holds with `text`,
        typed as one input, as a paste is (character by character, Monaco would close
        brackets)."""
        self.page.locator(f".monaco-editor[data-uri$='{editor}']").click()
        self.page.keyboard.press("ControlOrMeta+A")
        self.page.keyboard.press("Delete")
        self.page.keyboard.insert_text(text)

    def type_operation(self, text: str) -> None:
        """Type `text` into the operation editor and wait, as a person would, until GraphiQL
        has read it: it parses the operation (whether a subscription, to go over the websocket)
        100 ms after the last keystroke, and saves the text at that moment."""
        self.type_into(".graphql", text)
        self.page.wait_for_function(
            "text => localStorage.getItem('graphiql:query') === text", arg=text
        )

    def run(self) -> None:
        self.page.locator(".graphiql-execute-button").click()

    @property
    def response(self) -> Any:
        return self.page.locator(".graphiql-response")

    def assert_clean(self) -> None:
        """Nothing asked of another host, every request and socket to the service, no console
        error and no Content-Security-Policy violation."""
        assert self.foreign == [], self.foreign
        elsewhere = [
            r.url
            for r in self.requests
            if urlsplit(r.url).scheme in ("http", "https") and origin_of(r.url) != self.origin
        ]
        assert elsewhere == [], elsewhere
        assert all(origin_of(s.url) == self.origin for s in self.sockets), [
            s.url for s in self.sockets
        ]
        assert self.page.evaluate("window.__cspViolations") == []
        assert self.console_errors == [], self.console_errors


@pytest.fixture
def playground(server: Server, browser: Browser, tmp_path: Path) -> Iterator[Playground]:
    context = browser.new_context()
    context.set_default_timeout(10_000)
    page = context.new_page()
    shots = tmp_path / "screenshots"
    shots.mkdir()
    opened = Playground(page=page, origin=server.url, screenshots=shots)

    def only_the_service(route: Route) -> None:
        if origin_of(route.request.url) == opened.origin:
            route.continue_()
        else:
            opened.foreign.append(route.request.url)
            route.abort("blockedbyclient")

    # Websockets pass no route: assert_clean checks theirs (and the page's policy refuses any
    # other origin). Playwright's route_web_socket would stand in for the page's WebSocket.
    context.route("**/*", only_the_service)
    context.on("request", lambda request: opened.requests.append(request))
    page.on("websocket", lambda socket: opened.sockets.append(socket))

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            opened.console_errors.append(message.text)

    page.on("console", console)
    page.on("pageerror", lambda error: opened.console_errors.append(str(error)))
    page.add_init_script(RECORD_CSP_VIOLATIONS)
    yield opened
    context.close()


def graphql(server: Server, document: str, **variables: Any) -> dict[str, Any]:
    response = httpx.post(
        server.graphql_url, json={"query": document, "variables": variables}, timeout=10
    )
    body = response.json()
    assert "errors" not in body, body
    return dict(body["data"])


def live_subscribers(server: Server) -> int:
    return int(httpx.get(f"{server.url}/health", timeout=10).json()["liveSubscribers"])


def test_the_playground_runs_offline_under_its_content_security_policy(
    playground: Playground, server: Server
) -> None:
    page = playground.page
    name = f"Playground {uuid.uuid4().hex[:8]}"
    user = graphql(server, REGISTER, email=unique_email("playground"), name=name)["registerUser"]

    loaded = page.goto(f"{server.url}/graphql")
    assert loaded is not None and loaded.status == 200
    assert loaded.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    expect(page.locator(".graphiql-query-editor .monaco-editor")).to_be_visible()
    expect(page.locator(".graphiql-response .monaco-editor")).to_be_visible()
    playground.snap("1-loaded")

    # The Headers tab: what it holds goes on the request.
    correlation = f"playground-{uuid.uuid4().hex[:12]}"
    page.get_by_role("button", name="Headers", exact=True).click()
    playground.type_into("headers.json", f'{{"X-Correlation-ID": "{correlation}"}}')
    playground.snap("2-headers")

    playground.type_operation(f'{{ events(streamId: "{user["streamId"]}") {{ type }} }}')
    with page.expect_request(lambda r: r.method == "POST" and "/graphql" in r.url) as sent:
        playground.run()
    assert sent.value.headers.get("x-correlation-id") == correlation
    expect(playground.response).to_contain_text('"type": "UserRegistered"')
    playground.snap("3-query")

    page.get_by_role("button", name="Show GraphiQL Explorer").click()
    explorer = page.locator(".graphiql-explorer-root")
    expect(explorer).to_be_visible()
    expect(explorer).to_contain_text("userSummary")
    playground.snap("4-explorer")
    page.get_by_role("button", name="Hide GraphiQL Explorer").click()

    before = live_subscribers(server)
    playground.type_operation("subscription { events { position type } }")
    with page.expect_websocket() as opened:
        playground.run()
    socket = opened.value
    assert re.fullmatch(r"ws://127\.0\.0\.1:\d+/graphql", socket.url), socket.url
    deadline = time.monotonic() + 10
    while live_subscribers(server) <= before:  # the server's own count: the subscription is on
        assert time.monotonic() < deadline, "the subscription never reached the server"
        time.sleep(0.05)
    position = graphql(server, UPDATE, id=user["streamId"], age=41)["updateUser"]["position"]
    expect(playground.response).to_contain_text(f'"position": "{position}"')
    expect(playground.response).to_contain_text('"type": "UserUpdated"')
    playground.snap("5-subscription")

    # Monaco's workers (the editor's, and the GraphQL and JSON languages') came from the build.
    workers = {
        Path(urlsplit(r.url).path).name.split("-")[0]
        for r in playground.requests
        if ".worker-" in r.url
    }
    assert workers == {"editor.worker", "graphql.worker", "json.worker"}, workers
    playground.assert_clean()


def test_the_assets_carry_the_policy_and_may_be_cached_for_good(server: Server) -> None:
    page = httpx.get(f"{server.url}/graphql", headers={"Accept": "text/html"}, timeout=10)
    scripts = re.findall(r'src="(/graphiql/assets/[^"]+\.js)"', page.text)
    assert scripts, page.text
    asset = httpx.get(f"{server.url}{scripts[0]}", timeout=10)
    assert asset.status_code == 200
    assert asset.headers["content-type"].startswith("text/javascript")
    assert asset.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "immutable" in asset.headers["cache-control"]
    assert asset.content == (BUILT / scripts[0].removeprefix("/graphiql/")).read_bytes()
    missing = httpx.get(f"{server.url}{ASSETS_PATH}/nothing-here.js", timeout=10)
    assert missing.status_code == 404


def test_the_built_files_load_nothing_from_another_origin() -> None:
    """No script, stylesheet or font of the build names an absolute URL to load; links in help
    texts (and XML namespaces) are words, not loads."""
    built = [BUILT / "index.html", *sorted((BUILT / "assets").iterdir())]
    loads = re.compile(
        rb"""(?:url\(\s*["']?|@import\s+["']?|src=["']|href=["']|import\(\s*["'])(?:https?:)?//"""
    )
    found = {path.name: loads.findall(path.read_bytes()) for path in built}
    assert {name: hits for name, hits in found.items() if hits} == {}


def test_without_graphiql_neither_the_page_nor_its_assets_are_served(
    e2e_database_url: str, tmp_path: Path
) -> None:
    off = start_server(
        {"DATABASE_URL": e2e_database_url, "CHRONICLE_GRAPHIQL": "false"}, tmp_path / "off.log"
    )
    try:
        page = httpx.get(f"{off.url}/graphql", headers={"Accept": "text/html"}, timeout=10)
        assert page.status_code == 404
        assert page.json()["errors"][0]["extensions"]["code"] == "NOT_FOUND"
        index = (BUILT / "index.html").read_text()
        script = re.findall(r'src="(/graphiql/assets/[^"]+\.js)"', index)[0]
        asset = httpx.get(f"{off.url}{script}", timeout=10)
        assert asset.status_code == 404
        assert asset.headers["content-security-policy"] == "frame-ancestors 'none'"
    finally:
        off.stop()
