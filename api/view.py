"""The GraphQL endpoint: queries and mutations over HTTP, subscriptions over websockets and over
HTTP (multipart; the spec's media types and statuses are api/graphql_http.py's).

Whatever a client sends, it is answered in GraphQL's shape: a request the endpoint cannot take
(too large, not JSON, not a JSON object, not UTF-8, an unsupported media type) gets a 4xx with
`{"errors": [{"message": ..., "extensions": {"code": ...}}]}`, and a websocket message that
breaks its protocol gets the protocol's answer (close 4400 in graphql-transport-ws, an error
message in legacy graphql-ws), never an unhandled exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from cross_web import AsyncHTTPRequestAdapter, HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.http import GraphQLRequestData
from strawberry.http.base import BaseRequestProtocol
from strawberry.http.exceptions import NonJsonMessageReceived, NonTextMessageReceived
from strawberry.http.parse_content_type import parse_content_type
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.types import ExecutionResult, SubscriptionExecutionResult

from api.auth import Authenticator, Identity, Unauthenticated, authorization_of
from api.context import Context, Services
from api.errors import ClientError
from api.fanout import DELIVERY, legacy_ws_delivery, transport_ws_delivery
from api.graphql_http import GRAPHQL_RESPONSE, JSON, SpecGraphQL, request_error_status
from api.loaders import Loaders
from api.playground import playground_page
from api.schema import build_schema
from api.settings import Settings
from api.trusted import NO_MANIFEST, TrustedDocuments, load_manifest, names_a_document, requested_id

log = logging.getLogger("chronicle")

HTTP_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    413: "PAYLOAD_TOO_LARGE",
    414: "URI_TOO_LONG",
    415: "UNSUPPORTED_MEDIA_TYPE",
}
"""The `extensions.code` of a request refused before it reaches GraphQL, by HTTP status."""

MAX_QUERY_STRING = 32 * 1024
"""The longest query string taken (or the body limit, if smaller): a GET carries small
documents, and uvicorn refuses a URL over 64 KiB itself, in plain text."""

MAX_CLOSE_REASON = 123
"""Bytes a websocket close frame has room for after its code (RFC 6455, 5.5)."""


def refusal(
    status: int, message: str, media: str | None = JSON, headers: dict[str, str] | None = None
) -> Response:
    """A request refused before GraphQL, as a GraphQL error body in the media type negotiated
    (application/json if none was)."""
    code = HTTP_CODES.get(status, "BAD_REQUEST")
    body = {"errors": [{"message": message, "extensions": {"code": code}}]}
    if status == 405 and headers is None:
        headers = {"Allow": "GET, POST"}
    kind = GRAPHQL_RESPONSE if media == GRAPHQL_RESPONSE else JSON
    return JSONResponse(body, status_code=status, headers=headers, media_type=kind)


class BodyTooLarge(Exception):
    """The request body went past the limit while it was being read."""


def within(receive: Receive, limit: int) -> Receive:
    """`receive`, raising BodyTooLarge as soon as the body read so far passes `limit` bytes:
    a chunked body is refused at its first chunk too many, not once held in memory."""
    received = 0

    async def receive_within_limit() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge
        return message

    return receive_within_limit


@dataclass(frozen=True, slots=True)
class NotJSON:
    """A websocket message that did not parse as JSON, handed to the legacy protocol's handler
    (strawberry would drop it without a word)."""

    problem: str


def close_reason(reason: str) -> str:
    encoded = reason.encode()
    if len(encoded) <= MAX_CLOSE_REASON:
        return reason
    return encoded[: MAX_CLOSE_REASON - 3].decode(errors="ignore") + "..."


class ChronicleWebSocketAdapter(ASGIWebSocketAdapter):
    """Strawberry's websocket adapter, except that an unparsable message reaches a handler that
    ignores parsing errors as `NotJSON`, and a close reason is cut to what a frame can carry."""

    async def iter_json(
        self, *, ignore_parsing_errors: bool = False
    ) -> AsyncGenerator[object, None]:
        try:
            while self.ws.application_state != WebSocketState.DISCONNECTED:
                try:
                    text = await self.ws.receive_text()
                except KeyError as error:
                    raise NonTextMessageReceived from error
                message: object
                try:
                    message = self.view.decode_json(text)
                except json.JSONDecodeError as error:
                    if not ignore_parsing_errors:
                        raise NonJsonMessageReceived from error
                    message = NotJSON(error.msg)
                yield message
        except WebSocketDisconnect:
            pass

    async def close(self, code: int, reason: str) -> None:
        await super().close(code, close_reason(reason))

    async def send_frame(self, text: str) -> None:
        """A frame serialised already (api/fanout.py). Nothing once the socket is gone: the
        handler's shutdown then cancels the operation."""
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            await self.ws.send_text(text)


def _wrong_field(payload: dict[str, Any]) -> str | None:
    """What is wrong with an operation's payload (`query`, `variables`, ...), if anything."""
    query = payload.get("query")
    if not isinstance(query, str) and not (query is None and names_a_document(payload)):
        return "the payload's query must be a string (or absent, with a documentId)"
    for name in ("variables", "extensions"):
        if not isinstance(payload.get(name), dict | None):
            return f"the payload's {name} must be an object or null"
    if not isinstance(payload.get("operationName"), str | None):
        return "the payload's operationName must be a string or null"
    return None


def transport_ws_problem(message: object) -> str | None:
    """What breaks graphql-transport-ws in `message`, if anything: its handler would fail on it
    with a TypeError (a 1006 for the client) rather than close 4400."""
    if not isinstance(message, dict):
        return "a message must be a JSON object"
    if not isinstance(message.get("type"), str):
        return "a message's type must be a string"
    kind = message["type"]
    if kind in ("subscribe", "complete") and not (
        isinstance(message.get("id"), str) and message["id"]
    ):
        return f"a {kind} message needs an id, a non-empty string"
    if kind == "subscribe":
        payload = message.get("payload")
        if not isinstance(payload, dict):
            return "a subscribe message's payload must be an object"
        return _wrong_field(payload)
    return None


FORBIDDEN_CLOSE = 4403
"""The close code of a websocket whose token is bad or has expired (as graphql-transport-ws
closes a connection its server rejects)."""


async def close_at_expiry(websocket: ChronicleWebSocketAdapter, identity: Identity) -> None:
    """Close `websocket` when its token expires: the client reconnects with a fresh one and
    resumes its subscriptions with `after`."""
    if identity.expires_at is None:
        return
    await asyncio.sleep(max(0.0, identity.expires_at - time.time()))
    with contextlib.suppress(RuntimeError, WebSocketDisconnect):
        await websocket.close(FORBIDDEN_CLOSE, "Forbidden: the token has expired")


class Authenticating:
    """What both websocket protocols do with `connection_init`: verify the token of its
    payload (`Authorization`, either casing) before the protocol acknowledges it."""

    context: Context
    expiry: asyncio.Task[None] | None = None

    async def authenticate(self, payload: object) -> bool:
        """Whether the connection may go on; False once it has been refused and closed."""
        params = payload if isinstance(payload, dict) else None
        try:
            view: ChronicleGraphQL = getattr(self, "view")  # noqa: B009 (the handler's)
            identity = await view.authenticator.identify(authorization_of(params))
        except Unauthenticated as refused:
            await self.refuse(refused.message)
            return False
        self.context.identity = identity
        if identity.expires_at is not None and self.expiry is None:
            self.expiry = asyncio.create_task(close_at_expiry(getattr(self, "websocket"), identity))  # noqa: B009
        return True

    async def refuse(self, message: str) -> None:
        raise NotImplementedError

    async def handle(self) -> None:
        """The protocol's own loop; then the expiry timer goes with the socket, rather than
        sleeping on until a long-lived token would have expired."""
        try:
            await super().handle()  # type: ignore[misc]
        finally:
            if self.expiry is not None:
                self.expiry.cancel()


class AdmittingDocuments:
    """What both websocket protocols do with an operation before it runs: its document is
    resolved from the trusted documents and refused if the caller may not send it."""

    context: Context

    async def admitted(self, operation_id: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        """The operation's payload with the text of its document; None once refused."""
        view: ChronicleGraphQL = getattr(self, "view")  # noqa: B009 (the handler's)
        try:
            query = view.trusted.admit(payload, any_document=self.context.identity.is_admin)
        except ClientError as refused:
            await self.refuse_operation(operation_id, refused)
            return None
        return {**payload, "query": query}

    async def refuse_operation(self, operation_id: str, error: ClientError) -> None:
        raise NotImplementedError


class TransportWSHandler(
    Authenticating, AdmittingDocuments, BaseGraphQLTransportWSHandler[Context, None]
):
    """graphql-transport-ws, closing 4400 on any message that breaks the protocol and 4403 on
    a bad token."""

    async def handle_message(self, message: Any) -> None:
        if problem := transport_ws_problem(message):
            await self.handle_invalid_message(f"Invalid message: {problem}")
            return
        if message["type"] == "connection_init" and not self.connection_init_received:
            if not await self.authenticate(message.get("payload")):
                return
        if (
            message["type"] == "subscribe"
            and self.connection_acknowledged
            and message["id"] not in self.operations  # else strawberry closes 4409
        ):
            payload = await self.admitted(message["id"], message["payload"])
            if payload is None:
                return
            message = {**message, "payload": payload}
        await super().handle_message(message)

    async def refuse(self, message: str) -> None:
        await self.websocket.close(FORBIDDEN_CLOSE, close_reason(f"Forbidden: {message}"))

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        # In the operation's task: its subscription writes its frames itself (api/fanout.py).
        send = cast(ChronicleWebSocketAdapter, self.websocket).send_frame
        DELIVERY.set(transport_ws_delivery(send, operation.id, lambda: operation.completed))
        await super().run_operation(operation)

    async def refuse_operation(self, operation_id: str, error: ClientError) -> None:
        await self.websocket.send_json(
            {"id": operation_id, "type": "error", "payload": [error.formatted]}
        )


LEGACY_MESSAGE_TYPES = frozenset({"connection_init", "connection_terminate", "start", "stop"})


def legacy_problem(message: dict[str, Any]) -> str | None:
    """What is wrong with a legacy graphql-ws message of a known type, if anything."""
    kind = message["type"]
    if kind in ("start", "stop") and not isinstance(message.get("id"), str):
        return f"a {kind} message needs an id, a string"
    if kind == "start":
        payload = message.get("payload")
        if not isinstance(payload, dict):
            return "a start message's payload must be an object"
        return _wrong_field(payload)
    return None


class LegacyGraphQLWSHandler(
    Authenticating, AdmittingDocuments, BaseGraphQLWSHandler[Context, None]
):
    """The legacy graphql-ws protocol, answering a message it cannot take with an error.

    Strawberry drops unknown or unparsable messages without a word and fails on malformed
    ones; the protocol's reference server (subscriptions-transport-ws) answers a message that
    is not a JSON object with `connection_error` and one it cannot act on with `error`, keeping
    the connection open, and so do we.
    """

    async def handle_message(self, message: Any) -> None:
        if isinstance(message, NotJSON) or not isinstance(message, dict):
            why = message.problem if isinstance(message, NotJSON) else "not an object"
            await self.websocket.send_json(
                {
                    "type": "connection_error",
                    "payload": {"message": f"A message must be a JSON object: {why}"},
                }
            )
            return
        kind = message.get("type")
        problem = (
            f"unknown message type {kind!r}"
            if kind not in LEGACY_MESSAGE_TYPES
            else legacy_problem(message)
        )
        if problem is not None:
            error: dict[str, Any] = {
                "type": "error",
                "payload": {"message": problem, "extensions": {"code": "BAD_MESSAGE"}},
            }
            if isinstance(message.get("id"), str):
                error["id"] = message["id"]
            await self.websocket.send_json(error)
            return
        if kind == "connection_init":
            if self.connection_acknowledged:
                # Once only: a second init must not swap the connection's identity.
                error = {"message": "the connection is initialised already"}
                await self.websocket.send_json({"type": "connection_error", "payload": error})
                return
            if not await self.authenticate(message.get("payload")):
                return
        if kind == "start" and self.connection_acknowledged:  # else strawberry closes 4401
            payload = await self.admitted(message["id"], message["payload"])
            if payload is None:
                return
            message = {**message, "payload": payload}
        await super().handle_message(cast(Any, message))

    async def handle_async_results(
        self,
        operation_id: str,
        query: str,
        operation_name: str | None,
        variables: dict[str, object] | None,
    ) -> None:
        # In the operation's task: its subscription writes its frames itself (api/fanout.py).
        task = asyncio.current_task()
        send = cast(ChronicleWebSocketAdapter, self.websocket).send_frame
        DELIVERY.set(
            legacy_ws_delivery(send, operation_id, lambda: self.tasks.get(operation_id) is not task)
        )
        await super().handle_async_results(operation_id, query, operation_name, variables)

    async def refuse(self, message: str) -> None:
        payload = {"message": message, "extensions": {"code": "UNAUTHENTICATED"}}
        await self.websocket.send_json({"type": "connection_error", "payload": payload})
        await self.websocket.close(FORBIDDEN_CLOSE, close_reason(f"Forbidden: {message}"))

    async def refuse_operation(self, operation_id: str, error: ClientError) -> None:
        await self.websocket.send_json(
            {"type": "error", "id": operation_id, "payload": error.formatted}
        )


class ChronicleGraphQL(SpecGraphQL):
    graphql_ws_handler_class = LegacyGraphQLWSHandler
    graphql_transport_ws_handler_class = TransportWSHandler
    websocket_adapter_class = ChronicleWebSocketAdapter  # type: ignore[assignment]  # as strawberry's

    def __init__(
        self,
        *args: Any,
        max_body_bytes: int,
        authenticator: Authenticator,
        trusted: TrustedDocuments = NO_MANIFEST,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.max_body_bytes = max_body_bytes
        self.authenticator = authenticator
        self.trusted = trusted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        response = await self.answer(scope, receive)
        await response(scope, receive, send)

    async def answer(self, scope: Scope, receive: Receive) -> Response:
        """The response to an HTTP request; a refusal in GraphQL's shape if it cannot be run."""
        limit = self.max_body_bytes
        request = Request(scope, receive=within(receive, limit))
        media = request.state.media_type = self.media_type(request)
        if media is None:
            return refusal(406, f"Not acceptable: answers are {GRAPHQL_RESPONSE} or {JSON}")
        length = request.headers.get("content-length")
        if length is not None and not length.isdigit():
            return refusal(400, "Content-Length must be a number of bytes", media)
        if length is not None and int(length) > limit:
            return refusal(413, f"The request body is larger than {limit} bytes", media)
        longest = min(limit, MAX_QUERY_STRING)
        if len(scope.get("query_string", b"")) > longest:
            return refusal(414, f"The query string is longer than {longest} bytes", media)
        try:
            request.state.identity = await self.authenticator.identify(
                request.headers.get("authorization")
            )
        except Unauthenticated as refused:
            return refusal(401, refused.message, media)
        try:
            return await self.run(request)
        except BodyTooLarge:
            return refusal(413, f"The request body is larger than {limit} bytes", media)
        except HTTPException as error:
            return refusal(error.status_code, error.reason, media, getattr(error, "headers", None))
        except ClientError as refused:
            # A document refused before it runs (api/trusted.py): a GraphQL answer, as FORBIDDEN
            # is; in application/graphql-response+json a request error, with its status.
            errors = [refused.formatted]
            if media == GRAPHQL_RESPONSE:
                status = request_error_status(errors)
                return JSONResponse({"errors": errors}, status, media_type=GRAPHQL_RESPONSE)
            return JSONResponse({"errors": errors})

    def decode_json(self, data: str | bytes) -> object:
        try:
            return json.loads(data)
        except UnicodeDecodeError as error:
            raise json.JSONDecodeError("not UTF-8", "", error.start) from error
        except RecursionError as error:
            raise json.JSONDecodeError("nested too deeply", "", 0) from error

    def parse_json(self, data: str | bytes) -> Any:
        try:
            parsed = self.decode_json(data)
        except json.JSONDecodeError as error:
            raise HTTPException(400, f"Unable to parse the request as JSON: {error.msg}") from error
        if not isinstance(parsed, dict | list):
            raise HTTPException(400, "The request must be a JSON object")
        return parsed

    async def parse_http_body(
        self, request: AsyncHTTPRequestAdapter
    ) -> GraphQLRequestData | list[GraphQLRequestData]:
        if request.method == "POST":
            content_type, _ = parse_content_type(request.content_type or "")
            if "application/json" not in content_type:
                raise HTTPException(415, "The request body must be application/json")
        data = await super().parse_http_body(request)
        if isinstance(data, GraphQLRequestData):  # batches are refused before this
            named = {
                "documentId": await self.sent_document_id(request),
                "extensions": data.extensions,
            }
            data.query = self.trusted.resolve(data.query, requested_id(named))
        return data

    async def sent_document_id(self, request: AsyncHTTPRequestAdapter) -> object:
        """The request's top-level `documentId`, which strawberry's parsing leaves out."""
        if request.method == "GET":
            return request.query_params.get("documentId")
        body = await request.get_body()  # read already: Starlette keeps it
        if b"documentId" not in body:
            return None  # most requests: their body is not parsed a second time
        fields = self.parse_json(body)
        return fields.get("documentId") if isinstance(fields, dict) else None

    async def execute_operation(  # noqa: PLR0917
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        request_data: GraphQLRequestData | list[GraphQLRequestData],
        context: Context,
        root_value: None,
        sub_response: Response,
    ) -> ExecutionResult | list[ExecutionResult] | SubscriptionExecutionResult:
        # Here, and not while parsing, for the context's verified caller.
        for data in request_data if isinstance(request_data, list) else [request_data]:
            self.trusted.check(data.query, any_document=context.identity.is_admin)
        return await super().execute_operation(
            request, request_adapter, request_data, context, root_value, sub_response
        )

    async def render_graphql_ide(self, request: Request) -> Response:
        # The playground built into the package, in place of strawberry's page from a CDN.
        return playground_page()

    def should_render_graphql_ide(self, request: BaseRequestProtocol) -> bool:
        # A GET naming its document by id is an operation, not a browser asking for the page.
        named = {"documentId", "extensions"} & set(request.query_params.keys())
        return not named and super().should_render_graphql_ide(request)

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket | None = None
    ) -> Context:
        services: Services = request.app.state.services
        return Context(
            services=services,
            loaders=Loaders.for_request(services.engine),
            request=request,
            response=response,
            # HTTP: verified in `answer`; a websocket's comes with its connection_init.
            identity=getattr(request.state, "identity", None) or self.authenticator.anonymous,
        )


def graphql_endpoint(settings: Settings) -> ChronicleGraphQL:
    """GraphiQL, HTTP and both websocket protocols (graphql-transport-ws, legacy graphql-ws).

    The trusted documents' manifest is read here, once: a ManifestError stops the start.
    GraphiQL is served when `settings.graphiql`, or by default in open mode only."""
    authenticator = Authenticator(settings)
    trusted = NO_MANIFEST
    if settings.trusted_documents is not None:
        trusted = load_manifest(settings.trusted_documents)
        log.info(
            "trusted documents: %d from %s; callers who are not admins run only these",
            len(trusted),
            settings.trusted_documents,
        )
    graphiql = authenticator.open if settings.graphiql is None else settings.graphiql
    return ChronicleGraphQL(
        build_schema(settings),
        keep_alive=True,
        keep_alive_interval=settings.ws_keep_alive,
        connection_init_wait_timeout=timedelta(seconds=settings.ws_init_timeout),
        allowed_origins=settings.allowed_origins,
        max_body_bytes=settings.max_body_bytes,
        authenticator=authenticator,
        trusted=trusted,
        graphql_ide="graphiql" if graphiql else None,
    )
