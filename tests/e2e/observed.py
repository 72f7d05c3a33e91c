"""Helpers of the operations tests: a database of a server's own, and reading /metrics."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import _admin, _with_database

UUID = re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}", re.I)


@contextmanager
def own_database(server_url: str, template_database: str) -> Iterator[str]:
    """A fresh, migrated database for one server of a test module's own."""
    name = template_database.replace("_template", f"_ops_{uuid.uuid4().hex[:8]}")
    asyncio.run(_admin(server_url, f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"'))
    try:
        yield _with_database(server_url, name)
    finally:
        asyncio.run(_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


class Scrape:
    """One GET /metrics, parsed with prometheus_client's own parser."""

    def __init__(self, base_url: str) -> None:
        response = httpx.get(f"{base_url}/metrics", timeout=10)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/plain; version=")
        self.text = response.text
        self.families = list(text_string_to_metric_families(self.text))
        self.samples = {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in self.families
            for sample in family.samples
        }

    def value(self, name: str, **labels: str) -> float:
        """The sample `name` with exactly `labels`; 0 if there is none (a counter not yet
        incremented)."""
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def series(self, name: str) -> dict[frozenset[tuple[str, str]], float]:
        return {labels: value for (n, labels), value in self.samples.items() if n == name}

    def by(self, name: str, label: str) -> dict[str, float]:
        """The samples of `name` by the value of their one label `label`."""
        return {dict(labels)[label]: value for labels, value in self.series(name).items()}
