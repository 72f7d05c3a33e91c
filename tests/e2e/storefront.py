"""The example storefront as the browser tests drive it: a service of its own for its pages,
the app open in a confined tab, and the calls made from elsewhere (another shopper, an admin's
tool) that the page must show live."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page, WebSocket, expect

from tests.conftest import _admin, _with_database
from tests.e2e.browser import Confined, Screenshots
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


@contextmanager
def serve_on_a_database_of_its_own(
    server_url: str, template_database: str, name: str, env: Mapping[str, str], log: Path
) -> Iterator[Server]:
    """An open-mode `chronicle serve` on a fresh copy of the template database, so that the
    catalog and feed a page lists hold its own tests' products and posts only."""
    database = template_database.replace("_template", f"_{name}")
    asyncio.run(_admin(server_url, f'CREATE DATABASE "{database}" TEMPLATE "{template_database}"'))
    server = start_server({**env, "DATABASE_URL": _with_database(server_url, database)}, log)
    try:
        yield server
    finally:
        server.stop()
        asyncio.run(_admin(server_url, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
    assert "Traceback" not in server.output(), server.output()


@dataclass
class Storefront:
    """The app open in a tab that may reach the origins it was served from and calls only."""

    page: Page
    browser: Confined
    screenshots: Screenshots
    frames_sent: list[tuple[WebSocket, str]] = field(default_factory=list)

    def shot(self, step: str) -> None:
        self.screenshots.shot(self.page, step)

    def row(self, sku: str) -> Any:
        return self.page.locator(f"tr[data-sku='{sku}']")

    def post(self, message: str) -> Any:
        return self.page.locator("article", has_text=message)

    def first_frame(self, socket: WebSocket) -> Any:
        """The first message the app sent on `socket` (graphql-ws: its connection_init)."""
        sent = [payload for on, payload in self.frames_sent if on is socket]
        return json.loads(sent[0] if sent else socket.wait_for_event("framesent"))

    def register(self, name: str) -> None:
        """Register a user in the page, as a shopper does."""
        self.page.get_by_label("Name").fill(name)
        self.page.get_by_label("Email").fill(unique_email("shopper"))
        self.page.get_by_role("button", name="Register").click()
        expect(self.page.get_by_test_id("user-name")).to_have_text(name)

    def assert_clean(self) -> None:
        """Nothing asked of another host, every socket to an allowed origin, no console error,
        and the page never reloaded (the marker set after the first load is still there)."""
        assert self.browser.sockets, "the app opened no websocket"
        self.browser.assert_clean()
        assert self.page.evaluate("window.__loadedOnce") is True, "the page reloaded"


def open_storefront(
    browser: Confined, screenshots: Screenshots, url: str, *, live: bool = True
) -> Storefront:
    """Open the app at `url` in a new tab and mark the page, so that a reload would show; with
    `live`, wait until its websocket is up."""
    page = browser.new_page()
    opened = Storefront(page=page, browser=browser, screenshots=screenshots)

    def watch(socket: WebSocket) -> None:
        socket.on("framesent", lambda payload: opened.frames_sent.append((socket, str(payload))))

    page.on("websocket", watch)
    page.goto(url)
    page.evaluate("window.__loadedOnce = true")
    if live:
        expect(page.get_by_test_id("connection")).to_have_text("live")
    return opened


def graphql(server: Server, document: str, **variables: Any) -> dict[str, Any]:
    """A call from elsewhere (another shopper, an admin's tool): open mode, so an admin."""
    response = httpx.post(
        server.graphql_url, json={"query": document, "variables": variables}, timeout=10
    )
    body = response.json()
    assert "errors" not in body, body
    return dict(body["data"])


def add_product(server: Server, stock: int) -> tuple[str, str]:
    """A new product with `stock` on hand: its SKU and stream id."""
    sku = f"LAMP-{uuid.uuid4().hex[:8].upper()}"
    product = graphql(server, ADD_PRODUCT, sku=sku, stock=stock)["addProduct"]["streamId"]
    return sku, product
