"""The vectorized page-to-Arrow path writes exactly what the value-by-value path writes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pyarrow as pa
import pytest

from lexful_source.client import LexfulClient
from lexful_source.paging import scan_all
from lexful_source.sandbox import LexfulSandbox
from lexful_source.sandbox.catalogue import CONFIGURATION, CONTACT, LICENSE, LOCATION
from lexful_source.schema import TableSpec, asset_table_spec
from lexful_source.tables import build_tables

SPEC_OF_ODD_SHAPES = {
    "name": "odd.shape",
    "properties": [
        {"name": "label", "type": "string"},
        {"name": "score", "type": "number"},
        {"name": "count", "type": "integer"},
        {"name": "flag", "type": "boolean"},
        {"name": "on", "type": "date"},
        {"name": "at", "type": "datetime"},
        {"name": "tags", "type": "array", "array": {"type": "string"}},
        {"name": "steps", "type": "array",
         "array": {"type": "object", "properties": [{"name": "note", "type": "string"},
                                                     {"name": "done", "type": "boolean"}]}},
    ],
}  # fmt: skip
BASE = {"updated_at": "2026-01-01T00:00:00Z"}
# Each record is a shape the API notes tolerate or a value the fast path must not take.
ODD_RECORDS: list[dict[str, Any]] = [
    {"id": "plain", "label": "x", "score": 1.5, "count": 2, "flag": True, "on": "2026-01-02",
     "at": "2026-01-02T03:04:05.123Z", "tags": ["a", "b"], "steps": [{"note": "n", "done": False}],
     "references": {"one": "t1", "many": ["t2", "t3"], "object": {"id": "t4"}, "none": None}},
    {"id": "offsets", "at": "2026-01-02T03:04:05+02:00", "tags": [], "steps": None,
     "references": {}},
    {"id": "naive", "at": "2026-01-02T03:04:05", "on": "2026-01-02T00:00:00Z"},
    {"id": "whole-seconds", "at": "2026-01-02T03:04:05Z", "score": 3, "references": None},
    {"id": "number-as-text", "label": 12, "tags": ["a", None], "steps": [None]},
    {"id": "object-in-text", "label": {"nested": True}, "steps": ["not an object"]},
    {"id": "string-for-a-list", "tags": "vip", "steps": {"note": "not a list"}},
    {"id": "micro", "at": "2026-01-02T03:04:05.123456-05:30", "count": 4.0},
    {"id": "nulls", "label": None, "score": None, "count": None, "flag": None, "on": None,
     "at": None, "tags": None, "steps": [], "references": {"many": []}},
]  # fmt: skip


def assert_same_tables(spec: Any, records: list[dict[str, Any]]) -> None:
    fast = build_tables(spec, records)
    reference = build_tables(spec, records, vectorized=False)
    assert [name for name, _ in fast] == [name for name, _ in reference]
    for (name, got), (_, expected) in zip(fast, reference, strict=True):
        assert got.schema == expected.schema, name
        assert sorted_rows(got) == sorted_rows(expected), name


def sorted_rows(table: pa.Table) -> list[tuple[Any, ...]]:
    return sorted(tuple(row.values()) for row in table.to_pylist())


@pytest.mark.parametrize("single", [False, True], ids=["one page", "record by record"])
def test_odd_shapes_load_the_same_on_both_paths(single: bool) -> None:
    spec = asset_table_spec(SPEC_OF_ODD_SHAPES)
    batches = (
        [[{**BASE, **r}] for r in ODD_RECORDS] if single else [[{**BASE, **r} for r in ODD_RECORDS]]
    )
    for batch in batches:
        assert_same_tables(spec, batch)


SERVED_TYPES = (CONTACT, CONFIGURATION, LOCATION, LICENSE)


@contextmanager
def served_specs(sandbox: LexfulSandbox) -> Iterator[tuple[LexfulClient, dict[str, TableSpec]]]:
    """A client of the sandbox, and the table spec of each type it serves by name."""
    env = sandbox.credentials
    with LexfulClient(env["api_base_url"], env["account_id"], env["api_key_id"],
                      env["api_key_secret"]) as client:  # fmt: skip
        pages = scan_all(client, "/v1/asset_types", 100)
        yield client, {d["name"]: asset_table_spec(d) for page in pages for d in page}


@pytest.mark.parametrize("style", ["millis", "mixed"])
def test_served_pages_load_the_same_on_both_paths(
    make_sandbox: Callable[..., LexfulSandbox], style: str
) -> None:
    with served_specs(make_sandbox(contacts=400, timestamp_style=style)) as (client, specs):
        for type_name in SERVED_TYPES:
            spec = specs[type_name]
            params = {"include_deleted": "true"}
            for page in scan_all(client, spec.path, 150, params):
                assert_same_tables(spec, page)
