"""GraphQL over HTTP as its spec says (graphql.github.io/graphql-over-http/draft), and
subscriptions streamed over HTTP for clients that cannot open a websocket.

The response's media type is negotiated from `Accept`:

- `application/graphql-response+json` when the client accepts it (preferred at equal `q`): a
  request error (the document does not parse or validate, a variable does not coerce, no
  operation of that name, or a refusal before anything ran) has no `data` entry and a 4xx
  status by its code (400, or 401, 403, 404, 429 as the code says); a response with `data`, even
  `null` after a field error, is 200.
- `application/json` when it is asked for, for `*/*`, and when `Accept` is absent: 200 for every
  GraphQL response, as legacy clients expect.
- Anything else is refused 406, in JSON.

GET runs queries only: a mutation or subscription sent with GET is 405 with `Allow: POST`. A
subscription over HTTP is a POST accepting `multipart/mixed;subscriptionSpec=1.0`, the protocol
of Apollo Client and urql (strawberry's transport): each result a part `{"payload": ...}`, a
`{}` heartbeat every 5 s, and the closing boundary when it ends. The stream also ends at the
service's shutdown (its closing boundary: resubscribe with `after`) and when the caller's token
expires (a part `{"payload": null, "errors": [UNAUTHENTICATED]}` first, the protocol's fatal
error).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Mapping
from typing import Any

import anyio
from cross_web import AsyncHTTPRequestAdapter, HTTPException, StarletteRequestAdapter
from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import MissingQueryError
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.http.streaming import MultipartSubscriptionTransport
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.subscriptions import (
    GRAPHQL_TRANSPORT_WS_PROTOCOL,
    GRAPHQL_WS_PROTOCOL,
    MULTIPART_SUBSCRIPTION_PROTOCOL,
)
from strawberry.types import ExecutionResult, SubscriptionExecutionResult
from strawberry.types.graphql import OperationType

from api.context import Context

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
MULTIPART = "multipart/mixed"
"""The media types the endpoint answers in (multipart for subscriptions only)."""

PROTOCOLS = (GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL, MULTIPART_SUBSCRIPTION_PROTOCOL)

OPERATIONS_BY_METHOD = {
    "GET": frozenset({OperationType.QUERY}),
    "POST": frozenset({OperationType.QUERY, OperationType.MUTATION}),
}
"""What a request that is not a stream may run; subscriptions stream (see the module doc)."""

REQUEST_ERROR_STATUS = {
    "UNAUTHENTICATED": 401,
    "FORBIDDEN": 403,
    "TRUSTED_DOCUMENT_REQUIRED": 403,
    "PERSISTED_QUERY_NOT_FOUND": 404,  # Apollo's persisted-query link retries with the text
    "RATE_LIMITED": 429,
    "INTERNAL": 500,
}
"""The status of a request error in application/graphql-response+json, by its first error's
code; any other code (VALIDATION_FAILED, BAD_REQUEST) is 400."""

STREAM_HEADERS = {"Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no"}
"""On a subscription's stream: nothing caches it, and proxies pass each part on at once."""

SUBSCRIPTIONS_OVER_HTTP = (
    'a subscription over HTTP is a POST with Accept: multipart/mixed;subscriptionSpec="1.0" '
    "(or use a websocket)"
)


class Refused(HTTPException):
    """A request refused before GraphQL runs, with headers for its answer (`Allow`)."""

    def __init__(self, status_code: int, reason: str, headers: Mapping[str, str]) -> None:
        super().__init__(status_code, reason)
        self.headers = dict(headers)


def negotiate(accept: str | None) -> str | None:
    """The JSON media type to answer in for this `Accept`, None if it accepts neither."""
    if accept is None or not accept.strip():
        return JSON
    chosen, best = None, (0.0, False)
    for media_range in accept.split(","):
        media, *parameters = (part.strip() for part in media_range.split(";"))
        quality = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        media = media.lower()
        if media == GRAPHQL_RESPONSE:
            candidate = GRAPHQL_RESPONSE
        elif media in (JSON, "application/*", "*/*"):
            candidate = JSON  # legacy clients send */*: they get what they always got
        else:
            continue
        rank = (quality, candidate == GRAPHQL_RESPONSE)
        if quality > 0 and rank > best:
            chosen, best = candidate, rank
    return chosen


def is_request_error(result: ExecutionResult) -> bool:
    """Whether nothing was executed: no data, and no error at a field's path."""
    return result.data is None and all(error.path is None for error in result.errors or ())


def request_error_status(errors: Iterable[Mapping[str, Any]]) -> int:
    first = next(iter(errors), {})
    code = (first.get("extensions") or {}).get("code")
    return REQUEST_ERROR_STATUS.get(str(code), 400)


def _not_allowed(operation: OperationType, method: str) -> HTTPException:
    if method == "GET":
        what = "mutations" if operation is OperationType.MUTATION else "subscriptions"
        return Refused(405, f"{what} cannot be sent with GET: use POST", {"Allow": "POST"})
    return HTTPException(406, f"Not acceptable: {SUBSCRIPTIONS_OVER_HTTP}")


class MultipartSubscriptions(MultipartSubscriptionTransport):
    """Strawberry's multipart subscription transport, closing with RFC 2046's close delimiter:
    each part it sends ends with a delimiter already, so the close is `--` after it (strawberry
    sends a whole delimiter more, an empty part to a strict parser)."""

    def encode_complete(self) -> str:
        return "--\r\n"


class SpecGraphQL(GraphQL[Context, None]):
    """Strawberry's ASGI view, answering as the GraphQL-over-HTTP spec says (see the module
    doc). The media type negotiated for a request is on `request.state.media_type`, set by
    the endpoint before it runs the request; `drain()` ends the subscriptions streamed over
    HTTP, at shutdown."""

    stream_transport_classes_by_protocol = {MULTIPART_SUBSCRIPTION_PROTOCOL: MultipartSubscriptions}
    stream_transport = MultipartSubscriptions()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("subscription_protocols", PROTOCOLS)
        super().__init__(*args, **kwargs)
        self.draining = asyncio.Event()

    def drain(self) -> None:
        """End every subscription streamed over HTTP with its closing boundary, now and from
        now on: the server is shutting down (websockets get close 1012 from uvicorn)."""
        self.draining.set()

    def media_type(self, request: Request) -> str | None:
        """What a request's answer is encoded as; None if its `Accept` allows nothing we send
        (a browser asking for the GraphiQL page gets the page, or its refusal in JSON)."""
        accept = request.headers.get("accept")
        if accept is not None and self.stream_transport.accepts(accept):
            return MULTIPART
        chosen = negotiate(accept)
        if chosen is None and self.should_render_graphql_ide(StarletteRequestAdapter(request)):
            return JSON
        return chosen

    async def parse_http_body(
        self, request: AsyncHTTPRequestAdapter
    ) -> GraphQLRequestData | list[GraphQLRequestData]:
        data = await super().parse_http_body(request)
        if isinstance(data, GraphQLRequestData) and not isinstance(data.operation_name, str | None):
            raise HTTPException(400, "The operationName must be a string or null, if provided")
        return data

    async def get_sub_response(self, request: Request | WebSocket) -> Response:
        sub_response = await super().get_sub_response(request)
        sub_response.media_type = getattr(request.state, "media_type", JSON)
        request.state.sub_response = sub_response
        return sub_response

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        response = await super().process_result(request, result)
        if getattr(request.state, "media_type", JSON) == GRAPHQL_RESPONSE and is_request_error(
            result
        ):
            response.pop("data", None)
            request.state.sub_response.status_code = request_error_status(
                response.get("errors") or ()  # type: ignore[arg-type]
            )
        return response

    def create_response(
        self,
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
        sub_response: Response,
    ) -> Response:
        response = super().create_response(response_data, sub_response)
        if sub_response.media_type == GRAPHQL_RESPONSE:
            response.headers["content-type"] = GRAPHQL_RESPONSE
        return response

    async def execute_operation(  # noqa: PLR0917
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        request_data: GraphQLRequestData | list[GraphQLRequestData],
        context: Context,
        root_value: None,
        sub_response: Response,
    ) -> ExecutionResult | list[ExecutionResult] | SubscriptionExecutionResult:
        streamed = not isinstance(request_data, list) and request_data.protocol != "http"
        if streamed and request_adapter.method == "GET":
            raise _not_allowed(OperationType.SUBSCRIPTION, "GET")
        return await super().execute_operation(
            request, request_adapter, request_data, context, root_value, sub_response
        )

    async def execute_single(  # noqa: PLR0917
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        sub_response: Response,
        context: Context,
        root_value: None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        # Strawberry's, with subscriptions refused rather than run as a query (GET and POST
        # allow them for its streams) and no operation of the name a GraphQL request error.
        method = request_adapter.method
        try:
            return await self.schema.execute(
                request_data.query,
                root_value=root_value,
                variable_values=request_data.variables,
                context_value=context,
                operation_name=request_data.operation_name,
                allowed_operation_types=OPERATIONS_BY_METHOD[method],
                operation_extensions=request_data.extensions,
            )
        except CannotGetOperationTypeError as error:
            reason = (
                "The document holds more than one operation: name one with operationName"
                if error.operation_name is None
                else error.as_http_error_reason()
            )
            refusal = GraphQLError(reason, extensions={"code": "VALIDATION_FAILED"})
            return ExecutionResult(data=None, errors=[refusal])
        except InvalidOperationTypeError as error:
            raise _not_allowed(error.operation_type, method) from error
        except MissingQueryError as error:
            raise HTTPException(400, "No GraphQL query found in the request") from error

    async def create_streaming_response(
        self,
        request: Request | WebSocket,
        stream: Callable[[], AsyncIterator[str]],
        sub_response: Response,
        headers: Mapping[str, str],
    ) -> Response:
        identity = getattr(request.state, "identity", None)
        expires_at = None if identity is None else identity.expires_at
        ending = self._until_stopped(stream, expires_at)
        return await super().create_streaming_response(
            request, ending, sub_response, {**headers, **STREAM_HEADERS}
        )

    def _until_stopped(
        self, stream: Callable[[], AsyncIterator[str]], expires_at: float | None
    ) -> Callable[[], AsyncGenerator[str, None]]:
        """`stream`, ended with its closing boundary when the service drains or the token
        expires (the subscription's generator is closed: its subscriber leaves the feed)."""
        transport = self.stream_transport

        async def until_stopped() -> AsyncGenerator[str, None]:
            source = stream()
            stop = asyncio.ensure_future(_stopped(self.draining, expires_at))
            step: asyncio.Future[str] | None = None
            try:
                while True:
                    step = asyncio.ensure_future(anext(source))
                    await asyncio.wait((step, stop), return_when=asyncio.FIRST_COMPLETED)
                    if step.done():
                        try:
                            chunk = step.result()
                        except StopAsyncIteration:
                            return
                        yield chunk
                        continue
                    if (error := stop.result()) is not None:
                        fatal = {"payload": None, "errors": [error]}
                        yield transport.encode_multipart_data(fatal, self.encode_json_string)
                    yield transport.encode_complete()
                    return
            finally:
                stop.cancel()
                # Shielded: a client gone away cancels the response's scope again at every
                # await, and the subscription must still leave the feed.
                with anyio.CancelScope(shield=True):
                    if step is not None and not step.done():
                        step.cancel()
                        with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                            await step
                    if isinstance(source, AsyncGenerator):
                        await source.aclose()

        return until_stopped


async def _stopped(draining: asyncio.Event, expires_at: float | None) -> dict[str, Any] | None:
    """Return when a stream must end: None when the service drains, the error to send when the
    caller's token expires first."""
    wait = None if expires_at is None else max(0.0, expires_at - time.time())
    try:
        async with asyncio.timeout(wait):
            await draining.wait()
    except TimeoutError:
        return {
            "message": "the token has expired: subscribe again with a fresh one and `after`",
            "extensions": {"code": "UNAUTHENTICATED"},
        }
    return None
