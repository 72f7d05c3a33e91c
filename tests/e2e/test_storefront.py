"""The example frontend (examples/storefront, urql and graphql-ws) in a real Chromium, served by
the service at /examples/storefront: an order watched live to CONFIRMED, stock that changes
live, posts whose likes and comments arrive live, the token on both transports, and nothing
loaded from another origin. test_storefront_cross_origin.py serves the same build from another
origin.

tests/e2e/browser.py launches Debian's Chromium and keeps a screenshot of each step in
test-artifacts/screenshots/<test name>/.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Request, expect

from api.app import STOREFRONT, example_routes
from tests.e2e.browser import Screenshots, confined
from tests.e2e.conftest import Server, unique_email
from tests.e2e.storefront import (
    REGISTER,
    RESTOCK,
    STOREFRONT_PATH,
    Storefront,
    add_product,
    graphql,
    open_storefront,
    serve_on_a_database_of_its_own,
)

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
    log = tmp_path_factory.mktemp("storefront") / "serve.log"
    with serve_on_a_database_of_its_own(
        server_url, template_database, "storefront", {}, log
    ) as server:
        yield server


@pytest.fixture
def storefront(
    storefront_server: Server, browser: Browser, screenshots: Screenshots
) -> Iterator[Storefront]:
    with confined(browser, storefront_server.url) as tabs:
        # No trailing slash, as a person types it: the mount redirects to the folder.
        yield open_storefront(tabs, screenshots, f"{storefront_server.url}{STOREFRONT_PATH}")


def test_an_order_goes_confirmed_and_the_stock_changes_live(
    storefront_server: Server, storefront: Storefront
) -> None:
    sku, product = add_product(storefront_server, stock=5)
    page = storefront.page
    row = storefront.row(sku)
    expect(row.get_by_test_id("available")).to_have_text("5")
    storefront.shot("catalog")

    storefront.register("Ada")
    page.get_by_role("button", name="Create order").click()
    expect(page.get_by_test_id("order-status")).to_have_text("DRAFT")
    row.get_by_label(f"Quantity of {sku}").fill("2")
    row.get_by_role("button", name="Add to order").click()
    expect(page.get_by_test_id("order-items")).to_contain_text(f"2 × Desk lamp ({sku})")
    expect(page.get_by_test_id("order-total")).to_have_text("$39.98")
    storefront.shot("draft-order")

    page.get_by_role("button", name="Place order").click()
    # placeOrder answers at PLACED; CONFIRMED comes from the fulfilment process, pushed by
    # orderChanged (the page asked for nothing more).
    expect(page.get_by_test_id("order-status")).to_have_text("CONFIRMED")
    expect(page.get_by_test_id("order-timeline")).to_have_text(re.compile(r"CONFIRMED$"))
    # The reservation reaches the catalog by the `events` subscription.
    expect(row.get_by_test_id("reserved")).to_have_text("2")
    expect(row.get_by_test_id("available")).to_have_text("3")
    storefront.shot("confirmed")

    graphql(storefront_server, RESTOCK, id=product, quantity=10)
    expect(row.get_by_test_id("on-hand")).to_have_text("15")
    expect(row.get_by_test_id("available")).to_have_text("13")
    storefront.shot("restocked")
    storefront.assert_clean()


def test_an_order_beyond_the_stock_goes_rejected_live(
    storefront_server: Server, storefront: Storefront
) -> None:
    sku, _ = add_product(storefront_server, stock=1)
    page = storefront.page
    storefront.register("Grace")
    page.get_by_role("button", name="Create order").click()
    storefront.row(sku).get_by_label(f"Quantity of {sku}").fill("3")
    storefront.row(sku).get_by_role("button", name="Add to order").click()
    expect(page.get_by_test_id("order-items")).to_contain_text(sku)
    storefront.shot("draft-order")
    page.get_by_role("button", name="Place order").click()
    expect(page.get_by_test_id("order-status")).to_have_text("REJECTED")
    expect(page.get_by_text(f"not enough stock of {sku}")).to_be_visible()
    expect(storefront.row(sku).get_by_test_id("available")).to_have_text("1")
    storefront.shot("rejected")
    storefront.assert_clean()


def test_posts_likes_and_comments_arrive_live(
    storefront_server: Server, storefront: Storefront
) -> None:
    page = storefront.page
    storefront.register("Linus")
    other = graphql(storefront_server, REGISTER, email=unique_email("poster"), name="Margaret")
    author = other["registerUser"]["streamId"]

    message = f"Fresh lamps in stock {uuid.uuid4().hex[:6]}"
    created = graphql(storefront_server, CREATE_POST, author=author, message=message)
    post_id = created["createPost"]["streamId"]
    card = storefront.post(message)
    expect(card).to_contain_text("by Margaret")
    expect(card.get_by_test_id("like-count")).to_have_text("0")
    storefront.shot("post-arrived")

    # From the page: a post of our own, and a like, read back at their positions.
    page.get_by_label("New post").fill("Mine")
    page.get_by_role("button", name="Post", exact=True).click()
    expect(storefront.post("Mine")).to_contain_text("by Linus")
    card.get_by_role("button", name="Like").click()
    expect(card.get_by_test_id("like-count")).to_have_text("1")
    expect(card.get_by_role("button", name="Unlike")).to_be_visible()
    storefront.shot("own-post-and-like")

    # From elsewhere: pushed by postChanged.
    graphql(storefront_server, LIKE, post=post_id, user=author)
    expect(card.get_by_test_id("like-count")).to_have_text("2")
    graphql(storefront_server, COMMENT, post=post_id, user=author, text="Bright and quiet")
    expect(card.get_by_test_id("comments")).to_have_text("Margaret: Bright and quiet")
    storefront.shot("like-and-comment-arrived")
    card.get_by_label("Comment").fill("Ordered two")
    card.get_by_role("button", name="Comment").click()
    expect(card.get_by_test_id("comments")).to_contain_text("Linus: Ordered two")
    storefront.shot("own-comment")
    storefront.assert_clean()


def test_a_token_goes_on_every_request_and_in_connection_init(
    storefront_server: Server, storefront: Storefront
) -> None:
    """Open mode ignores tokens, so this checks what the app sends: a secured service reads
    `Authorization: Bearer` on HTTP and in the graphql-ws connection_init payload."""
    page = storefront.page
    first_init = storefront.first_frame(storefront.browser.sockets[0])
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
    storefront.shot("token-in-use")
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
