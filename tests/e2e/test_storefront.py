"""The example frontend (examples/storefront, urql and graphql-ws) in a real Chromium, served by
the service at /examples/storefront: an order watched live to CONFIRMED, stock that changes
live, posts whose likes and comments arrive live, the token on both transports, and nothing
loaded from another origin.

Chromium is Debian's (`apt-get install -y chromium`, which .ci/run does): Playwright's own
browser download is not available here. Screenshots of each step are kept in the test's
tmp_path (pytest keeps the last three runs' under its basetemp).
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
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

from api.app import STOREFRONT, example_routes
from tests.conftest import _admin, _with_database
from tests.e2e.conftest import Server, start_server, unique_email

STOREFRONT_PATH = "/examples/storefront"

ADD_PRODUCT = """mutation($sku: String!, $stock: Int!) {
  addProduct(input: {sku: $sku, name: "Desk lamp", priceCents: 1999, initialStock: $stock}) { streamId }
}"""
RESTOCK = """mutation($id: ID!, $quantity: Int!) {
  restockProduct(input: {productId: $id, quantity: $quantity}) { position }
}"""
REGISTER = """mutation($email: String!, $name: String!) {
  registerUser(input: {email: $email, name: $name, age: 40}) { streamId }
}"""
CREATE_POST = """mutation($author: ID!, $message: String!) {
  createPost(input: {authorId: $author, message: $message}) { streamId }
}"""
LIKE = "mutation($post: ID!, $user: ID!) { likePost(input: {postId: $post, userId: $user}) { version } }"
COMMENT = """mutation($post: ID!, $user: ID!, $text: String!) {
  addComment(input: {postId: $post, authorId: $user, text: $text}) { version }
}"""


@pytest.fixture(scope="module")
def storefront_server(
    server_url: str, template_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """An open-mode server on a database of its own: the catalog and feed the page lists hold
    this module's products and posts only."""
    name = template_database.replace("_template", "_storefront")
    asyncio.run(_admin(server_url, f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"'))
    log = tmp_path_factory.mktemp("storefront") / "serve.log"
    server = start_server({"DATABASE_URL": _with_database(server_url, name)}, log)
    try:
        yield server
    finally:
        server.stop()
        asyncio.run(_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    assert "Traceback" not in server.output(), server.output()


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


@dataclass
class Storefront:
    """The app open in a page that may reach the service's origin only."""

    page: Page
    origin: str
    screenshots: Path
    foreign: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    sockets: list[WebSocket] = field(default_factory=list)
    frames_sent: list[tuple[WebSocket, str]] = field(default_factory=list)

    def snap(self, step: str) -> None:
        self.page.screenshot(path=self.screenshots / f"{step}.png", full_page=True)

    def row(self, sku: str) -> Any:
        return self.page.locator(f"tr[data-sku='{sku}']")

    def post(self, message: str) -> Any:
        return self.page.locator("article", has_text=message)

    def first_frame(self, socket: WebSocket) -> Any:
        """The first message the app sent on `socket` (graphql-ws: its connection_init)."""
        sent = [payload for on, payload in self.frames_sent if on is socket]
        return json.loads(sent[0] if sent else socket.wait_for_event("framesent"))

    def assert_clean(self) -> None:
        """Nothing asked of another host, every socket to the service, no console error, and
        the page never reloaded (the marker set after the first load is still there)."""
        assert self.foreign == [], self.foreign
        assert self.sockets, "the app opened no websocket"
        assert all(origin_of(s.url, ws=True) == self.origin for s in self.sockets), [
            s.url for s in self.sockets
        ]
        assert self.console_errors == [], self.console_errors
        assert self.page.evaluate("window.__loadedOnce") is True, "the page reloaded"


def origin_of(url: str, *, ws: bool = False) -> str:
    parts = urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme) if ws else parts.scheme
    return f"{scheme}://{parts.netloc}"


@pytest.fixture
def storefront(storefront_server: Server, browser: Browser, tmp_path: Path) -> Iterator[Storefront]:
    context = browser.new_context()
    page = context.new_page()
    shots = tmp_path / "screenshots"
    shots.mkdir()
    opened = Storefront(page=page, origin=storefront_server.url, screenshots=shots)

    def only_the_service(route: Route) -> None:
        if origin_of(route.request.url) == opened.origin:
            route.continue_()
        else:
            opened.foreign.append(route.request.url)
            route.abort("blockedbyclient")

    def watch(socket: WebSocket) -> None:
        opened.sockets.append(socket)
        socket.on("framesent", lambda payload: opened.frames_sent.append((socket, str(payload))))

    context.route("**/*", only_the_service)
    page.on("websocket", watch)

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            opened.console_errors.append(message.text)

    page.on("console", console)
    page.on("pageerror", lambda error: opened.console_errors.append(str(error)))
    # No trailing slash, as a person types it: the mount redirects to the folder.
    page.goto(f"{storefront_server.url}{STOREFRONT_PATH}")
    page.evaluate("window.__loadedOnce = true")
    expect(page.get_by_test_id("connection")).to_have_text("live")
    yield opened
    context.close()


def graphql(server: Server, document: str, **variables: Any) -> dict[str, Any]:
    """A call from elsewhere (another shopper, an admin's tool): open mode, so an admin."""
    response = httpx.post(
        server.graphql_url, json={"query": document, "variables": variables}, timeout=10
    )
    body = response.json()
    assert "errors" not in body, body
    return dict(body["data"])


def add_product(server: Server, stock: int) -> tuple[str, str]:
    sku = f"LAMP-{uuid.uuid4().hex[:8].upper()}"
    product = graphql(server, ADD_PRODUCT, sku=sku, stock=stock)["addProduct"]["streamId"]
    return sku, product


def register_in_the_page(shop: Storefront, name: str) -> None:
    page = shop.page
    page.get_by_label("Name").fill(name)
    page.get_by_label("Email").fill(unique_email("shopper"))
    page.get_by_role("button", name="Register").click()
    expect(page.get_by_test_id("user-name")).to_have_text(name)


def test_an_order_goes_confirmed_and_the_stock_changes_live(
    storefront_server: Server, storefront: Storefront
) -> None:
    sku, product = add_product(storefront_server, stock=5)
    page = storefront.page
    row = storefront.row(sku)
    expect(row.get_by_test_id("available")).to_have_text("5")
    storefront.snap("1-catalog")

    register_in_the_page(storefront, "Ada")
    page.get_by_role("button", name="Create order").click()
    expect(page.get_by_test_id("order-status")).to_have_text("DRAFT")
    row.get_by_label(f"Quantity of {sku}").fill("2")
    row.get_by_role("button", name="Add to order").click()
    expect(page.get_by_test_id("order-items")).to_contain_text(f"2 × Desk lamp ({sku})")
    expect(page.get_by_test_id("order-total")).to_have_text("$39.98")
    storefront.snap("2-draft-order")

    page.get_by_role("button", name="Place order").click()
    # placeOrder answers at PLACED; CONFIRMED comes from the fulfilment process, pushed by
    # orderChanged (the page asked for nothing more).
    expect(page.get_by_test_id("order-status")).to_have_text("CONFIRMED")
    expect(page.get_by_test_id("order-timeline")).to_have_text(re.compile(r"CONFIRMED$"))
    # The reservation reaches the catalog by the `events` subscription.
    expect(row.get_by_test_id("reserved")).to_have_text("2")
    expect(row.get_by_test_id("available")).to_have_text("3")
    storefront.snap("3-confirmed")

    graphql(storefront_server, RESTOCK, id=product, quantity=10)
    expect(row.get_by_test_id("on-hand")).to_have_text("15")
    expect(row.get_by_test_id("available")).to_have_text("13")
    storefront.snap("4-restocked")
    storefront.assert_clean()


def test_an_order_beyond_the_stock_goes_rejected_live(
    storefront_server: Server, storefront: Storefront
) -> None:
    sku, _ = add_product(storefront_server, stock=1)
    page = storefront.page
    register_in_the_page(storefront, "Grace")
    page.get_by_role("button", name="Create order").click()
    storefront.row(sku).get_by_label(f"Quantity of {sku}").fill("3")
    storefront.row(sku).get_by_role("button", name="Add to order").click()
    expect(page.get_by_test_id("order-items")).to_contain_text(sku)
    page.get_by_role("button", name="Place order").click()
    expect(page.get_by_test_id("order-status")).to_have_text("REJECTED")
    expect(page.get_by_text(f"not enough stock of {sku}")).to_be_visible()
    expect(storefront.row(sku).get_by_test_id("available")).to_have_text("1")
    storefront.snap("rejected")
    storefront.assert_clean()


def test_posts_likes_and_comments_arrive_live(
    storefront_server: Server, storefront: Storefront
) -> None:
    page = storefront.page
    register_in_the_page(storefront, "Linus")
    other = graphql(storefront_server, REGISTER, email=unique_email("poster"), name="Margaret")
    author = other["registerUser"]["streamId"]

    message = f"Fresh lamps in stock {uuid.uuid4().hex[:6]}"
    created = graphql(storefront_server, CREATE_POST, author=author, message=message)
    post_id = created["createPost"]["streamId"]
    card = storefront.post(message)
    expect(card).to_contain_text("by Margaret")
    expect(card.get_by_test_id("like-count")).to_have_text("0")

    # From the page: a post of our own, and a like, read back at their positions.
    page.get_by_label("New post").fill("Mine")
    page.get_by_role("button", name="Post", exact=True).click()
    expect(storefront.post("Mine")).to_contain_text("by Linus")
    card.get_by_role("button", name="Like").click()
    expect(card.get_by_test_id("like-count")).to_have_text("1")
    expect(card.get_by_role("button", name="Unlike")).to_be_visible()

    # From elsewhere: pushed by postChanged.
    graphql(storefront_server, LIKE, post=post_id, user=author)
    expect(card.get_by_test_id("like-count")).to_have_text("2")
    graphql(storefront_server, COMMENT, post=post_id, user=author, text="Bright and quiet")
    expect(card.get_by_test_id("comments")).to_have_text("Margaret: Bright and quiet")
    card.get_by_label("Comment").fill("Ordered two")
    card.get_by_role("button", name="Comment").click()
    expect(card.get_by_test_id("comments")).to_contain_text("Linus: Ordered two")
    storefront.snap("feed")
    storefront.assert_clean()


def test_a_token_goes_on_every_request_and_in_connection_init(
    storefront_server: Server, storefront: Storefront
) -> None:
    """Open mode ignores tokens, so this checks what the app sends: a secured service reads
    `Authorization: Bearer` on HTTP and in the graphql-ws connection_init payload."""
    page = storefront.page
    first_init = storefront.first_frame(storefront.sockets[0])
    assert first_init == {"type": "connection_init", "payload": {}}, first_init

    sent: list[dict[str, str]] = []

    def record(request: Request) -> None:
        if urlsplit(request.url).path == "/graphql":
            sent.append(request.headers)

    page.on("request", record)
    page.get_by_label("Token (optional)").fill("a-token")
    with (
        page.expect_websocket() as reconnected,
        page.expect_request(lambda request: urlsplit(request.url).path == "/graphql"),
    ):
        page.get_by_role("button", name="Use token").click()
    init = storefront.first_frame(reconnected.value)
    assert init == {"type": "connection_init", "payload": {"Authorization": "Bearer a-token"}}
    expect(page.get_by_test_id("connection")).to_have_text("live")
    # Every request since the click, the first included: none went out with the old client.
    assert sent and all(h.get("authorization") == "Bearer a-token" for h in sent), sent
    storefront.assert_clean()


def test_the_build_is_served_where_it_is_and_only_there(
    storefront_server: Server, tmp_path: Path
) -> None:
    """The committed build is where the mount looks (a checkout, `pip install -e .`), and a
    folder without a build (as under a wheel's install) mounts nothing."""
    index = (STOREFRONT / "index.html").read_text()
    page = httpx.get(f"{storefront_server.url}{STOREFRONT_PATH}/", timeout=10)
    assert page.status_code == 200 and page.text == index
    slashless = httpx.get(f"{storefront_server.url}{STOREFRONT_PATH}", timeout=10)
    assert slashless.status_code == 307
    assert slashless.headers["location"] == f"{storefront_server.url}{STOREFRONT_PATH}/"
    assert example_routes(tmp_path) == []


def test_the_built_files_name_nothing_on_another_origin() -> None:
    """Every script and stylesheet of the page is the service's own (the browser tests block
    every other host too)."""
    page = (STOREFRONT / "index.html").read_text()
    sources = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert sources and all(
        s.startswith((STOREFRONT_PATH + "/assets/", "data:")) for s in sources
    ), sources
