"""CPU per GraphQL request in the schema: the service's document cache against the baseline.

(a) baseline: the schema as it was configured before, strawberry's `QueryDepthLimiter`,
    `MaxTokensLimiter`, `MaxAliasesLimiter`, `ParserCache` and `ValidationCache` as
    per-request factories: the limiters build new rule classes per request, so the
    validation cache never hits and every request is validated afresh;
(b) service: `build_schema` (api/documents.py): the rules built once, each document parsed and
    validated once.

Both execute the same documents in one process, interleaved over several rounds: an
introspection query that runs to the end without a database, and the service's own order
query whose first resolver fails without one (both sides pay the same execution). Prints the
CPU time per request and the ratio b/a; also the memory each keeps after a flood of unique
200 kB documents (tracemalloc).

    python -m benchmarks.request [--requests 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import statistics
import time
import tracemalloc
from typing import Any

import strawberry
from strawberry.extensions import (
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig

from api.errors import ErrorCodes
from api.scalars import SCALARS
from api.schema import ChronicleSchema, Mutation, Query, build_schema
from api.settings import Settings
from api.subscriptions import Subscription

INTROSPECTION = """query { __type(name: "Order") { name kind description
  fields { name description args { name type { name kind ofType { name kind } } }
           type { name kind ofType { name kind ofType { name kind } } } } } }"""
ORDER = """query($id: ID!, $min: Position) { order(id: $id, minPosition: $min) {
  id customerId status totalCents paidCents carrier trackingNumber signedBy rejectionReason
  cancellationReason version createdAt updatedAt
  customer { id name }
  shippingAddress { line1 line2 city postalCode country }
  items { productId sku name quantity unitPriceCents lineTotalCents product { id priceCents } }
} }"""


def baseline_schema(settings: Settings) -> strawberry.Schema:
    """The schema with strawberry's own limiters and caches, as configured before."""
    extensions: list[Any] = [
        ErrorCodes,
        lambda: QueryDepthLimiter(max_depth=settings.max_query_depth),
        lambda: MaxTokensLimiter(max_token_count=settings.max_query_tokens),
        lambda: MaxAliasesLimiter(max_alias_count=settings.max_aliases),
        lambda: ParserCache(maxsize=256),
        lambda: ValidationCache(maxsize=256),
    ]
    return ChronicleSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
        config=StrawberryConfig(scalar_map=SCALARS),
    )


async def cpu_per_request(schema: strawberry.Schema, document: str, requests: int) -> float:
    variables = {"id": "order-1"}
    await schema.execute(document, variable_values=variables)  # warm
    started = time.process_time()
    for _ in range(requests):
        await schema.execute(document, variable_values=variables)
    return (time.process_time() - started) / requests


async def kept_after_flood(schema: strawberry.Schema, documents: int) -> int:
    """Bytes still allocated after `documents` unique 200 kB documents (whitespace-padded)."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for n in range(documents):
        head = f"# flood {n}\n"
        await schema.execute(head + " " * 200_000 + "{ __typename }")
    gc.collect()
    kept = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return kept


async def main(requests: int, rounds: int) -> None:
    logging.getLogger("chronicle.errors").setLevel(logging.CRITICAL)
    # Introspection open to all, as the baseline had it: the document runs to its end on both.
    settings = Settings(introspection_public=True)
    baseline, service = baseline_schema(settings), build_schema(settings)
    for name, document in (("introspection", INTROSPECTION), ("order query", ORDER)):
        base: list[float] = []
        ours: list[float] = []
        for _ in range(rounds):
            base.append(await cpu_per_request(baseline, document, requests))
            ours.append(await cpu_per_request(service, document, requests))
        a, b = statistics.median(base), statistics.median(ours)
        print(
            f"{name:<14} baseline {a * 1e6:8.0f} us/request   service {b * 1e6:8.0f} us/request"
            f"   ratio b/a {b / a:.2f}"
        )
    flood = 300
    a_kept = await kept_after_flood(baseline_schema(settings), flood)
    b_kept = await kept_after_flood(build_schema(settings), flood)
    print(
        f"kept after {flood} unique 200 kB documents: baseline {a_kept / 2**20:.1f} MiB,"
        f" service {b_kept / 2**20:.1f} MiB"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.rounds))
