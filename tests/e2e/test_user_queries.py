"""User queries end to end, reading their own writes with minPosition (no sleeps)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from tests.e2e.conftest import GraphQLClient, unique_email
from tests.e2e.test_users import REGISTER, UPDATE

USER = """
query($id: ID!, $min: Position) {
  user(id: $id, minPosition: $min) { id email name age ageGroup version createdAt updatedAt }
}
"""
USERS = """
query($first: Int, $after: String, $search: String, $minAge: Int, $maxAge: Int, $group: AgeGroup, $min: Position) {
  users(first: $first, after: $after, search: $search, minAge: $minAge, maxAge: $maxAge, ageGroup: $group, minPosition: $min) {
    totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id name age ageGroup } }
  }
}
"""
SUMMARY = """
query($min: Position) {
  userSummary(minPosition: $min) { totalUsers averageAge usersByAgeGroup { ageGroup count } }
}
"""
PROJECTIONS = "{ projections { name position lag status updatedAt } }"


async def register(client: GraphQLClient, **fields: Any) -> dict[str, Any]:
    values = {"email": unique_email(), "name": "Someone", "age": 30, **fields}
    return dict((await client.execute(REGISTER, input=values))["registerUser"])


async def test_a_registered_user_is_readable_at_its_position(client: GraphQLClient) -> None:
    email = unique_email()
    result = await register(client, email=email, name="Katherine Johnson", age=17)
    user = (await client.execute(USER, id=result["streamId"], min=result["position"]))["user"]
    assert user["email"] == email
    assert (user["name"], user["age"], user["ageGroup"], user["version"]) == (
        "Katherine Johnson",
        17,
        "TEEN",
        1,
    )

    update = (await client.execute(UPDATE, input={"userId": result["streamId"], "age": 70}))[
        "updateUser"
    ]
    user = (await client.execute(USER, id=result["streamId"], min=update["position"]))["user"]
    assert (user["age"], user["ageGroup"], user["version"]) == (70, "SENIOR", 2)
    assert (await client.execute(USER, id=str(uuid.uuid4())))["user"] is None


async def test_users_search_filters_and_pages(client: GraphQLClient) -> None:
    tag = uuid.uuid4().hex[:8]
    results = [await register(client, name=f"Zebulon{tag} Number{i}", age=20 + i) for i in range(5)]
    last = max(int(r["position"]) for r in results)
    first = (await client.execute(USERS, search=f"zebulon{tag}", first=2, min=str(last)))["users"]
    assert first["totalCount"] == 5
    assert first["pageInfo"]["hasNextPage"] is True
    names = [e["node"]["name"] for e in first["edges"]]
    cursor = first["pageInfo"]["endCursor"]
    while cursor:
        page = (await client.execute(USERS, search=f"zebulon{tag}", first=2, after=cursor))["users"]
        names += [e["node"]["name"] for e in page["edges"]]
        cursor = page["pageInfo"]["endCursor"] if page["pageInfo"]["hasNextPage"] else None
    assert names == [f"Zebulon{tag} Number{i}" for i in range(5)]
    ranged = (await client.execute(USERS, search=f"zebulon{tag}", minAge=21, maxAge=23))["users"]
    assert [e["node"]["age"] for e in ranged["edges"]] == [21, 22, 23]
    adults = (await client.execute(USERS, search=f"number4 zebulon{tag}", group="ADULT"))["users"]
    assert [e["node"]["age"] for e in adults["edges"]] == [24]


async def test_the_summary_counts_every_registration(client: GraphQLClient) -> None:
    before = (await client.execute(SUMMARY))["userSummary"]
    results = await asyncio.gather(*(register(client, age=age) for age in (14, 40, 80)))
    last = max(int(r["position"]) for r in results)
    after = (await client.execute(SUMMARY, min=str(last)))["userSummary"]
    assert after["totalUsers"] == before["totalUsers"] + 3
    counts = {g["ageGroup"]: g["count"] for g in after["usersByAgeGroup"]}
    old = {g["ageGroup"]: g["count"] for g in before["usersByAgeGroup"]}
    assert {k: counts[k] - old[k] for k in counts} == {"TEEN": 1, "ADULT": 1, "SENIOR": 1}


async def test_projections_report_their_position_and_lag(client: GraphQLClient) -> None:
    result = await register(client)
    await client.execute(USER, id=result["streamId"], min=result["position"])
    statuses = {p["name"]: p for p in (await client.execute(PROJECTIONS))["projections"]}
    assert {"users", "user_summary"} <= statuses.keys()
    assert statuses["users"]["status"] == "running"
    assert int(statuses["users"]["position"]) >= int(result["position"]) - 1


async def test_bad_read_arguments_are_validation_errors(client: GraphQLClient) -> None:
    assert await client.code(USERS, first=101) == "VALIDATION_FAILED"
    assert await client.code(USERS, first=0) == "VALIDATION_FAILED"
    assert await client.code(USERS, after="not-a-cursor") == "VALIDATION_FAILED"
    assert await client.code(USERS, after="WyJ4Il0=") == "VALIDATION_FAILED"
    assert await client.code(USER, id="x", min="-1") == "VALIDATION_FAILED"
    assert await client.code(SUMMARY, min="abc") == "VALIDATION_FAILED"
    assert await client.code(SUMMARY, min="999999999999") == "VALIDATION_FAILED"


async def test_a_slow_transaction_during_concurrent_registrations_loses_no_user(
    client: GraphQLClient, e2e_database_url: str
) -> None:
    import asyncpg

    before = (await client.execute(SUMMARY))["userSummary"]["totalUsers"]
    slow = await asyncpg.connect(e2e_database_url)
    try:
        await slow.execute("BEGIN")
        slow_id = str(uuid.uuid4())
        await slow.fetchval(
            "SELECT position FROM append_to_streams($1, '{User}', '{0}', $2, '{1}', '{1}', "
            "'{UserRegistered}', '{1}', ARRAY[$3::text]::jsonb[], '{}'::jsonb, NULL, NULL, NULL)",
            [slow_id],
            [uuid.uuid4()],
            f'{{"user_id": "{slow_id}", "email": "slow@example.com", "name": "Slow", "age": 50}}',
        )
        results = await asyncio.gather(*(register(client) for _ in range(20)))
        last = max(int(r["position"]) for r in results)
        # The open transaction holds the feed back: the summary cannot reach the later writes.
        assert await client.code(SUMMARY, min=str(last)) == "STALE_READ_TIMEOUT"
        await slow.execute("COMMIT")
    finally:
        await slow.close()
    after = (await client.execute(SUMMARY, min=str(last)))["userSummary"]["totalUsers"]
    assert after == before + 21
