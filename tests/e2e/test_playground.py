"""The built-in playground (GraphiQL built from web/ into api/static/graphiql) in a real
Chromium, with every request to another host blocked: it loads, and runs a mutation, a query and
a live subscription typed into its editor, the subscription's event coming from a mutation typed
into a second tab; it sends the headers of its Headers tab and shows the explorer, under its
Content-Security-Policy, with no console error and nothing asked of the internet. With GraphiQL
off, neither the page nor its assets are served.

tests/e2e/browser.py launches Debian's Chromium and keeps a screenshot of each step in
test-artifacts/screenshots/<test name>/.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, Response, expect

from api.playground import ASSETS_PATH, BUILT, CONTENT_SECURITY_POLICY
from tests.e2e.browser import Confined, Screenshots, confined
from tests.e2e.conftest import Server, start_server, unique_email

# The operations a person types into the editor (on one line: GraphiQL's prettify lays them out).
REGISTER = Template(
    'mutation { registerUser(input: {email: "$email", name: "$name", age: 40}) { streamId } }'
)
HISTORY = Template('{ events(streamId: "$user") { type } }')
LIVE = Template('subscription { events(streamId: "$user") { position type } }')
UPDATE = Template('mutation { updateUser(input: {userId: "$user", age: 41}) { position } }')

RECORD_CSP_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(`${event.violatedDirective} ${event.blockedURI}`);
});
"""


@dataclass
class Playground:
    """GraphiQL open in a tab that may reach the service's origin only."""

    page: Page
    url: str

    def open(self) -> Response | None:
        loaded = self.page.goto(self.url)
        expect(self.page.locator(".graphiql-query-editor .monaco-editor")).to_be_visible()
        expect(self.page.locator(".graphiql-response .monaco-editor")).to_be_visible()
        return loaded

    def type_into(self, editor: str, text: str) -> None:
        """Replace what the Monaco editor `editor` (its file name's end) holds with `text`,
        typed as one input, as a paste is (character by character, Monaco would close
        brackets)."""
        self.page.locator(f".monaco-editor[data-uri$='{editor}']").click()
        self.page.keyboard.press("ControlOrMeta+A")
        self.page.keyboard.press("Delete")
        self.page.keyboard.insert_text(text)

    def type_operation(self, text: str) -> None:
        """Type `text` into the operation editor, prettify it (GraphiQL's button), and wait,
        as a person would, until GraphiQL has read it: it parses the operation (whether a
        subscription, to go over the websocket) 100 ms after the last change, and saves the
        text at that moment; compared without whitespace and commas, which prettify moves or
        drops and GraphQL ignores. (Typed over several lines, Monaco would indent and close
        brackets on each.)"""
        self.type_into(".graphql", text)
        self.page.get_by_role("button", name=re.compile("^Prettify")).click()
        # Back to the start, so that a screenshot shows the operation from its first column.
        self.page.locator(".monaco-editor[data-uri$='.graphql']").click()
        self.page.keyboard.press("ControlOrMeta+Home")
        self.page.wait_for_function(
            """text => {
                const saved = localStorage.getItem('graphiql:query') ?? '';
                return saved.replace(/[\\s,]+/g, '') === text.replace(/[\\s,]+/g, '');
            }""",
            arg=text,
        )

    def run(self) -> None:
        self.page.locator(".graphiql-execute-button").click()

    def run_over_http(self) -> dict[str, Any]:
        """Run the operation typed (a query or a mutation) and return the answer the page got."""
        with self.page.expect_response(
            lambda r: r.request.method == "POST" and urlsplit(r.url).path == "/graphql"
        ) as answered:
            self.run()
        body = answered.value.json()
        assert "errors" not in body, body
        return dict(body["data"])

    @property
    def response(self) -> Any:
        return self.page.locator(".graphiql-response")


@pytest.fixture
def tabs(server: Server, browser: Browser) -> Iterator[Confined]:
    """A browser whose tabs may reach the service's origin only, recording CSP violations."""
    with confined(browser, server.url) as opened:
        opened.context.add_init_script(RECORD_CSP_VIOLATIONS)
        yield opened


def live_subscribers(server: Server) -> int:
    return int(httpx.get(f"{server.url}/health", timeout=10).json()["liveSubscribers"])


def test_the_playground_runs_offline_under_its_content_security_policy(
    tabs: Confined, server: Server, screenshots: Screenshots
) -> None:
    page = tabs.new_page()
    playground = Playground(page, f"{server.url}/graphql")
    loaded = playground.open()
    assert loaded is not None and loaded.status == 200
    assert loaded.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    screenshots.shot(page, "loaded")

    # The Headers tab: what it holds goes on the request.
    correlation = f"playground-{uuid.uuid4().hex[:12]}"
    page.get_by_role("button", name="Headers", exact=True).click()
    playground.type_into("headers.json", f'{{"X-Correlation-ID": "{correlation}"}}')
    screenshots.shot(page, "headers")

    name = f"Playground {uuid.uuid4().hex[:8]}"
    email = unique_email("playground")
    playground.type_operation(REGISTER.substitute(email=email, name=name))
    with page.expect_request(lambda r: r.method == "POST" and "/graphql" in r.url) as sent:
        registered = playground.run_over_http()["registerUser"]
    assert sent.value.headers.get("x-correlation-id") == correlation
    user = registered["streamId"]
    expect(playground.response).to_contain_text(f'"streamId": "{user}"')
    screenshots.shot(page, "mutation")

    playground.type_operation(HISTORY.substitute(user=user))
    playground.run()
    expect(playground.response).to_contain_text('"type": "UserRegistered"')
    screenshots.shot(page, "query")

    page.get_by_role("button", name="Show GraphiQL Explorer").click()
    explorer = page.locator(".graphiql-explorer-root")
    expect(explorer).to_be_visible()
    expect(explorer).to_contain_text("userSummary")
    screenshots.shot(page, "explorer")
    page.get_by_role("button", name="Hide GraphiQL Explorer").click()

    before = live_subscribers(server)
    playground.type_operation(LIVE.substitute(user=user))
    with page.expect_websocket() as opened:
        playground.run()
    socket = opened.value
    assert re.fullmatch(r"ws://127\.0\.0\.1:\d+/graphql", socket.url), socket.url
    deadline = time.monotonic() + 10
    while live_subscribers(server) <= before:  # the server's own count: the subscription is on
        assert time.monotonic() < deadline, "the subscription never reached the server"
        time.sleep(0.05)
    screenshots.shot(page, "subscribed")

    # A second tab, as a person would open one: the mutation typed into its editor.
    second = Playground(tabs.new_page(), playground.url)
    second.open()
    second.type_operation(UPDATE.substitute(user=user))
    position = second.run_over_http()["updateUser"]["position"]
    expect(second.response).to_contain_text(f'"position": "{position}"')
    screenshots.shot(second.page, "second-tab-mutation")

    page.bring_to_front()
    expect(playground.response).to_contain_text(f'"position": "{position}"')
    expect(playground.response).to_contain_text('"type": "UserUpdated"')
    screenshots.shot(page, "subscription-event")

    # Monaco's workers (the editor's, and the GraphQL and JSON languages') came from the build.
    workers = {
        Path(urlsplit(r.url).path).name.split("-")[0] for r in tabs.requests if ".worker-" in r.url
    }
    assert workers == {"editor.worker", "graphql.worker", "json.worker"}, workers
    for tab in (page, second.page):
        assert tab.evaluate("window.__cspViolations") == []
    tabs.assert_clean()


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
