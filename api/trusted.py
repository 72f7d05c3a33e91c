"""Trusted documents: the GraphQL documents a service runs for callers other than its admins.

With `CHRONICLE_TRUSTED_DOCUMENTS` the service reads, once at start, a manifest: a JSON object
mapping each document's SHA-256 (64 hex digits, optionally prefixed `sha256:`) to its text, the
trusted-documents convention GraphQL Yoga and Hot Chocolate follow. A caller names a document
by `documentId` (a top-level request field, `sha256:<hex>` or `<hex>`) or by Apollo's
`extensions.persistedQuery.sha256Hash` (version 1); a document sent as text is as good when its
hash is in the manifest. Admins may send any document; anyone else, only a manifest's.

Without a manifest every caller may send any document, and an id names nothing.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graphql import GraphQLError, parse

from api.errors import ClientError, validation_failed

PREFIX = "sha256:"
HEX = re.compile(r"[0-9a-f]{64}")


class ManifestError(Exception):
    """The manifest cannot be used: missing, not JSON, not a map of hashes to documents, or a
    key that is not its document's hash."""


def document_hash(text: str) -> str:
    """The SHA-256 of a document's UTF-8 text, in hex: its id."""
    return hashlib.sha256(text.encode()).hexdigest()


def _hex(value: str) -> str | None:
    """`value` as 64 lower-case hex digits (its `sha256:` prefix dropped), None if it is not."""
    digits = value.removeprefix(PREFIX).lower()
    return digits if HEX.fullmatch(digits) else None


def requested_id(fields: Mapping[str, Any]) -> str | None:
    """The id of the document a request (or a websocket operation's payload) names, if any:
    `documentId`, or `extensions.persistedQuery.sha256Hash`; both may be sent if they agree."""
    ids: list[str] = []
    if (document_id := fields.get("documentId")) is not None:
        if not isinstance(document_id, str) or (digits := _hex(document_id)) is None:
            raise validation_failed("documentId must be 'sha256:' and 64 hex digits")
        ids.append(digits)
    extensions = fields.get("extensions")
    persisted = extensions.get("persistedQuery") if isinstance(extensions, dict) else None
    if persisted is not None:
        if not isinstance(persisted, dict) or persisted.get("version") != 1:
            raise validation_failed("extensions.persistedQuery must be of version 1")
        sha = persisted.get("sha256Hash")
        if not isinstance(sha, str) or (digits := _hex(sha)) is None:
            raise validation_failed("extensions.persistedQuery.sha256Hash must be 64 hex digits")
        ids.append(digits)
    if len(set(ids)) > 1:
        raise validation_failed("documentId and extensions.persistedQuery name other documents")
    return ids[0] if ids else None


def names_a_document(fields: Mapping[str, Any]) -> bool:
    """Whether a request names its document by id (and so may come without a query)."""
    extensions = fields.get("extensions")
    return "documentId" in fields or (
        isinstance(extensions, dict) and "persistedQuery" in extensions
    )


@dataclass(frozen=True, slots=True)
class TrustedDocuments:
    """The manifest's documents by id; `enforced` when the service was started with one."""

    documents: Mapping[str, str] = field(default_factory=dict)
    enforced: bool = False

    def __len__(self) -> int:
        return len(self.documents)

    def resolve(self, query: str | None, document_id: str | None) -> str | None:
        """The text of the document a request sends or names. An id of no manifest document is
        PERSISTED_QUERY_NOT_FOUND (an APQ client then sends the text too); a text sent with an
        id must be the document that id names."""
        if document_id is None:
            return query
        if query is not None:
            if document_hash(query) != document_id:
                raise validation_failed("the query's sha256 is not the documentId sent with it")
            return query
        known = self.documents.get(document_id)
        if known is None:
            raise ClientError(
                "PERSISTED_QUERY_NOT_FOUND",
                f"PersistedQueryNotFound: no trusted document has the id sha256:{document_id}",
            )
        return known

    def check(self, query: str | None, *, any_document: bool) -> None:
        """Refuse a document of no manifest entry unless the caller may send any document."""
        if not self.enforced or any_document or query is None:
            return
        if document_hash(query) not in self.documents:
            raise ClientError(
                "TRUSTED_DOCUMENT_REQUIRED",
                "This service runs only trusted documents for callers who are not admins: send "
                "the documentId of a document in its manifest",
            )

    def admit(self, fields: Mapping[str, Any], *, any_document: bool) -> str | None:
        """The document to run for a request's `fields` (`query`, `documentId`, `extensions`),
        or a ClientError saying why it may not run."""
        query = fields.get("query")
        text = self.resolve(query if isinstance(query, str) else None, requested_id(fields))
        self.check(text, any_document=any_document)
        return text


NO_MANIFEST = TrustedDocuments()


def manifest_of(texts: list[str]) -> dict[str, str]:
    """A manifest of these documents, each text whole, keyed by its hash."""
    return {document_hash(text): text for text in texts}


def load_manifest(path: Path) -> TrustedDocuments:
    """The manifest at `path`, every entry's hash checked against its document."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"trusted documents: {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ManifestError(f"trusted documents: cannot read {path}: {error}") from None
    except json.JSONDecodeError as error:
        raise ManifestError(f"trusted documents: {path} is not JSON: {error}") from None
    if not isinstance(raw, dict):
        raise ManifestError(
            f"trusted documents: {path} must be a JSON object of sha256 hashes to documents"
        )
    documents: dict[str, str] = {}
    for key, text in raw.items():
        digits = _hex(key)
        if digits is None:
            raise ManifestError(
                f"trusted documents: {path}: the key {key!r} is not a sha256 hash (64 hex "
                "digits, optionally prefixed 'sha256:')"
            )
        if not isinstance(text, str):
            raise ManifestError(f"trusted documents: {path}: the document of {key} is not text")
        if document_hash(text) != digits:
            raise ManifestError(
                f"trusted documents: {path}: {key} is not the sha256 of its document (that is "
                f"{document_hash(text)}): rebuild the manifest with `chronicle documents hash`"
            )
        try:
            parse(text)
        except GraphQLError as error:
            raise ManifestError(
                f"trusted documents: {path}: the document of {key} is not GraphQL: {error.message}"
            ) from None
        documents[digits] = text
    return TrustedDocuments(documents, enforced=True)
