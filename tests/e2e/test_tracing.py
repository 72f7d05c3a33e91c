"""A served Chronicle exports its traces over OTLP/HTTP to where OTEL_EXPORTER_OTLP_ENDPOINT
points: a collector of a few lines here, sent protobuf POSTs to /v1/traces."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.e2e.conftest import start_server

ADD_PRODUCT = """mutation { addProduct(input: {sku: "LAMP-1", name: "Lamp", priceCents: 1200}) {
  streamId } }"""


class Collector(ThreadingHTTPServer):
    """Keeps each POST it is sent: (path, content type, body)."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Receive)
        self.received: list[tuple[str, str, bytes]] = []

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def exported(self) -> list[ExportTraceServiceRequest]:
        requests = []
        for _, _, body in list(self.received):
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            requests.append(request)
        return requests


class _Receive(BaseHTTPRequestHandler):
    server: Collector

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.received.append((self.path, self.headers.get("Content-Type", ""), body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[Collector]:
    collector = Collector()
    thread = threading.Thread(target=collector.serve_forever, daemon=True)
    thread.start()
    yield collector
    collector.shutdown()
    collector.server_close()


def _span_names(collector: Collector) -> dict[str, bytes]:
    """Each exported span's name, with its trace id."""
    return {
        span.name: span.trace_id
        for request in collector.exported()
        for resource_spans in request.resource_spans
        for scope_spans in resource_spans.scope_spans
        for span in scope_spans.spans
    }


def test_a_mutation_on_a_served_chronicle_is_exported_over_otlp(
    database_url: str, collector: Collector, tmp_path: Path
) -> None:
    env = {
        "DATABASE_URL": database_url,
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # milliseconds between the batches sent
    }
    server = start_server(env, tmp_path / "serve.log")
    try:
        answer = httpx.post(server.graphql_url, json={"query": ADD_PRODUCT}, timeout=10).json()
        assert "errors" not in answer, answer
        deadline = time.monotonic() + 15
        while "command AddProduct" not in _span_names(collector):
            assert time.monotonic() < deadline, server.output()
            time.sleep(0.1)  # the exporter sends from its own thread, every 100 ms
    finally:
        server.stop()

    assert {(path, kind) for path, kind, _ in collector.received} == {
        ("/v1/traces", "application/x-protobuf")
    }
    names = _span_names(collector)
    trace_id = names["command AddProduct"]
    assert names["GraphQL Resolving: addProduct"] == trace_id
    assert names["append"] == trace_id
    [request, *_] = collector.exported()
    resource = {a.key: a.value.string_value for a in request.resource_spans[0].resource.attributes}
    assert resource["service.name"] == "chronicle"
    assert "Traceback" not in server.output(), server.output()
