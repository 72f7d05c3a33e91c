"""The example storefront served from another origin than the API, as a dev server on its own
port or `app.example.com` calling `api.example.com` would serve it: its committed build on a
plain static HTTP server, pointed at a real `chronicle serve` by `?api=`, with no rebuild. The
service lists the app's origin in CHRONICLE_ALLOWED_ORIGINS, which governs HTTP (CORS) and
websockets: the page shows live stock and an order going CONFIRMED without a reload, every
request to a host other than the app's and the API's aborted. The same build served from an
origin the service does not list is refused, visibly.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from playwright.sync_api import Browser, expect

from api.app import STOREFRONT
from tests.e2e.browser import Screenshots, confined
from tests.e2e.conftest import Server
from tests.e2e.storefront import (
    RESTOCK,
    STOREFRONT_PATH,
    add_product,
    graphql,
    open_storefront,
    serve_on_a_database_of_its_own,
)


class QuietFiles(SimpleHTTPRequestHandler):
    """Static files, without a log line per request on the test's output."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def static_site(root: Path) -> Iterator[str]:
    """Python's static file server on a free port of 127.0.0.1, serving `root`; its origin."""
    site = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietFiles, directory=root))
    thread = threading.Thread(target=site.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{site.server_address[1]}"
    finally:
        site.shutdown()
        site.server_close()
        thread.join()


@pytest.fixture(scope="module")
def site_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The build at the path it was built for (vite's `base`), as `vite preview` serves it."""
    root = tmp_path_factory.mktemp("site")
    (root / STOREFRONT_PATH.strip("/")).parent.mkdir(parents=True)
    (root / STOREFRONT_PATH.strip("/")).symlink_to(STOREFRONT, target_is_directory=True)
    return root


@pytest.fixture(scope="module")
def app_origin(site_root: Path) -> Iterator[str]:
    with static_site(site_root) as origin:
        yield origin


@pytest.fixture(scope="module")
def stranger_origin(site_root: Path) -> Iterator[str]:
    with static_site(site_root) as origin:
        yield origin


@pytest.fixture(scope="module")
def api(
    app_origin: str,
    server_url: str,
    template_database: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Server]:
    """The service, allowing the app's origin only."""
    log = tmp_path_factory.mktemp("cross-origin") / "serve.log"
    env = {"CHRONICLE_ALLOWED_ORIGINS": app_origin}
    with serve_on_a_database_of_its_own(
        server_url, template_database, "cross_origin", env, log
    ) as server:
        yield server


def app_url(origin: str, api: Server) -> str:
    return f"{origin}{STOREFRONT_PATH}/?api={quote(api.graphql_url, safe='')}"


def test_the_app_on_another_origin_shows_live_stock_and_an_order_confirmed(
    api: Server, app_origin: str, browser: Browser, screenshots: Screenshots
) -> None:
    assert app_origin != api.url
    sku, product = add_product(api, stock=5)
    with confined(browser, app_origin, api.url) as tabs:
        shop = open_storefront(tabs, screenshots, app_url(app_origin, api))
        page = shop.page
        assert urlsplit(page.url).netloc == urlsplit(app_origin).netloc
        expect(page.get_by_test_id("api")).to_have_text(api.graphql_url)
        row = shop.row(sku)
        expect(row.get_by_test_id("available")).to_have_text("5")
        shop.shot("catalog-from-another-origin")

        shop.register("Ada")
        page.get_by_role("button", name="Create order").click()
        row.get_by_label(f"Quantity of {sku}").fill("2")
        row.get_by_role("button", name="Add to order").click()
        expect(page.get_by_test_id("order-total")).to_have_text("$39.98")
        shop.shot("draft-order")

        page.get_by_role("button", name="Place order").click()
        expect(page.get_by_test_id("order-status")).to_have_text("CONFIRMED")
        expect(row.get_by_test_id("available")).to_have_text("3")
        shop.shot("confirmed")

        graphql(api, RESTOCK, id=product, quantity=10)
        expect(row.get_by_test_id("on-hand")).to_have_text("15")
        expect(row.get_by_test_id("available")).to_have_text("13")
        shop.shot("restocked")

        # The page came from the app's origin; its API calls (queries by GET, mutations by
        # POST, after a preflight Playwright does not report) went to the service's, each
        # answer carrying the app's origin; and so did its websocket.
        calls = [r for r in tabs.requests if r.url.startswith(api.graphql_url)]
        assert {r.method for r in calls} == {"GET", "POST"}, [r.method for r in calls]
        answers = [a for a in (r.response() for r in calls) if a is not None]
        allowed = [a.headers.get("access-control-allow-origin") for a in answers]
        assert allowed and set(allowed) == {app_origin}, allowed
        # The others were queries urql gave up when a newer position made them stale.
        unanswered = {r.failure for r in calls if r.response() is None}
        assert unanswered <= {"net::ERR_ABORTED"}, unanswered
        assert {urlsplit(s.url).netloc for s in tabs.sockets} == {urlsplit(api.url).netloc}
        assert {urlsplit(r.url).netloc for r in tabs.requests} == {
            urlsplit(app_origin).netloc,
            urlsplit(api.url).netloc,
        }
        shop.assert_clean()


def test_an_origin_the_service_does_not_allow_is_refused_visibly(
    api: Server, stranger_origin: str, browser: Browser, screenshots: Screenshots
) -> None:
    sku, _ = add_product(api, stock=5)
    with confined(browser, stranger_origin, api.url) as tabs:
        shop = open_storefront(tabs, screenshots, app_url(stranger_origin, api), live=False)
        page = shop.page
        refusal = page.get_by_role("alert").filter(has_text="the service cannot be reached")
        expect(refusal.first).to_contain_text("Failed to fetch")
        expect(shop.row(sku)).to_have_count(0)
        # The browser says why: the preflight got no allow header, and the websocket's
        # handshake was refused (the service checks a browser's Origin there too).
        deadline = time.monotonic() + 10
        while not (
            any("blocked by CORS policy" in e for e in tabs.console_errors)
            and any("WebSocket connection" in e for e in tabs.console_errors)
        ):
            assert time.monotonic() < deadline, tabs.console_errors
            page.wait_for_timeout(50)
        expect(page.get_by_test_id("connection")).not_to_have_text("live")
        expect(
            page.get_by_text("Stock is not live: the service cannot be reached")
        ).to_contain_text("the websocket could not connect")
        shop.shot("refused")
        assert tabs.blocked == []
