"""Users end to end: mutations, refusals with their codes, retries, idempotency, time travel."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from tests.e2e.conftest import GraphQLClient, unique_email

REGISTER = """
mutation Register($input: RegisterUserInput!) {
  registerUser(input: $input) {
    streamId version position replayed
    events { position eventId streamId streamType version type schemaVersion data metadata recordedAt }
  }
}
"""
UPDATE = """
mutation Update($input: UpdateUserInput!) {
  updateUser(input: $input) { streamId version position events { type data version } }
}
"""
STATE = """
query State($id: ID!, $version: Int, $asOf: DateTime) {
  aggregateState(streamId: $id, version: $version, asOf: $asOf) { streamId streamType version state }
}
"""
EVENTS = """
query Events($after: Position, $first: Int, $streamId: ID, $streamType: String, $types: [String!]) {
  events(after: $after, first: $first, streamId: $streamId, streamType: $streamType, types: $types) {
    position streamId version type data
  }
}
"""


async def register(client: GraphQLClient, **overrides: Any) -> dict[str, Any]:
    fields = {"email": unique_email(), "name": "Ada Lovelace", "age": 36, **overrides}
    result = await client.execute(REGISTER, input=fields)
    return dict(result["registerUser"])


async def event_count(db: asyncpg.Connection) -> int:
    return int(await db.fetchval("SELECT count(*) FROM events"))


async def test_register_user_returns_its_events(client: GraphQLClient) -> None:
    email = unique_email("Ada")
    result = await register(client, email=email)
    assert result["version"] == 1
    assert result["replayed"] is False
    user_event = next(e for e in result["events"] if e["type"] == "UserRegistered")
    assert user_event["streamId"] == result["streamId"]
    assert user_event["data"] == {
        "user_id": result["streamId"],
        "email": email,
        "name": "Ada Lovelace",
        "age": 36,
        "subject": None,  # open mode binds no token subject
    }
    assert user_event["metadata"]["actor"] == "open-mode"
    assert user_event["metadata"]["roles"] == ["admin"]
    assert isinstance(result["position"], str) and int(result["position"]) >= int(
        user_event["position"]
    )


async def test_update_user_changes_name_and_age(client: GraphQLClient) -> None:
    user = await register(client)
    updated = await client.execute(
        UPDATE, input={"userId": user["streamId"], "name": "Countess", "age": 37}
    )
    assert updated["updateUser"]["version"] == 2
    assert updated["updateUser"]["events"] == [
        {
            "type": "UserUpdated",
            "data": {"user_id": user["streamId"], "name": "Countess", "age": 37},
            "version": 2,
        }
    ]
    state = await client.execute(STATE, id=user["streamId"])
    assert state["aggregateState"]["state"]["name"] == "Countess"
    assert state["aggregateState"]["version"] == 2


async def test_an_update_that_changes_nothing_writes_nothing(
    client: GraphQLClient, db: asyncpg.Connection
) -> None:
    user = await register(client, age=40)
    before = await event_count(db)
    result = await client.execute(UPDATE, input={"userId": user["streamId"], "age": 40})
    assert result["updateUser"]["events"] == []
    assert result["updateUser"]["version"] == 1
    assert await event_count(db) == before


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"name": ""}, "VALIDATION_FAILED"),
        ({"name": "   "}, "VALIDATION_FAILED"),
        ({"age": 7}, "VALIDATION_FAILED"),
        ({"age": 151}, "VALIDATION_FAILED"),
        ({"email": "not-an-email"}, "VALIDATION_FAILED"),
        ({"commandId": ""}, "VALIDATION_FAILED"),
    ],
)
async def test_bad_registrations_are_refused_and_write_nothing(
    client: GraphQLClient, db: asyncpg.Connection, fields: dict[str, Any], code: str
) -> None:
    before = await event_count(db)
    document = {"email": unique_email(), "name": "Ada", "age": 30, **fields}
    assert await client.code(REGISTER, input=document) == code
    assert await event_count(db) == before


async def test_a_duplicate_email_in_any_letter_case_is_refused(
    client: GraphQLClient, db: asyncpg.Connection
) -> None:
    email = unique_email("Grace")
    await register(client, email=email)
    before = await event_count(db)
    error = await client.error(REGISTER, input={"email": email.upper(), "name": "G", "age": 30})
    assert error["extensions"]["code"] == "DUPLICATE"
    assert await event_count(db) == before


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"userId": "00000000-0000-0000-0000-000000000000", "age": 30}, "NOT_FOUND"),
        ({"age": 7}, "VALIDATION_FAILED"),
        ({"name": ""}, "VALIDATION_FAILED"),
        ({}, "VALIDATION_FAILED"),
        ({"age": 50, "expectedVersion": 5}, "CONCURRENCY_CONFLICT"),
        ({"age": 50, "expectedVersion": -1}, "VALIDATION_FAILED"),
    ],
)
async def test_bad_updates_are_refused_and_write_nothing(
    client: GraphQLClient, db: asyncpg.Connection, fields: dict[str, Any], code: str
) -> None:
    user = await register(client)
    before = await event_count(db)
    assert await client.code(UPDATE, input={"userId": user["streamId"], **fields}) == code
    assert await event_count(db) == before


async def test_a_stale_expected_version_is_a_conflict(
    client: GraphQLClient, db: asyncpg.Connection
) -> None:
    user = await register(client)
    await client.execute(
        UPDATE, input={"userId": user["streamId"], "age": 50, "expectedVersion": 1}
    )
    before = await event_count(db)
    error = await client.error(
        UPDATE, input={"userId": user["streamId"], "age": 51, "expectedVersion": 1}
    )
    assert error["extensions"]["code"] == "CONCURRENCY_CONFLICT"
    assert error["extensions"]["actualVersion"] == 2
    assert await event_count(db) == before


async def test_concurrent_updates_without_expected_version_all_succeed(
    client: GraphQLClient,
) -> None:
    user = await register(client)
    results = await asyncio.gather(
        *(
            client.execute(UPDATE, input={"userId": user["streamId"], "age": 20 + i})
            for i in range(16)
        )
    )
    assert sorted(r["updateUser"]["version"] for r in results) == list(range(2, 18))
    state = await client.execute(STATE, id=user["streamId"])
    assert state["aggregateState"]["version"] == 1 + 16


async def test_the_same_command_id_twice_returns_the_first_result(
    client: GraphQLClient, db: asyncpg.Connection
) -> None:
    fields = {"email": unique_email(), "name": "Ada", "age": 30, "commandId": unique_email("cmd")}
    first = (await client.execute(REGISTER, input=fields))["registerUser"]
    after_first = await event_count(db)
    second = (await client.execute(REGISTER, input=fields))["registerUser"]
    assert second["replayed"] is True
    assert {k: v for k, v in second.items() if k != "replayed"} == {
        k: v for k, v in first.items() if k != "replayed"
    }
    assert await event_count(db) == after_first


async def test_fields_outside_the_input_type_are_refused(client: GraphQLClient) -> None:
    document = """mutation { registerUser(input: {email: "a@b.co", name: "A", age: 30, isAdmin: true}) { version } }"""
    assert await client.code(document) == "VALIDATION_FAILED"


async def test_oversized_documents_are_refused(client: GraphQLClient) -> None:
    huge = (
        "query { " + " ".join(f"a{i}: events(first: 1) {{ position }}" for i in range(400)) + " }"
    )
    error = await client.error(huge)
    assert error["extensions"]["code"] == "VALIDATION_FAILED"


async def test_time_travel_by_version_and_by_time(client: GraphQLClient) -> None:
    user = await register(client, age=30)
    first = (await client.execute(STATE, id=user["streamId"]))["aggregateState"]
    registered_at = user["events"][0]["recordedAt"]
    await client.execute(UPDATE, input={"userId": user["streamId"], "age": 31})
    await client.execute(UPDATE, input={"userId": user["streamId"], "age": 32})

    at_v2 = (await client.execute(STATE, id=user["streamId"], version=2))["aggregateState"]
    assert (at_v2["version"], at_v2["state"]["age"]) == (2, 31)
    latest = (await client.execute(STATE, id=user["streamId"]))["aggregateState"]
    assert (latest["version"], latest["state"]["age"]) == (3, 32)
    as_of = (await client.execute(STATE, id=user["streamId"], asOf=registered_at))["aggregateState"]
    assert as_of == first
    before_it_existed = await client.execute(
        STATE, id=user["streamId"], asOf="2000-01-01T00:00:00Z"
    )
    assert before_it_existed["aggregateState"] is None
    assert await client.code(STATE, id=user["streamId"], version=9) == "VALIDATION_FAILED"
    assert (await client.execute(STATE, id="no-such-stream"))["aggregateState"] is None


async def test_the_events_query_reads_the_log_in_order_with_filters(client: GraphQLClient) -> None:
    user = await register(client)
    await client.execute(UPDATE, input={"userId": user["streamId"], "age": 99})
    # The log is gap-safe across the cluster: any transaction still open anywhere holds the
    # newest events back for a moment.
    async with asyncio.timeout(10):
        while len(mine := (await client.execute(EVENTS, streamId=user["streamId"]))["events"]) < 2:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    assert [(e["type"], e["version"]) for e in mine] == [("UserRegistered", 1), ("UserUpdated", 2)]
    after = (await client.execute(EVENTS, after=mine[0]["position"], streamId=user["streamId"]))[
        "events"
    ]
    assert [e["type"] for e in after] == ["UserUpdated"]
    typed = (await client.execute(EVENTS, types=["UserUpdated"], streamType="User", first=1000))[
        "events"
    ]
    assert typed and all(e["type"] == "UserUpdated" for e in typed)
    assert await client.code(EVENTS, first=0) == "VALIDATION_FAILED"
    assert await client.code(EVENTS, after="-3") == "VALIDATION_FAILED"
    assert await client.code(EVENTS, after="99999999999") == "VALIDATION_FAILED"
