"""LOG_FORMAT=json end to end: a real server writes nothing but JSON lines, uvicorn's own
included, and a request's lines carry the correlation id it was sent with."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx

from tests.e2e.conftest import start_server
from tests.e2e.observed import own_database
from tests.e2e.test_users import REGISTER


def test_a_json_server_writes_only_json_lines_naming_each_request(
    server_url: str, template_database: str, tmp_path: Path
) -> None:
    correlation = f"checkout-{uuid.uuid4().hex[:8]}"
    with own_database(server_url, template_database) as url:
        env = {"DATABASE_URL": url, "LOG_FORMAT": "json", "LOG_LEVEL": "info"}
        server = start_server(env, tmp_path / "serve.log")
        try:
            variables = {"input": {"email": f"{correlation}@example.com", "name": "J", "age": 30}}
            answer = httpx.post(
                server.graphql_url,
                json={"query": REGISTER, "variables": variables},
                headers={"X-Correlation-Id": correlation, "X-Request-Id": "req-42"},
                timeout=10,
            )
            assert answer.status_code == 200 and "errors" not in answer.json(), answer.text
            assert answer.headers["x-request-id"] == "req-42"
        finally:
            server.stop()
        output = server.output()
    lines = [json.loads(text) for text in output.splitlines() if text.strip()]  # all JSON
    assert lines, output
    for entry in lines:
        assert {"timestamp", "level", "logger", "message"} <= set(entry), entry
    loggers = {entry["logger"] for entry in lines}
    assert {"chronicle", "uvicorn.error", "uvicorn.access"} <= loggers, loggers
    messages = {entry["message"] for entry in lines}
    assert {"Application startup complete.", "Application shutdown complete."} <= messages
    access = [
        entry
        for entry in lines
        if entry["logger"] == "uvicorn.access" and entry.get("correlationId") == correlation
    ]
    assert len(access) == 1, lines
    assert access[0]["requestId"] == "req-42"
    assert access[0]["method"] == "POST" and access[0]["path"] == "/graphql"
    assert access[0]["status"] == 200
    # The health polls of start_server are other requests: none carries this correlation id.
    assert sum(1 for entry in lines if entry.get("correlationId") == correlation) == 1
