"""Pages decoded by Arrow's JSON reader (decoding.py) make exactly the tables the dict path
makes from orjson's dicts, or are left to the dict path; never anything in between."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from lexful_source import settings
from lexful_source.client import LexfulClient
from lexful_source.decoding import DecodedPage, LightRecord, PageDecoder, full_record, page_tables
from lexful_source.errors import MalformedResponseError
from lexful_source.paging import fetch_page
from lexful_source.records import OnDemandDecoder, loaded_digest
from lexful_source.sandbox import LexfulSandbox
from lexful_source.schema import asset_table_spec
from lexful_source.tables import build_tables

from .test_tables import (
    BASE,
    ODD_RECORDS,
    SERVED_TYPES,
    SPEC_OF_ODD_SHAPES,
    served_specs,
    sorted_rows,
)

ODD = asset_table_spec(SPEC_OF_ODD_SHAPES)
PLAIN = {**BASE, **ODD_RECORDS[0]}  # every column and every form of reference


def body(records: list[Any], total: Any = None, **extra: Any) -> bytes:
    return orjson.dumps({"items": records, "total": len(records) if total is None else total,
                         **extra})  # fmt: skip


def decoded(spec: Any, raw: bytes) -> tuple[DecodedPage, list[LightRecord]] | None:
    """The page and its records, if the decoder made them (else the dict path takes it)."""
    page = PageDecoder(spec)(raw)
    if page is None:
        return None
    items = page.make_items()
    if not all(type(r) is LightRecord for r in items) or page.rows(every_row(page)) is None:
        return None
    return page, items


def every_row(page: DecodedPage) -> list[int]:
    return list(range(page.count))


def assert_same_as_dict_path(spec: Any, page: DecodedPage, records: list[dict[str, Any]]) -> None:
    expected = build_tables(spec, records, vectorized=False)
    tables = page.rows(every_row(page))
    assert tables is not None
    assert [n for n, _ in tables] == [n for n, _ in expected]
    for (name, got), (_, want) in zip(tables, expected, strict=True):
        assert got.schema == want.schema, name
        assert sorted_rows(got) == sorted_rows(want), name


@pytest.mark.parametrize("rows", [[1, 2, 3, 4], [0, 2, 4], [4]], ids=["run", "gaps", "last"])
def test_some_rows_of_a_page_make_the_dict_paths_tables_of_those_records(rows: list[int]) -> None:
    # paging drops a page's first record (the one it overlaps the page before with): a run
    # of rows is sliced, other choices taken; the children follow their parents either way
    records = [{**PLAIN, "id": f"r{i}"} for i in range(5)]
    records[2] = {**BASE, "id": "r2"}  # no children: its marker rows
    made = decoded(ODD, body(records))
    assert made is not None
    expected = build_tables(ODD, [records[i] for i in rows], vectorized=False)
    tables = made[0].rows(rows)
    assert tables is not None
    assert [n for n, _ in tables] == [n for n, _ in expected]
    for (name, got), (_, want) in zip(tables, expected, strict=True):
        assert got.schema == want.schema, name
        assert sorted_rows(got) == sorted_rows(want), name


def test_a_plain_page_is_decoded_to_the_dict_paths_tables() -> None:
    records = [{**PLAIN, "id": f"r{i}"} for i in range(5)]
    made = decoded(ODD, body(records))
    assert made is not None, "the common shapes must take the fast path"
    page, items = made
    assert_same_as_dict_path(ODD, page, records)
    assert [dict(r) for r in items] == [
        {"id": r["id"], "updated_at": r["updated_at"], "deleted_at": None} for r in records
    ]
    assert [full_record(r) for r in items] == records


def test_a_lists_bodies_are_decoded_once_they_add_up_to_the_threshold() -> None:
    """A run that finds nothing new reads a few records per list, not worth Arrow's
    import; a list read in small pages is decoded from its first few dozen records."""
    small = body([PLAIN])
    calls = -(-settings.ARROW_MIN_BODY // len(small))  # the call that reaches it
    decode = OnDemandDecoder(ODD)
    taken = [decode(small) for _ in range(calls)]
    assert all(page is None for page in taken[:-1])
    assert isinstance(taken[-1], DecodedPage)
    assert isinstance(decode(small), DecodedPage)


@pytest.mark.parametrize("record", ODD_RECORDS, ids=[r["id"] for r in ODD_RECORDS])
def test_odd_shapes_decode_to_the_same_tables_or_go_the_dict_way(record: dict[str, Any]) -> None:
    records = [{**BASE, **record}, {**PLAIN, "id": "plain-2"}]
    made = decoded(ODD, body(records))
    if made is not None:
        assert_same_as_dict_path(ODD, made[0], records)


@pytest.mark.parametrize(
    "raw",
    [
        body([{**PLAIN, "score": float("nan")}]).replace(b"null", b"NaN", 1),
        body([PLAIN]).replace(b'"items"', b'"x":Infinity,"items"'),
        body([PLAIN]).replace(b'"items"', b'"x":[Inf],"items"'),
        body([PLAIN]).replace(b'"items"', b'"x": -Inf,"items"'),
        body([PLAIN]).replace(b'"items"', b'"x":-NaN,"items"'),
        body([PLAIN]).replace(b'"items"', b'"x":[1,\n\t -Infinity],"items"'),
        body([PLAIN]).replace(b'"label":"x"', b'"label":"x\xff"'),
        body([PLAIN]).replace(b'"items"', b'"x":"\xed\xa0\x80","items"'),
        b"\xef\xbb\xbf" + body([PLAIN]),
        body([PLAIN]) + b"\n" + body([PLAIN]),
        orjson.dumps({"items": [PLAIN]}),  # no total: the dict path pages by length
        orjson.dumps({"items": [PLAIN], "total": None}),
        orjson.dumps({"items": [PLAIN], "total": 1.0}),
        orjson.dumps({"items": None, "total": 1}),
        orjson.dumps({"total": 1}),
        body([PLAIN, None]),
        body([{**PLAIN, "id": None}]),
        body([{**PLAIN, "id": ""}]),
        body([{**PLAIN, "id": 7}]),
        body([{**PLAIN, "updated_at": None}]),
        body([{**PLAIN, "count": 4.0}]),
        body([{**PLAIN, "references": ["not", "an", "object"]}]),
        body([{**PLAIN, "references": {"one": 5}}]),
        body([{**PLAIN, "references": {"many": [{"id": "t"}]}}]),
        body([PLAIN]).replace(b'"label":"x"', b'"label":"x","label":"y"'),
        b"not json",
    ],
    ids=[
        "NaN",
        "Infinity",
        "Inf",
        "-Inf",
        "-NaN",
        "-Infinity after whitespace in a list",
        "invalid UTF-8 in a loaded value",
        "a UTF-8 surrogate in an unknown field",
        "BOM",
        "two documents",
        "no total",
        "null total",
        "float total",
        "null items",
        "no items",
        "null item",
        "null id",
        "empty id",
        "numeric id",
        "no updated_at",
        "4.0 as integer",
        "references a list",
        "numeric reference",
        "list of reference objects",
        "duplicate key",
        "not JSON",
    ],
)
def test_what_orjson_or_the_dict_path_must_judge_is_not_decoded(raw: bytes) -> None:
    assert decoded(ODD, raw) is None


def test_text_that_holds_nan_or_inf_is_still_decoded() -> None:
    records = [{**PLAIN, "id": f"r{i}", "label": label}
               for i, label in enumerate(["Influencer", "NaN", "-Inf", "Infinity"])]  # fmt: skip
    made = decoded(ODD, body(records))
    assert made is not None, "a word in a string is not a number"
    assert_same_as_dict_path(ODD, made[0], records)


def test_a_page_whose_records_fail_late_becomes_orjsons_dicts() -> None:
    records = [{**PLAIN, "id": None}]
    page = PageDecoder(ODD)(body(records))
    assert page is not None  # the parse took it; making the records did not
    assert page.make_items() == records


def test_a_page_whose_values_make_no_tables_loads_from_orjsons_dicts() -> None:
    """Its records are light (paging reads them as usual); its tables come from the
    whole records, value by value where need be."""
    records = [{**PLAIN, "id": i, "references": {"one": 5}} for i in "ab"]
    page = PageDecoder(ODD)(body(records))
    assert page is not None
    items = page.make_items()
    assert all(type(r) is LightRecord for r in items) and page.rows(every_row(page)) is None
    expected = build_tables(ODD, records, vectorized=False)
    for (name, got), (_, want) in zip(page_tables(ODD, items), expected, strict=True):
        assert got.schema == want.schema, name
        assert sorted_rows(got) == sorted_rows(want), name


WITH_FILE = asset_table_spec(
    {"name": "with.file", "properties": [{"name": "f", "type": "file"},
                                          {"name": "n", "type": "string"}]}
)  # fmt: skip


def test_a_json_column_is_orjsons_text_of_the_value_with_its_key_order() -> None:
    records = [{**BASE, "id": "a", "n": "x", "f": {"url": "u", "b": 1, "a": [2, 3]}},
               {**BASE, "id": "b", "n": "y", "f": None},
               {**BASE, "id": "c", "n": "z"}]  # fmt: skip
    made = decoded(WITH_FILE, body(records))
    assert made is not None, "a column kept as JSON text no longer sends its pages the dict path"
    assert_same_as_dict_path(WITH_FILE, made[0], records)
    parent = made[0].rows([0, 1, 2])[0][1].to_pydict()
    texts = dict(zip(parent["id"], parent["f"], strict=True))
    assert texts == {"a": '{"url":"u","b":1,"a":[2,3]}', "b": None, "c": None}


@pytest.mark.parametrize(
    "values",
    [
        [{"url": "u"}, "just text"],
        [1, 2.5],
        [[1, "a"], {"k": []}],
        [True, [None]],
        [{"a": [2, {"z": None}]}, {"a": [1]}],
    ],
    ids=[
        "object and text",
        "whole and fraction",
        "list and object",
        "bool and list",
        "a list of a number and an object",
    ],
)
def test_json_values_of_mixed_types_load_as_the_dict_path_makes_them(values: list[Any]) -> None:
    records = [{**BASE, "id": f"r{i}", "n": "x", "f": v} for i, v in enumerate(values)]
    page = PageDecoder(WITH_FILE)(body(records))
    items = page.make_items() if page is not None else orjson.loads(body(records))["items"]
    expected = build_tables(WITH_FILE, records, vectorized=False)
    for (name, got), (_, want) in zip(page_tables(WITH_FILE, items), expected, strict=True):
        assert got.schema == want.schema, name
        assert sorted_rows(got) == sorted_rows(want), name


def test_reference_positions_follow_the_names_not_the_key_order() -> None:
    forward = {**PLAIN, "references": {"b": "x", "a": ["y", "z"]}}
    backward = {**PLAIN, "references": {"a": ["y", "z"], "b": "x"}}
    for record in (forward, backward):
        made = decoded(ODD, body([record]))
        assert made is not None
        page = made[0]
        tables = page.rows(every_row(page))
        assert tables is not None
        rows = tables[-1][1].select(["position", "reference_name", "referenced_asset_id"])
        assert rows.to_pylist() == [
            {"position": 0, "reference_name": "a", "referenced_asset_id": "y"},
            {"position": 1, "reference_name": "a", "referenced_asset_id": "z"},
            {"position": 2, "reference_name": "b", "referenced_asset_id": "x"},
        ]
        assert_same_as_dict_path(ODD, page, [record])


def test_some_rows_of_a_page_and_rows_of_several_pages_keep_their_children() -> None:
    first = [{**PLAIN, "id": f"a{i}", "tags": [f"t{i}"] * i} for i in range(6)]
    second = [{**PLAIN, "id": f"b{i}", "steps": []} for i in range(3)]
    one, two = decoded(ODD, body(first)), decoded(ODD, body(second))
    assert one is not None and two is not None
    chosen = [one[1][i] for i in (1, 3, 4)] + [two[1][2]]
    expected = build_tables(ODD, [full_record(r) for r in chosen], vectorized=False)
    for (name, got), (_, want) in zip(page_tables(ODD, chosen), expected, strict=True):
        assert sorted_rows(got) == sorted_rows(want), name


def test_a_light_records_digest_is_its_records() -> None:
    made = decoded(ODD, body([PLAIN]))
    assert made is not None
    light = made[1][0]
    assert loaded_digest(ODD, full_record(light)) == loaded_digest(ODD, PLAIN)


@pytest.mark.parametrize("style", ["millis", "mixed"])
def test_served_pages_decode_to_the_dict_paths_tables(
    make_sandbox: Callable[..., LexfulSandbox], style: str
) -> None:
    """Every page the local server serves; with millisecond timestamps (the common form)
    every type must take the fast path, the license's file property (JSON text) too."""
    with served_specs(make_sandbox(contacts=400, timestamp_style=style)) as (client, specs):
        for type_name in SERVED_TYPES:
            spec = specs[type_name]
            for offset in range(0, 400, 150):
                query = {"include_deleted": "true", "limit": 150, "offset": offset}
                raw = client.get_json(spec.path, query, decode=lambda b: b)
                made = decoded(spec, raw)
                if style == "millis":
                    assert made is not None, f"{type_name} at {offset} was not decoded"
                if made is not None:
                    assert_same_as_dict_path(spec, made[0], orjson.loads(raw)["items"])


def test_a_body_that_fails_late_names_the_request(
    make_sandbox: Callable[..., LexfulSandbox],
) -> None:
    env = make_sandbox(contacts=20).credentials
    with LexfulClient(env["api_base_url"], env["account_id"], env["api_key_id"],
                      env["api_key_secret"]) as client:  # fmt: skip
        page = fetch_page(client, "/v1/organizations", {}, 0, 10, PageDecoder(ODD))
        assert isinstance(page.records, DecodedPage)
        page.records.raw = b"{broken"  # as if orjson refused what Arrow took
        page.records._parsed = None
        with pytest.raises(MalformedResponseError, match=r"GET /v1/organizations \(offset 0\)"):
            _ = page.items
