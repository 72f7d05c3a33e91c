"""commandId over GraphQL: the same request again replays, another command under a used id is
DUPLICATE, writes nothing and tells nothing of the first."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import asyncpg
from gql.transport.exceptions import TransportQueryError

from tests.e2e.conftest import GraphQLClient, unique_email
from tests.e2e.test_commands import ADDRESS, new_product, new_user

RESULT = "{ streamId version position replayed events { type data } }"
M = {
    name: f"mutation($input: {name[0].upper() + name[1:]}Input!) {{ {name}(input: $input) {RESULT} }}"
    for name in ("registerUser", "addProduct", "createOrder", "addLineItem", "changeProductPrice")
}


async def send(client: GraphQLClient, operation: str, /, **fields: Any) -> dict[str, Any]:
    return dict((await client.execute(M[operation], input=fields))[operation])


async def refusal(client: GraphQLClient, operation: str, /, **fields: Any) -> dict[str, Any]:
    return await client.error(M[operation], input=fields)


async def written_by(db: asyncpg.Connection, command_id: str) -> int:
    return int(
        await db.fetchval(
            "SELECT count(*) FROM events WHERE metadata->>'commandId' = $1", command_id
        )
    )


def new_id() -> str:
    return f"cmd-{uuid.uuid4()}"


async def test_another_mutation_under_a_used_command_id_is_duplicate_naming_the_first(
    client: GraphQLClient, db: asyncpg.Connection
) -> None:
    command_id, email = new_id(), unique_email("secret")
    user = await send(client, "registerUser", email=email, name="Ada", age=36, commandId=command_id)
    sku = f"SKU-{uuid.uuid4().hex[:8]}"
    error = await refusal(
        client,
        "addProduct",
        sku=sku,
        name="Lamp",
        priceCents=900,
        commandId=command_id,
    )
    assert error["extensions"] == {"code": "DUPLICATE"}
    # The caller who sent the first command is told which one it was, and nothing of its input.
    assert f"already used for your RegisterUser command on {user['streamId']}" in error["message"]
    assert email not in json.dumps(error)
    assert await written_by(db, command_id) == len(user["events"])
    assert await db.fetchval("SELECT count(*) FROM events WHERE data->>'sku' = $1", sku) == 0


async def test_the_same_request_again_replays_the_first_result(client: GraphQLClient) -> None:
    command_id, email = new_id(), unique_email()
    first = await send(
        client, "registerUser", email=email, name="Ada", age=36, commandId=command_id
    )
    again = await send(
        client, "registerUser", email=email, name="Ada", age=36, commandId=command_id
    )
    assert first["replayed"] is False and again["replayed"] is True
    assert {**again, "replayed": False} == first


async def test_the_same_mutation_with_another_input_is_duplicate(
    client: GraphQLClient, db: asyncpg.Connection
) -> None:
    command_id = new_id()
    first = await send(
        client, "registerUser", email=unique_email(), name="Ada", age=36, commandId=command_id
    )
    other_email = unique_email("other")
    error = await refusal(
        client, "registerUser", email=other_email, name="Ada", age=36, commandId=command_id
    )
    assert error["extensions"] == {"code": "DUPLICATE"}
    assert f"your RegisterUser command on {first['streamId']}" in error["message"]
    assert await written_by(db, command_id) == len(first["events"])
    assert (
        await db.fetchval("SELECT count(*) FROM events WHERE data->>'email' = $1", other_email) == 0
    )


async def test_a_retry_replays_even_when_what_the_server_looked_up_has_changed(
    client: GraphQLClient,
) -> None:
    """addLineItem captures the catalog price: the fingerprint is of the client's input."""
    customer, product = await new_user(client), await new_product(client, price=1500)
    order = await send(client, "createOrder", customerId=customer, shippingAddress=ADDRESS)
    line = {
        "orderId": order["streamId"],
        "productId": product,
        "quantity": 2,
        "commandId": new_id(),
    }
    first = await send(client, "addLineItem", **line)
    await send(client, "changeProductPrice", productId=product, priceCents=1700)
    again = await send(client, "addLineItem", **line)
    assert again["replayed"] is True and again["position"] == first["position"]
    error = await refusal(client, "addLineItem", **{**line, "quantity": 3})
    assert error["extensions"] == {"code": "DUPLICATE"}


async def test_racing_requests_under_one_command_id_write_once(
    client: GraphQLClient, db: asyncpg.Connection
) -> None:
    command_id, email = new_id(), unique_email()
    same = {"email": email, "name": "Ada", "age": 36, "commandId": command_id}
    sends = [
        send(client, "registerUser", **same),
        send(client, "registerUser", **same),
        send(client, "registerUser", **{**same, "email": unique_email("b")}),
        send(
            client,
            "addProduct",
            sku=f"SKU-{uuid.uuid4().hex[:8]}",
            name="Lamp",
            priceCents=900,
            commandId=command_id,
        ),
        send(client, "registerUser", **same),
    ]
    results = await asyncio.gather(*sends, return_exceptions=True)
    done = [r for r in results if isinstance(r, dict)]
    refused = [r for r in results if isinstance(r, TransportQueryError)]
    assert len(done) + len(refused) == len(results), results
    assert len([r for r in done if not r["replayed"]]) == 1
    assert len({r["position"] for r in done}) == 1
    for error in refused:
        assert error.errors and error.errors[0]["extensions"] == {"code": "DUPLICATE"}
    if any(event["data"].get("email") == email for event in done[0]["events"]):
        assert len(done) == 3 and len(refused) == 2
    else:
        assert len(done) == 1 and len(refused) == 4
    assert await written_by(db, command_id) == len(done[0]["events"])
