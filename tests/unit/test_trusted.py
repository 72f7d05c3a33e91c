"""Trusted documents (api/trusted.py): the manifest is checked whole at load, a request names a
document by `documentId` or Apollo's persisted-query hash, and only admins send other texts."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from api.errors import ClientError
from api.trusted import (
    NO_MANIFEST,
    ManifestError,
    TrustedDocuments,
    load_manifest,
    manifest_of,
    requested_id,
)

PRODUCTS = "query Products { products(first: 1) { totalCount } }"
ME = "query Me { me { id } }\n"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def write(tmp_path: Path, content: Any) -> Path:
    path = tmp_path / "manifest.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def code(refused: pytest.ExceptionInfo[ClientError]) -> object:
    return (refused.value.extensions or {})["code"]


# ---------------------------------------------------------------- the manifest


def test_a_manifest_maps_each_hash_to_its_document_with_or_without_the_prefix(
    tmp_path: Path,
) -> None:
    trusted = load_manifest(
        write(tmp_path, {sha(PRODUCTS): PRODUCTS, f"sha256:{sha(ME).upper()}": ME})
    )
    assert trusted.enforced and len(trusted) == 2
    assert trusted.documents == {sha(PRODUCTS): PRODUCTS, sha(ME): ME}


def test_what_chronicle_documents_hash_prints_loads_back(tmp_path: Path) -> None:
    manifest = manifest_of([PRODUCTS, ME])
    assert manifest == {sha(PRODUCTS): PRODUCTS, sha(ME): ME}
    assert load_manifest(write(tmp_path, manifest)).documents == manifest


def test_a_key_that_is_not_its_documents_hash_refuses_the_whole_manifest(tmp_path: Path) -> None:
    tampered = {sha(PRODUCTS): PRODUCTS, sha(ME): "mutation { rebuildProjection(name: 1) }"}
    with pytest.raises(ManifestError) as refused:
        load_manifest(write(tmp_path, tampered))
    assert f"{sha(ME)} is not the sha256 of its document" in str(refused.value)
    assert "chronicle documents hash" in str(refused.value)


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("{not json", "is not JSON"),
        ([PRODUCTS], "must be a JSON object"),
        ({"md5:abc": PRODUCTS}, "is not a sha256 hash"),
        ({sha(PRODUCTS)[:-1]: PRODUCTS}, "is not a sha256 hash"),
        ({sha(PRODUCTS): 42}, "is not text"),
        ({sha("query {"): "query {"}, "is not GraphQL"),
    ],
)
def test_a_malformed_manifest_is_refused_saying_what_is_wrong(
    tmp_path: Path, content: Any, says: str
) -> None:
    with pytest.raises(ManifestError, match=says):
        load_manifest(write(tmp_path, content))


def test_a_missing_manifest_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="does not exist"):
        load_manifest(tmp_path / "nowhere.json")


# ---------------------------------------------------------------- how a request names a document


@pytest.mark.parametrize(
    "fields",
    [
        {"documentId": sha(PRODUCTS)},
        {"documentId": f"sha256:{sha(PRODUCTS)}"},
        {"documentId": sha(PRODUCTS).upper()},
        {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": sha(PRODUCTS)}}},
        {
            "documentId": f"sha256:{sha(PRODUCTS)}",
            "extensions": {"persistedQuery": {"version": 1, "sha256Hash": sha(PRODUCTS)}},
        },
    ],
)
def test_a_document_is_named_by_document_id_or_by_apollos_persisted_query_hash(
    fields: dict[str, Any],
) -> None:
    assert requested_id(fields) == sha(PRODUCTS)


def test_a_request_without_an_id_names_no_document() -> None:
    assert requested_id({"query": PRODUCTS, "extensions": {"tracing": True}}) is None
    assert requested_id({"documentId": None, "extensions": None}) is None


@pytest.mark.parametrize(
    "fields",
    [
        {"documentId": 42},
        {"documentId": "md5:0123"},
        {"documentId": "sha256:xyz"},
        {"extensions": {"persistedQuery": {"version": 2, "sha256Hash": sha(PRODUCTS)}}},
        {"extensions": {"persistedQuery": {"version": 1}}},
        {"extensions": {"persistedQuery": "yes"}},
        {
            "documentId": sha(PRODUCTS),
            "extensions": {"persistedQuery": {"version": 1, "sha256Hash": sha(ME)}},
        },
    ],
)
def test_a_malformed_or_contradictory_id_is_a_validation_error(fields: dict[str, Any]) -> None:
    with pytest.raises(ClientError) as refused:
        requested_id(fields)
    assert code(refused) == "VALIDATION_FAILED"


# ---------------------------------------------------------------- who may run what

TRUSTED = TrustedDocuments({sha(PRODUCTS): PRODUCTS}, enforced=True)
RAW = "query { products(first: 100) { totalCount } }"


@pytest.mark.parametrize("any_document", [False, True])
def test_a_trusted_document_runs_by_id_or_as_its_text(any_document: bool) -> None:
    by_id = TRUSTED.admit({"documentId": f"sha256:{sha(PRODUCTS)}"}, any_document=any_document)
    assert by_id == PRODUCTS
    assert TRUSTED.admit({"query": PRODUCTS}, any_document=any_document) == PRODUCTS
    with_its_id = {"query": PRODUCTS, "documentId": sha(PRODUCTS)}
    assert TRUSTED.admit(with_its_id, any_document=any_document) == PRODUCTS


def test_another_document_is_refused_to_a_caller_who_is_not_an_admin() -> None:
    with pytest.raises(ClientError) as refused:
        TRUSTED.admit({"query": RAW}, any_document=False)
    assert code(refused) == "TRUSTED_DOCUMENT_REQUIRED"
    assert "documentId" in refused.value.message


def test_an_admin_sends_any_document() -> None:
    assert TRUSTED.admit({"query": RAW}, any_document=True) == RAW


@pytest.mark.parametrize("any_document", [False, True])
def test_an_id_of_no_manifest_document_is_not_found(any_document: bool) -> None:
    with pytest.raises(ClientError) as refused:
        TRUSTED.admit({"documentId": sha(RAW)}, any_document=any_document)
    assert code(refused) == "PERSISTED_QUERY_NOT_FOUND"
    assert sha(RAW) in refused.value.message


def test_a_text_sent_with_the_id_of_another_document_is_refused() -> None:
    with pytest.raises(ClientError) as refused:
        TRUSTED.admit({"query": RAW, "documentId": sha(PRODUCTS)}, any_document=True)
    assert code(refused) == "VALIDATION_FAILED"


def test_without_a_manifest_anyone_sends_any_text_and_an_id_names_nothing() -> None:
    assert NO_MANIFEST.admit({"query": RAW}, any_document=False) == RAW
    with pytest.raises(ClientError) as refused:
        NO_MANIFEST.admit({"documentId": sha(PRODUCTS)}, any_document=True)
    assert code(refused) == "PERSISTED_QUERY_NOT_FOUND"


def test_a_request_with_no_document_is_left_to_strawberry_to_refuse() -> None:
    assert TRUSTED.admit({}, any_document=False) is None
