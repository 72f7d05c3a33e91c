"""The console (console/ built into api/static/console, served at /console) in a real Chromium
with every request to another host blocked: a rebuild started from it runs to the end with its
progress shown on the way, a verify reports a match (and a row changed behind the read
model's back), parked events are retried and skipped from
it, the live tail follows the log (filters, pause and resume with nothing lost), the stream
browser shows a stream's events and its state at any version, and the live subscribers are
counted; under its Content-Security-Policy, with no console error.

The server runs in open mode (every caller an admin) on a database of its own, with small
projection batches (so a rebuild of a few thousand events takes many steps, each seen) and
`CHRONICLE_ON_PROJECTION_ERROR=park`. An event is poisoned as the products read model meets it:
a CHECK constraint on `products_view` refuses the row it would write, until the test drops it.

tests/e2e/browser.py launches Debian's Chromium and keeps a screenshot of each step in
test-artifacts/screenshots/<test name>/.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import asyncpg
import httpx
import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from api.console import BUILT, CONTENT_SECURITY_POLICY
from store.database import create_engine
from store.event_store import EventStore
from store.events import NewEvent, StreamAppend
from tests.conftest import _admin, _with_database
from tests.e2e.browser import Confined, Screenshots, confined
from tests.e2e.conftest import Server, start_server

SEEDED = 2_000
"""Restocks written straight to the store before the rebuild: 200 batches of 10."""

ADD_PRODUCT = """mutation($sku: String!, $name: String!) {
  addProduct(input: {sku: $sku, name: $name, priceCents: 1999, initialStock: 10}) {
    streamId position
  }
}"""
RESTOCK = """mutation($id: ID!, $quantity: Int!) {
  restockProduct(input: {productId: $id, quantity: $quantity}) { position }
}"""
PRICE = """mutation($id: ID!, $cents: Int!) {
  changeProductPrice(input: {productId: $id, priceCents: $cents}) { position }
}"""
PRODUCT = "query($id: ID!) { product(id: $id) { name stockOnHand } }"
PROJECTIONS = "{ projections { name status lag } }"

RECORD_PROGRESS = """
window.__progressSeen = [];
new MutationObserver(() => {
  for (const shown of document.querySelectorAll("tr[data-projection='products'] .percent")) {
    const value = shown.textContent;
    if (window.__progressSeen.at(-1) !== value) window.__progressSeen.push(value);
  }
}).observe(document, {subtree: true, childList: true, characterData: true});
"""


@pytest.fixture(scope="module")
def console_server(
    server_url: str, template_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    name = template_database.replace("_template", "_console")
    asyncio.run(_admin(server_url, f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"'))
    log = tmp_path_factory.mktemp("console") / "serve.log"
    env = {
        "DATABASE_URL": _with_database(server_url, name),
        "LOG_LEVEL": "info",
        "CHRONICLE_PROJECTION_BATCH_SIZE": "10",
        "CHRONICLE_ON_PROJECTION_ERROR": "park",
        "CHRONICLE_PROJECTION_RETRIES": "1",
    }
    server = start_server(env, log)
    try:
        yield server
    finally:
        server.stop()
        asyncio.run(_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def database_url(console_server: Server, server_url: str, template_database: str) -> str:
    return _with_database(server_url, template_database.replace("_template", "_console"))


def call(server: Server, document: str, **variables: Any) -> dict[str, Any]:
    body = httpx.post(
        server.graphql_url, json={"query": document, "variables": variables}, timeout=30
    ).json()
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


def add_product(server: Server, name: str = "Desk lamp") -> str:
    sku = f"C-{uuid.uuid4().hex[:10]}"
    product_id: str = call(server, ADD_PRODUCT, sku=sku, name=name)["addProduct"]["streamId"]
    return product_id


def caught_up(server: Server, within: float = 60) -> None:
    """Wait until every read model has applied the whole log."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        statuses = call(server, PROJECTIONS)["projections"]
        if all(s["lag"] == 0 and s["status"] == "running" for s in statuses):
            return
        time.sleep(0.1)  # the runner is another process: poll it
    raise AssertionError(f"the read models did not catch up: {statuses}")


async def seed_restocks(database_url: str, product_id: str, count: int) -> None:
    """`count` restocks of one unit, written to the product's stream in one append."""
    engine = create_engine(database_url)
    store = EventStore(engine)
    try:
        version = await store.stream_version(product_id)
        assert version is not None
        await store.append(
            [
                StreamAppend(
                    stream_id=product_id,
                    stream_type="Product",
                    expected=version[1],
                    events=[
                        NewEvent(
                            event_type="ProductRestocked",
                            data={"product_id": product_id, "quantity": 1},
                        )
                        for _ in range(count)
                    ],
                )
            ]
        )
    finally:
        await store.close()
        await engine.dispose()


def run(work: Coroutine[Any, Any, None]) -> None:
    """Run `work` to its end on a thread of its own: Playwright's sync API holds this thread's
    event loop."""
    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, work).result()


async def sql(database_url: str, statement: str) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture
def shielded(browser: Browser, console_server: Server) -> Iterator[Confined]:
    with confined(browser, console_server.url) as opened:
        yield opened
        opened.assert_clean()


def open_console(shielded: Confined, server: Server) -> Page:
    page = shielded.new_page()
    loaded = page.goto(f"{server.url}/console")
    assert loaded is not None and loaded.ok
    assert loaded.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    expect(page.get_by_role("heading", name="Chronicle console")).to_be_visible()
    expect(read_model(page, "products")).to_be_visible()
    # Open mode: an admin, so liveStats answers and the admin's buttons show.
    expect(page.locator(".live-stats .subscribers")).to_have_text(re.compile(r"^\d+$"))
    return page


def read_model(page: Page, name: str) -> Locator:
    return page.locator(f"tr[data-projection='{name}']")


def test_the_console_and_its_assets_carry_its_policy(console_server: Server) -> None:
    page = httpx.get(f"{console_server.url}/console/")
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    (script,) = re.findall(r'src="(/console/assets/[^"]+\.js)"', page.text)
    asset = httpx.get(f"{console_server.url}{script}")
    assert asset.status_code == 200
    assert asset.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "immutable" in asset.headers["cache-control"]
    assert (BUILT / script.removeprefix("/console/")).is_file()


def test_a_rebuild_started_from_the_console_runs_to_the_end_with_its_progress_shown(
    console_server: Server, database_url: str, shielded: Confined, screenshots: Screenshots
) -> None:
    product_id = add_product(console_server)
    run(seed_restocks(database_url, product_id, SEEDED))
    caught_up(console_server)
    page = open_console(shielded, console_server)
    products = read_model(page, "products")
    expect(products.locator(".lag")).to_have_text("0")
    expect(products).to_have_attribute("data-status", "running")
    page.evaluate(RECORD_PROGRESS)
    screenshots.shot(page, "caught-up")

    products.get_by_role("button", name="Rebuild").click()
    expect(products).to_have_attribute("data-status", "rebuilding")
    # Partway: a progress bar between the first and the last event.
    page.wait_for_function(
        "() => window.__progressSeen.some(v => parseInt(v) > 0 && parseInt(v) < 100)",
        timeout=30_000,
    )
    screenshots.shot(page, "rebuilding")
    expect(products).to_have_attribute("data-status", "running", timeout=60_000)
    expect(products.locator(".progress")).to_have_count(0)
    screenshots.shot(page, "rebuilt")

    seen = [int(v.rstrip("%")) for v in page.evaluate("window.__progressSeen")]
    assert len([v for v in seen if 0 < v < 100]) >= 2, seen  # it moved, and was seen moving
    assert seen == sorted(seen), seen
    # The rebuilt read model holds every restock.
    assert call(console_server, PRODUCT, id=product_id)["product"]["stockOnHand"] == 10 + SEEDED

    products.get_by_role("button", name="Verify").click()
    # A replay of the whole log in batches of 10: it takes a few seconds.
    expect(page.locator(".busy")).to_have_text("verify products…")
    expect(page.locator(".outcome")).to_have_text(
        re.compile(r"^products verified: matches a replay of the log"), timeout=60_000
    )
    screenshots.shot(page, "verified")


def test_a_parked_event_is_retried_and_another_skipped_from_the_console(
    console_server: Server, database_url: str, shielded: Confined, screenshots: Screenshots
) -> None:
    poison = f"poison_{uuid.uuid4().hex[:8]}"
    run(
        sql(
            database_url,
            f"ALTER TABLE products_view ADD CONSTRAINT {poison} "
            "CHECK (name NOT LIKE 'Poisoned%') NOT VALID",
        )
    )
    try:
        page = open_console(shielded, console_server)
        products = read_model(page, "products")
        expect(products.locator(".parked")).to_have_text("0")
        first = add_product(console_server, "Poisoned lamp")
        expect(products.locator(".parked")).to_have_text("1", timeout=30_000)
        parked = page.locator("table.parked-events tbody tr")
        expect(parked).to_have_count(1)
        expect(parked).to_contain_text("ProductAdded")
        expect(parked).to_contain_text(first)
        screenshots.shot(page, "parked")
    finally:
        run(sql(database_url, f"ALTER TABLE products_view DROP CONSTRAINT {poison}"))

    products.get_by_role("button", name="Retry parked").click()
    expect(products.locator(".parked")).to_have_text("0", timeout=30_000)
    expect(page.locator("table.parked-events")).to_have_count(0)
    assert call(console_server, PRODUCT, id=first)["product"]["name"] == "Poisoned lamp"
    screenshots.shot(page, "retried")

    run(
        sql(
            database_url,
            f"ALTER TABLE products_view ADD CONSTRAINT {poison} "
            "CHECK (name NOT LIKE 'Poisoned%') NOT VALID",
        )
    )
    try:
        second = add_product(console_server, "Poisoned chair")
        expect(products.locator(".parked")).to_have_text("1", timeout=30_000)
        row = page.locator("table.parked-events tbody tr", has_text=second)
        screenshots.shot(page, "parked-again")
        row.get_by_role("button", name="Skip").click()
        expect(products.locator(".parked")).to_have_text("0", timeout=30_000)
        screenshots.shot(page, "skipped")
    finally:
        run(sql(database_url, f"ALTER TABLE products_view DROP CONSTRAINT {poison}"))
    # Skipped: the read model never applies it.
    assert call(console_server, PRODUCT, id=second)["product"] is None


def test_the_live_tail_follows_the_log_with_filters_and_pauses_without_losing_events(
    console_server: Server, shielded: Confined, screenshots: Screenshots
) -> None:
    page = open_console(shielded, console_server)
    tail = page.locator("table.tail tbody tr")
    expect(page.locator(".tail-state")).to_have_text("live")
    # The page's own subscription is counted.
    expect(page.locator(".live-stats .subscribers")).not_to_have_text("0")
    product_id = add_product(console_server, "Tail lamp")
    expect(tail.filter(has_text="ProductAdded").filter(has_text=product_id)).to_have_count(1)
    screenshots.shot(page, "live")

    page.get_by_role("button", name="Pause").click()
    expect(page.locator(".tail-state")).to_have_text(re.compile("^paused after"))
    written = [
        call(console_server, RESTOCK, id=product_id, quantity=q)["restockProduct"]["position"]
        for q in (1, 2, 3)
    ]
    page.wait_for_timeout(500)  # long enough for a live event to have arrived, were it live
    expect(tail.filter(has_text="ProductRestocked")).to_have_count(0)
    screenshots.shot(page, "paused")
    page.get_by_role("button", name="Resume").click()
    # Each event written while paused, once, from `after` the last one shown.
    for position in written:
        expect(page.locator(f"table.tail tr[data-position='{position}']")).to_have_count(1)
    expect(tail.filter(has_text="ProductRestocked")).to_have_count(3)
    screenshots.shot(page, "resumed")

    filters = page.locator("section[aria-labelledby='tail'] form")
    filters.get_by_label("Stream type").fill("Product")
    filters.get_by_label("Event types").fill("ProductPriceChanged")
    filters.get_by_label("Stream id").fill(product_id)
    filters.get_by_role("button", name="Apply filters").click()
    expect(tail).to_have_count(0)
    call(console_server, RESTOCK, id=product_id, quantity=4)
    changed = call(console_server, PRICE, id=product_id, cents=2499)["changeProductPrice"]
    expect(page.locator(f"table.tail tr[data-position='{changed['position']}']")).to_contain_text(
        "ProductPriceChanged"
    )
    expect(tail).to_have_count(1)
    screenshots.shot(page, "filtered")


def test_the_stream_browser_shows_a_streams_events_and_its_state_at_any_version(
    console_server: Server, shielded: Confined, screenshots: Screenshots
) -> None:
    product_id = add_product(console_server, "Browsed lamp")
    for quantity in (5, 7):
        call(console_server, RESTOCK, id=product_id, quantity=quantity)
    call(console_server, PRICE, id=product_id, cents=2999)
    page = open_console(shielded, console_server)
    browser = page.locator("section[aria-labelledby='streams']")
    browser.get_by_label("Stream id").fill(product_id)
    browser.get_by_role("button", name="Open stream").click()

    events = browser.locator("table.stream-events tbody tr")
    expect(events).to_have_count(4)
    expect(events.nth(0)).to_contain_text("ProductAdded")
    expect(events.nth(3)).to_contain_text("ProductPriceChanged")
    state = browser.locator(".aggregate-state")
    expect(state).to_have_attribute("data-version", "4")
    expect(state).to_contain_text('"price_cents": 2999')
    screenshots.shot(page, "latest")

    slider = browser.locator("input[type='range']")
    slider.fill("1")
    expect(state).to_have_attribute("data-version", "1")
    expect(state).to_contain_text('"price_cents": 1999')
    expect(state).to_contain_text('"on_hand": 10')
    expect(browser.locator("output.version")).to_have_text("1")
    screenshots.shot(page, "version-1")
    events.nth(2).click()  # the second restock
    expect(state).to_have_attribute("data-version", "3")
    expect(state).to_contain_text('"on_hand": 22')  # 10 + 5 + 7
    screenshots.shot(page, "version-3")


def test_verify_shows_a_read_model_that_drifted_from_the_log(
    console_server: Server, database_url: str, shielded: Confined, screenshots: Screenshots
) -> None:
    product_id = add_product(console_server, "Drifting lamp")
    caught_up(console_server)
    tamper = f"UPDATE products_view SET on_hand = on_hand + 1 WHERE id = '{product_id}'"
    run(sql(database_url, tamper))
    try:
        page = open_console(shielded, console_server)
        read_model(page, "products").get_by_role("button", name="Verify").click()
        # (Other tests' skipped events are drift too: the replay applies them.)
        expect(page.locator(".outcome")).to_have_text(
            re.compile(r"^products drifted: (1 row differs|\d+ rows differ)$"), timeout=60_000
        )
        expect(page.locator(".drift")).to_contain_text(f"changed {product_id}")
        screenshots.shot(page, "drifted")
    finally:
        run(sql(database_url, tamper.replace("+ 1", "- 1")))
