"""A user's audit log is exactly the events of the streams they own, in feed order, checked
against the log itself; and a read of it never passes over a stream the owners read model has
not recorded yet (issue 13, item 4)."""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from starlette.requests import Request

from api.app import services
from api.auth import OPEN_MODE, Identity
from api.context import Context, Services
from api.loaders import Loaders
from api.schema import ChronicleSchema, build_schema
from api.settings import Settings
from domain import orders, posts, users
from domain.decider import owner_fields
from domain.errors import RuleViolated
from store.events import FEED_START, RecordedEvent
from tests.visibility import until_all_visible

EVENTS = """query($after: Position, $first: Int) {
  events(after: $after, first: $first) { position streamId streamType }
}"""
ADDRESS = orders.Address(line1="1 St", city="C", postal_code="1", country="US")


@pytest.fixture
async def built(database_url: str) -> AsyncIterator[Services]:
    settings = Settings(database_url=database_url, run_projections=False, stale_read_timeout=0.3)
    async with services(settings) as built:
        yield built


async def run(
    schema: ChronicleSchema, built: Services, identity: Identity, **variables: Any
) -> Any:
    context = Context(
        services=built,
        loaders=Loaders.for_request(built.engine),
        request=Request({"type": "http", "headers": [], "method": "POST"}),
        identity=identity,
    )
    return await schema.execute(EVENTS, variable_values=variables, context_value=context)


async def page_through(
    schema: ChronicleSchema, built: Services, identity: Identity, rng: random.Random
) -> list[int]:
    """Every event the caller may read, in pages of random sizes."""
    seen: list[int] = []
    after = 0
    while True:
        result = await run(schema, built, identity, after=after, first=rng.randint(1, 7))
        assert result.errors is None, result.errors
        page = [int(event["position"]) for event in result.data["events"]]
        if not page:
            return seen
        seen.extend(page)
        after = page[-1]


async def project_everything(built: Services) -> None:
    await until_all_visible(built.store)
    while await built.runner.run_once():
        pass


async def whole_feed(built: Services) -> list[RecordedEvent]:
    events: list[RecordedEvent] = []
    after = FEED_START
    while batch := await built.store.read_feed(after, limit=500):
        events.extend(batch)
        after = batch[-1].checkpoint
    return events


def owners_in(built: Services, log: list[RecordedEvent]) -> dict[str, str | None]:
    """Each stream's owner, from its first event: the truth the read model is checked by."""
    fields = owner_fields(r.decider for r in built.aggregates.registrations)
    return {
        event.stream_id: event.data.get(fields.get(event.event_type, ""))
        for event in log
        if event.version == 1
    }


@pytest.mark.parametrize("seed", [3, 17, 2024])
async def test_each_user_reads_exactly_the_events_of_the_streams_they_own(
    built: Services, seed: int
) -> None:
    rng = random.Random(seed)
    handler = built.handler
    subjects = ["alpha", "beta", "gamma", None]
    user_subjects: dict[str, str | None] = {}
    order_ids: list[str] = []
    post_ids: list[str] = []
    for step in range(120):
        kind = rng.choice(["user", "order", "order", "cancel", "post", "like", "update"])
        if kind == "user" or not user_subjects:
            user_id = f"u{step}"
            # A subject holds one user: taken subjects register users bound to none.
            free = [s for s in subjects if s is None or s not in user_subjects.values()]
            subject = rng.choice(free)
            user_subjects[user_id] = subject
            command = users.RegisterUser(
                user_id=user_id, email=f"{user_id}@example.com", name="N", age=30, subject=subject
            )
            await handler.handle(users.DECIDER, user_id, command)
        elif kind == "order":
            customer = rng.choice(sorted(user_subjects))
            order_id = f"o{step}"
            order_ids.append(order_id)
            created = orders.CreateOrder(
                order_id=order_id,
                customer_id=customer,
                customer_exists=True,
                shipping_address=ADDRESS,
                customer_subject=user_subjects[customer],
            )
            await handler.handle(orders.DECIDER, order_id, created)
        elif kind == "cancel" and order_ids:
            order_id = order_ids.pop(rng.randrange(len(order_ids)))
            cancel = orders.CancelOrder(order_id=order_id, reason="no")
            await handler.handle(orders.DECIDER, order_id, cancel)
        elif kind == "post":
            author = rng.choice(sorted(user_subjects))
            post_id = f"p{step}"
            post_ids.append(post_id)
            post = posts.CreatePost(
                post_id=post_id,
                author_id=author,
                author_exists=True,
                message="hi",
                author_subject=user_subjects[author],
            )
            await handler.handle(posts.DECIDER, post_id, post)
        elif kind == "like" and post_ids:
            post_id = rng.choice(post_ids)
            liker = rng.choice(sorted(user_subjects))
            like = posts.LikePost(post_id=post_id, user_id=liker, user_exists=True)
            with contextlib.suppress(RuleViolated):  # liked already
                await handler.handle(posts.DECIDER, post_id, like)
        elif kind == "update":
            user_id = rng.choice(sorted(user_subjects))
            update = users.UpdateUser(user_id=user_id, age=rng.randint(13, 99))
            await handler.handle(users.DECIDER, user_id, update)
    await project_everything(built)

    schema = build_schema(built.settings)
    log = await whole_feed(built)
    owner = owners_in(built, log)
    for subject in ("alpha", "beta", "gamma", "nobody"):
        identity = Identity(subject=subject, roles=frozenset({"user"}))
        truth = [e.position for e in log if owner[e.stream_id] == subject]
        assert await page_through(schema, built, identity, rng) == truth, subject
    # Admins read everything but the claims, which nobody does.
    public = [e.position for e in log if e.stream_type != "UniqueKey"]
    assert len(public) < len(log)
    assert await page_through(schema, built, OPEN_MODE, rng) == public


async def test_a_read_never_passes_over_a_stream_the_owners_model_has_not_recorded(
    built: Services,
) -> None:
    handler = built.handler
    register = users.RegisterUser(
        user_id="u1", email="u1@example.com", name="N", age=30, subject="ada"
    )
    await handler.handle(users.DECIDER, "u1", register)
    await project_everything(built)
    recorded = await built.store.feed_head()
    # A new stream of Ada's, then a later event of a stream the read model knows: unprojected.
    created = orders.CreateOrder(
        order_id="o1",
        customer_id="u1",
        customer_exists=True,
        shipping_address=ADDRESS,
        customer_subject="ada",
    )
    await handler.handle(orders.DECIDER, "o1", created)
    await handler.handle(users.DECIDER, "u1", users.UpdateUser(user_id="u1", age=31))
    await until_all_visible(built.store)
    ada = Identity(subject="ada", roles=frozenset({"user"}))
    schema = build_schema(built.settings)

    # The read model lags: the answer is a refusal to retry, never a page that has the user's
    # update but skipped the order before it.
    lagging = await run(schema, built, ada, after=0)
    assert lagging.errors and lagging.errors[0].extensions["code"] == "STALE_READ_TIMEOUT"
    # The store's half of it: a read bounded by the read model's checkpoint stops there.
    bounded = await built.store.read_feed(FEED_START, stream_ids=["u1"], until=recorded)
    assert [e.version for e in bounded] == [1]

    await project_everything(built)
    result = await run(schema, built, ada, after=0)
    assert result.errors is None, result.errors
    assert [(e["streamId"]) for e in result.data["events"]] == ["u1", "o1", "u1"]
    stranger = replace(ada, subject="bob")
    assert (await run(schema, built, stranger, after=0)).data == {"events": []}
