"""List parameters and filter operators over HTTP, checked against the sandbox's truth.

Every filter test computes its expected answer in Python from ``sandbox.truth`` (filter
values are picked from the data, timestamps compared as instants, never as text) and
insists that the answer is neither empty nor everything, so none can pass vacuously.
Answers are read across several pages, and ``total`` must count every match even on a
one-record page.
"""

from __future__ import annotations

import json
import operator
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from itertools import pairwise
from typing import Any

import httpx
import pytest

from lexful_source.sandbox import LexfulSandbox
from lexful_source.sandbox.catalogue import CONFIGURATION, CONTACT, LICENSE, LOCATION

from ..conftest import Api

Record = dict[str, Any]
Params = dict[str, str]
Keep = Callable[[Record], bool]
Case = Callable[[list[Record]], tuple[Params, Keep]]

PAGE = 37  # an odd page size, so answers span several pages
ASSET_TYPES = (CONTACT, LOCATION, CONFIGURATION, LICENSE)
INSTANTS = {"created_at", "updated_at", "deleted_at", "warranty_expires_at", "renews_at"}
DATES = {"purchased_on", "ext_opened_on", "starts_on", "ext_decommissioned_on"}
COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}
PLUS_TWO = timezone(timedelta(hours=2))
MINUS_FIVE_THIRTY = timezone(-timedelta(hours=5, minutes=30))


# -- helpers -------------------------------------------------------------------------
def instant(text: str) -> datetime:
    """Any ISO-8601 form as an aware datetime; a bare date or no offset is UTC."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def comparable(name: str, value: Any) -> Any:
    """A field's value in the terms the API compares it in: instants, dates, as is."""
    if value is None:
        return None
    if name in INSTANTS:
        return instant(value)
    return date.fromisoformat(value) if name in DATES else value


def value_of(record: Record, name: str) -> Any:
    return comparable(name, record.get(name))


def encode(value: Any) -> str:
    """A data value as a query-string value."""
    if isinstance(value, bool):
        return str(value).lower()
    return value if isinstance(value, str) else json.dumps(value)


def distinct(truth: list[Record], name: str) -> list[Any]:
    """The field's non-null values as written, one per comparable value, in order."""
    seen: dict[Any, Any] = {}
    for record in truth:
        if record.get(name) is not None:
            seen.setdefault(value_of(record, name), record[name])
    return [seen[key] for key in sorted(seen)]


def median(truth: list[Record], name: str) -> Any:
    values = distinct(truth, name)
    return values[len(values) // 2]


def path_of(name: str) -> str:
    return f"/v1/{name}" if name in ("organizations", "users") else f"/v1/assets/{name}"


def ids(records: list[Record]) -> list[str]:
    return [record["id"] for record in records]


def assert_filter(
    api: Api, sandbox: LexfulSandbox, name: str, params: Params, keep: Keep
) -> list[Record]:
    """The served answer (every page) is exactly the truth's records that ``keep`` keeps."""
    truth = sandbox.truth(name, include_deleted=params.get("include_deleted") == "true")
    expected = [record["id"] for record in truth if keep(record)]
    assert 0 < len(expected) < len(truth), f"{params} keeps {len(expected)} of {len(truth)}"
    got = api.all_items(path_of(name), page=PAGE, **params)
    assert sorted(ids(got)) == expected, params
    page = api.get(path_of(name), limit=1, offset=len(expected) - 1, **params).json()
    assert (page["total"], len(page["items"])) == (len(expected), 1), "total counts every match"
    return got


def in_order(a: Record, b: Record, keys: list[tuple[str, bool]]) -> bool:
    """May ``a`` come before ``b``? Nulls sort last ascending and first descending."""
    for name, descending in keys:
        x, y = value_of(a, name), value_of(b, name)
        if x == y:
            continue
        if x is None or y is None:
            return (x is None) == descending
        return (x < y) != descending
    return True


def assert_sorted(records: list[Record], keys: list[tuple[str, bool]]) -> None:
    wrong = [(a["id"], b["id"]) for a, b in pairwise(records) if not in_order(a, b, keys)]
    assert not wrong, f"out of order for {keys}: {wrong[:3]}"


def assert_bad_request(response: httpx.Response, named: str) -> None:
    """Fastify's default 400 body, with a message naming the parameter at fault."""
    assert response.status_code == 400, response.text[:300]
    body = response.json()
    assert body.keys() == {"statusCode", "error", "message"}
    assert (body["statusCode"], body["error"]) == (400, "Bad Request")
    assert named in body["message"]


# -- comparison, range and set operators on every value type ---------------------------
@dataclass(frozen=True)
class FieldCheck:
    """``field[op]=raw`` keeps the records whose non-null value passes ``test``."""

    name: str
    field: str
    op: str
    raw: str
    test: Callable[[Any], bool]

    def run(self, api: Api, sandbox: LexfulSandbox) -> None:
        def keep(record: Record) -> bool:
            value = value_of(record, self.field)
            return value is not None and self.test(value)

        params = {f"{self.field}[{self.op}]": self.raw}
        assert_filter(api, sandbox, self.name, params, keep)


SCALARS = [
    (CONFIGURATION, "cpu_cores"),  # integer
    (CONFIGURATION, "ram_gb"),  # number, with fractions
    (CONFIGURATION, "purchased_on"),  # date
    (CONFIGURATION, "warranty_expires_at"),  # datetime property
    (CONTACT, "updated_at"),
    (CONTACT, "created_at"),
    (CONTACT, "last_name"),  # string, unicode
    (LICENSE, "seats"),
    (LICENSE, "annual_cost"),
    ("organizations", "name"),
    ("users", "email"),
]


@pytest.mark.parametrize("op", COMPARE)
@pytest.mark.parametrize(("name", "field"), SCALARS)
def test_comparison_operators(
    shared_api: Api, shared_sandbox: LexfulSandbox, name: str, field: str, op: str
) -> None:
    value = median(shared_sandbox.truth(name, include_deleted=False), field)
    pivot, compare = comparable(field, value), COMPARE[op]
    check = FieldCheck(name, field, op, encode(value), lambda v: compare(v, pivot))
    check.run(shared_api, shared_sandbox)


@pytest.mark.parametrize("op", ["between", "in", "nin"])
@pytest.mark.parametrize(("name", "field"), SCALARS)
def test_range_and_set_operators(
    shared_api: Api, shared_sandbox: LexfulSandbox, name: str, field: str, op: str
) -> None:
    values = distinct(shared_sandbox.truth(name, include_deleted=False), field)
    chosen = [values[len(values) // 4], values[3 * len(values) // 4]]
    low, high = (comparable(field, v) for v in chosen)
    test: Callable[[Any], bool] = {
        "between": lambda v: low <= v <= high,
        "in": lambda v: v in (low, high),
        "nin": lambda v: v not in (low, high),
    }[op]
    raw = ",".join(encode(v) for v in chosen)
    FieldCheck(name, field, op, raw, test).run(shared_api, shared_sandbox)


@pytest.mark.parametrize("op", [f"array_length_{op}" for op in COMPARE])
def test_array_length_operators(shared_api: Api, shared_sandbox: LexfulSandbox, op: str) -> None:
    compare = COMPARE[op.removeprefix("array_length_")]
    assert_filter(
        shared_api,
        shared_sandbox,
        CONTACT,
        {f"contact_methods[{op}]": "2"},
        lambda r: compare(len(r["contact_methods"] or []), 2),
    )


# -- one case per documented operator and parameter, values taken from the data -------
CASES: dict[str, tuple[str, Case]] = {}


def case(title: str, name: str = CONTACT) -> Callable[[Case], Case]:
    def register(build: Case) -> Case:
        CASES[title] = (name, build)
        return build

    return register


def most_common(values: list[Any], count: int = 1) -> list[Any]:
    return [value for value, _ in Counter(v for v in values if v is not None).most_common(count)]


@case("plain field=value is eq")
def _plain_eq(truth: list[Record]) -> tuple[Params, Keep]:
    return {"contact_type": "Owner"}, lambda r: r["contact_type"] == "Owner"


@case("organization_id=")
def _organization(truth: list[Record]) -> tuple[Params, Keep]:
    org = most_common([r["organization_id"] for r in truth])[0]
    return {"organization_id": org}, lambda r: r["organization_id"] == org


@case("boolean eq true")
def _important(truth: list[Record]) -> tuple[Params, Keep]:
    return {"important[eq]": "true"}, lambda r: r["important"] is True


@case("boolean ne true")
def _not_important(truth: list[Record]) -> tuple[Params, Keep]:
    return {"important[ne]": "true"}, lambda r: r["important"] is False


@case("boolean plain false", CONFIGURATION)
def _unmanaged(truth: list[Record]) -> tuple[Params, Keep]:
    return {"is_managed": "false"}, lambda r: r["is_managed"] is False


@case("enum in, values with a space")
def _enum_in(truth: list[Record]) -> tuple[Params, Keep]:
    wanted = ("Decision Maker", "Influencer")
    return {"contact_type[in]": ",".join(wanted)}, lambda r: r["contact_type"] in wanted


@case("number gte", CONFIGURATION)
def _cores(truth: list[Record]) -> tuple[Params, Keep]:
    return {"cpu_cores[gte]": "8"}, lambda r: r["cpu_cores"] is not None and r["cpu_cores"] >= 8


@case("number between", CONFIGURATION)
def _ram(truth: list[Record]) -> tuple[Params, Keep]:
    return {"ram_gb[between]": "8,32"}, lambda r: r["ram_gb"] is not None and 8 <= r["ram_gb"] <= 32


@case("date lt", CONFIGURATION)
def _purchased(truth: list[Record]) -> tuple[Params, Keep]:
    cut = date(2024, 1, 1)
    return {
        "purchased_on[lt]": "2024-01-01"
    }, lambda r: (v := value_of(r, "purchased_on")) is not None and v < cut


@case("datetime property gt", CONFIGURATION)
def _warranty(truth: list[Record]) -> tuple[Params, Keep]:
    cut = instant("2028-06-30T12:00:00Z")
    params = {"warranty_expires_at[gt]": "2028-06-30T14:00:00.000+02:00"}
    return params, lambda r: instant(r["warranty_expires_at"]) > cut


@case("null true")
def _no_title(truth: list[Record]) -> tuple[Params, Keep]:
    return {"title[null]": "true"}, lambda r: r["title"] is None


@case("null false")
def _titled(truth: list[Record]) -> tuple[Params, Keep]:
    return {"title[null]": "false"}, lambda r: r["title"] is not None


@case("null true on a date", CONFIGURATION)
def _never_purchased(truth: list[Record]) -> tuple[Params, Keep]:
    return {"purchased_on[null]": "true"}, lambda r: r["purchased_on"] is None


@case("like with %")
def _like_prefix(truth: list[Record]) -> tuple[Params, Keep]:
    return {"name[like]": "J%"}, lambda r: r["name"].startswith("J")


@case("like with _ for one (unicode) character")
def _like_one(truth: list[Record]) -> tuple[Params, Keep]:
    return {"last_name[like]": "M_ller"}, lambda r: r["last_name"] == "Müller"


@case("ilike")
def _ilike(truth: list[Record]) -> tuple[Params, Keep]:
    return {"name[ilike]": "jO%"}, lambda r: r["name"].lower().startswith("jo")


@case("ilike folds unicode case")
def _ilike_unicode(truth: list[Record]) -> tuple[Params, Keep]:
    return {"name[ilike]": "%MÜLLER"}, lambda r: r["name"].lower().endswith("müller")


@case("contains")
def _contains(truth: list[Record]) -> tuple[Params, Keep]:
    return {"notes[contains]": "café"}, lambda r: "café" in (r["notes"] or "")


@case("startswith", CONFIGURATION)
def _startswith(truth: list[Record]) -> tuple[Params, Keep]:
    return {"ip_address[startswith]": "10.1"}, lambda r: r["ip_address"].startswith("10.1")


@case("endswith")
def _endswith(truth: list[Record]) -> tuple[Params, Keep]:
    return {"name[endswith]": "Smith"}, lambda r: r["name"].endswith("Smith")


@case("array_contains, an object by one key")
def _has_email(truth: list[Record]) -> tuple[Params, Keep]:
    params = {"contact_methods[array_contains]": '{"type":"Email"}'}
    return params, lambda r: any(m["type"] == "Email" for m in r["contact_methods"] or [])


@case("array_contains, a whole object")
def _has_method(truth: list[Record]) -> tuple[Params, Keep]:
    method = next(r["contact_methods"][0] for r in truth if r["contact_methods"])
    params = {"contact_methods[array_contains]": json.dumps(method)}
    return params, lambda r: method in (r["contact_methods"] or [])


@case("array_contains, an array of objects (all present)")
def _has_both(truth: list[Record]) -> tuple[Params, Keep]:
    params = {"contact_methods[array_contains]": '[{"type":"Email"},{"type":"Phone"}]'}
    return params, lambda r: {"Email", "Phone"} <= {m["type"] for m in r["contact_methods"] or []}


@case("array_contains, an integer inside objects", LICENSE)
def _has_quantity(truth: list[Record]) -> tuple[Params, Keep]:
    qty = most_common([item["quantity"] for r in truth for item in r["line_items"]])[0]
    params = {"line_items[array_contains]": json.dumps({"quantity": qty})}
    return params, lambda r: any(item["quantity"] == qty for item in r["line_items"])


@case("array_contains, a string", "users")
def _admins(truth: list[Record]) -> tuple[Params, Keep]:
    return {"account_scopes[array_contains]": "admin"}, lambda r: "admin" in r["account_scopes"]


@case("array_empty true")
def _no_methods(truth: list[Record]) -> tuple[Params, Keep]:
    return {"contact_methods[array_empty]": "true"}, lambda r: not r["contact_methods"]


@case("array_empty false")
def _some_methods(truth: list[Record]) -> tuple[Params, Keep]:
    return {"contact_methods[array_empty]": "false"}, lambda r: bool(r["contact_methods"])


@case("references, single reference, one id")
def _at_location(truth: list[Record]) -> tuple[Params, Keep]:
    loc = most_common([r["references"]["location"] for r in truth])[0]
    return {"references.location": loc}, lambda r: r["references"]["location"] == loc


@case("references, single reference, two ids")
def _at_locations(truth: list[Record]) -> tuple[Params, Keep]:
    locs = most_common([r["references"]["location"] for r in truth], 2)
    return {"references.location": ",".join(locs)}, lambda r: r["references"]["location"] in locs


@case("references, multiple reference, one id", CONFIGURATION)
def _with_contact(truth: list[Record]) -> tuple[Params, Keep]:
    who = most_common([c for r in truth for c in r["references"]["ext_contacts"] or []])[0]
    return {
        "references.ext_contacts": who
    }, lambda r: who in (r["references"]["ext_contacts"] or [])


@case("references, multiple reference, two ids", CONFIGURATION)
def _with_contacts(truth: list[Record]) -> tuple[Params, Keep]:
    who = most_common([c for r in truth for c in r["references"]["ext_contacts"] or []], 2)
    params = {"references.ext_contacts": ",".join(who)}
    return params, lambda r: not set(who).isdisjoint(r["references"]["ext_contacts"] or [])


@case("search, case-insensitive over text")
def _search(truth: list[Record]) -> tuple[Params, Keep]:
    return {"search": "CAFÉ"}, lambda r: any(
        isinstance(v, str) and "café" in v.lower() for v in r.values()
    )


@case("all filters are ANDed")
def _anded(truth: list[Record]) -> tuple[Params, Keep]:
    cut = instant("2024-01-01T00:00:00Z")
    params = {
        "contact_type[in]": "Decision Maker,Influencer,Owner,Champion",
        "important": "false",
        "updated_at[gte]": "2024-01-01",
        "contact_methods[array_length_gte]": "1",
        "search": "a",
    }
    return (
        params,
        lambda r: (
            r["contact_type"] in ("Decision Maker", "Influencer", "Owner", "Champion")
            and r["important"] is False
            and instant(r["updated_at"]) >= cut
            and len(r["contact_methods"]) >= 1
            and any(isinstance(v, str) and "a" in v.lower() for v in r.values())
        ),
    )


@case("include_deleted with deleted_at[null]=false gives the archived")
def _archived(truth: list[Record]) -> tuple[Params, Keep]:
    return {"include_deleted": "true", "deleted_at[null]": "false"}, lambda r: bool(r["deleted_at"])


@case("include_deleted with another filter")
def _archived_too(truth: list[Record]) -> tuple[Params, Keep]:
    return {
        "include_deleted": "true",
        "contact_type": "Owner",
    }, lambda r: r["contact_type"] == "Owner"


@case("organizations: boolean", "organizations")
def _not_primary(truth: list[Record]) -> tuple[Params, Keep]:
    return {"is_primary": "false"}, lambda r: r["is_primary"] is False


@case("organizations: startswith", "organizations")
def _ours(truth: list[Record]) -> tuple[Params, Keep]:
    return {"name[startswith]": "Our"}, lambda r: r["name"].startswith("Our")


@case("users: in", "users")
def _roles(truth: list[Record]) -> tuple[Params, Keep]:
    return {"role[in]": "Editor,Viewer"}, lambda r: r["role"] in ("Editor", "Viewer")


@pytest.mark.parametrize("title", CASES)
def test_filter_case(shared_api: Api, shared_sandbox: LexfulSandbox, title: str) -> None:
    name, build = CASES[title]
    truth = shared_sandbox.truth(name, include_deleted=False)
    params, keep = build(truth)
    assert_filter(shared_api, shared_sandbox, name, params, keep)


def test_like_is_case_sensitive_and_ilike_is_not(shared_api: Api) -> None:
    path = path_of(CONTACT)
    assert shared_api.get(path, **{"name[like]": "jo%"}).json()["total"] == 0
    assert shared_api.get(path, **{"name[ilike]": "jo%"}).json()["total"] > 0


def test_array_contains_needs_every_key(shared_api: Api) -> None:
    """Containment as in Postgres: a key the item lacks is not matched by a null."""
    path, key = path_of(CONTACT), "contact_methods[array_contains]"
    assert shared_api.get(path, **{key: '{"type":"Email"}'}).json()["total"] > 0
    assert shared_api.get(path, **{key: '{"type":"Email","label":null}'}).json()["total"] == 0


@pytest.mark.parametrize("name", [CONFIGURATION, LICENSE])
def test_search_never_matches_secret_values(
    shared_api: Api, shared_sandbox: LexfulSandbox, name: str
) -> None:
    coll = shared_sandbox.store.assets(name)
    secrets = [row.doc[k] for row in coll.rows.values() for k in sorted(coll.hidden)][:4]
    assert len(secrets) == 4 and all(secrets)
    for secret in secrets:
        assert shared_api.get(path_of(name), search=secret).json()["total"] == 0


def test_like_escapes_wildcards(
    make_sandbox: Callable[..., LexfulSandbox], api_for: Callable[[LexfulSandbox], Api]
) -> None:
    sandbox = make_sandbox(contacts=20)
    api = api_for(sandbox)
    first, second = ids(sandbox.truth(CONTACT, include_deleted=False))[:2]
    for row_id, name in ((first, "100%_sure"), (second, "100xysure")):
        response = api.http.patch(f"{path_of(CONTACT)}/{row_id}", json={"name": name})
        assert response.status_code == 200, response.text
    for pattern, expected in (
        (r"100\%\_sure", [first]),
        (r"100\%%", [first]),
        ("100__sure", sorted([first, second])),
        ("100%sure", sorted([first, second])),
    ):
        got = api.all_items(path_of(CONTACT), **{"name[like]": pattern})
        assert sorted(ids(got)) == expected, pattern


# -- timestamps: any ISO form, compared as instants ------------------------------------
NEW_YEAR_2024 = [
    "2024-01-01T00:00:00Z",
    "2024-01-01T00:00:00.000Z",
    "2024-01-01T00:00:00+00:00",
    "2024-01-01T02:00:00+02:00",
    "2023-12-31T18:30:00.000-05:30",
    "2024-01-01",
]


@pytest.mark.parametrize("sort", [{}, {"sort": "updated_at"}], ids=["scan", "index"])
@pytest.mark.parametrize("form", NEW_YEAR_2024)
def test_instant_forms_give_identical_results(
    shared_api: Api, shared_sandbox: LexfulSandbox, form: str, sort: Params
) -> None:
    cut = instant("2024-01-01T00:00:00Z")
    params = {"updated_at[gte]": form, **sort}
    got = assert_filter(
        shared_api, shared_sandbox, CONTACT, params, lambda r: instant(r["updated_at"]) >= cut
    )
    if sort:
        assert_sorted(got, [("updated_at", False), ("id", False)])


@pytest.mark.parametrize("op", COMPARE)
def test_updated_at_boundaries_on_a_tie_group(
    shared_api: Api, shared_sandbox: LexfulSandbox, op: str
) -> None:
    """The incremental query (sorted by updated_at) at the instant most records share,
    written with another offset than the data uses."""
    truth = shared_sandbox.truth(CONTACT, include_deleted=False)
    tie = most_common([instant(r["updated_at"]) for r in truth])[0]
    compare = COMPARE[op]
    params = {
        f"updated_at[{op}]": tie.astimezone(PLUS_TWO).isoformat(timespec="milliseconds"),
        "sort": "updated_at",
        "order": "ASC",
    }
    got = assert_filter(
        shared_api,
        shared_sandbox,
        CONTACT,
        params,
        lambda r: compare(instant(r["updated_at"]), tie),
    )
    assert_sorted(got, [("updated_at", False), ("id", False)])


WARRANTY_PIVOT = instant("2027-06-01T12:00:00Z")
# (ms from the pivot, offset): one instant in three forms, and neighbours whose local
# time sorts the other way round, so comparing the text instead of the instant fails
AROUND_PIVOT = [(0, PLUS_TWO), (0, MINUS_FIVE_THIRTY), (0, UTC), (-60_000, MINUS_FIVE_THIRTY),
                (60_000, UTC), (-1, PLUS_TWO), (1, MINUS_FIVE_THIRTY)]  # fmt: skip


def seed_warranties(api: Api, records: list[Record]) -> None:
    """Give some configurations warranty ends around the pivot, in different ISO forms."""
    for record, (ms, zone) in zip(records, AROUND_PIVOT, strict=False):
        moment = (WARRANTY_PIVOT + timedelta(milliseconds=ms)).astimezone(zone)
        body = {"warranty_expires_at": moment.isoformat(timespec="milliseconds")}
        response = api.http.patch(f"{path_of(CONFIGURATION)}/{record['id']}", json=body)
        assert response.status_code == 200, response.text[:300]


@pytest.mark.parametrize("order", ["ASC", "DESC"])
@pytest.mark.parametrize("op", ["gt", "gte", "lt", "lte"])
@pytest.mark.parametrize(
    ("name", "field"),
    [(CONTACT, "updated_at"), (CONTACT, "created_at"), (CONFIGURATION, "warranty_expires_at")],
)
def test_mixed_timestamp_forms(
    make_sandbox: Callable[..., LexfulSandbox],
    api_for: Callable[[LexfulSandbox], Api],
    name: str,
    field: str,
    op: str,
    order: str,
) -> None:
    """Records written in mixed ISO forms filter and sort by instant, not by text, at the
    instant most records share (the bulk import, or seeded warranty ends)."""
    sandbox = make_sandbox(timestamp_style="mixed", contacts=120)
    api = api_for(sandbox)
    if field == "warranty_expires_at":
        seed_warranties(api, sandbox.truth(name, include_deleted=False))
    truth = sandbox.truth(name, include_deleted=False)
    written = {r[field][-6:] if r[field][-6] in "+-" else r[field][-1] for r in truth}
    assert len(written) >= 3, f"expected mixed forms, got {written}"
    pivot = most_common([instant(r[field]) for r in truth])[0]
    compare = COMPARE[op]
    params = {
        f"{field}[{op}]": pivot.astimezone(PLUS_TWO).isoformat(timespec="milliseconds"),
        "sort": field,
        "order": order,
    }
    got = assert_filter(api, sandbox, name, params, lambda r: compare(instant(r[field]), pivot))
    assert_sorted(got, [(field, order == "DESC")])


# -- sort, order, fields, include_deleted, expand ---------------------------------------
@pytest.mark.parametrize(
    ("name", "sort", "order"),
    [
        (CONTACT, "organization_id,updated_at", "ASC,DESC"),
        (CONTACT, "important,last_name,created_at", "DESC,ASC,DESC"),
        (CONTACT, "title", "ASC"),  # nulls last
        (CONTACT, "title", "DESC"),  # nulls first
        (CONFIGURATION, "cpu_cores,ram_gb", "DESC,ASC"),
        (CONFIGURATION, "purchased_on", "ASC"),
        (CONFIGURATION, "purchased_on", "DESC"),
        (CONFIGURATION, "warranty_expires_at", "DESC"),
        ("organizations", "name", "DESC"),
        ("users", "role,email", "ASC,DESC"),
    ],
)
def test_sort_and_order(
    shared_api: Api, shared_sandbox: LexfulSandbox, name: str, sort: str, order: str
) -> None:
    keys = [(f, o == "DESC") for f, o in zip(sort.split(","), order.split(","), strict=True)]
    got = shared_api.all_items(path_of(name), page=PAGE, sort=sort, order=order)
    assert sorted(ids(got)) == ids(shared_sandbox.truth(name, include_deleted=False))
    assert len({repr(value_of(r, keys[0][0])) for r in got}) > 1
    assert_sorted(got, keys)
    nulls = [r for r in got if r[keys[0][0]] is None]
    if nulls:
        assert (got[0] if keys[0][1] else got[-1])[keys[0][0]] is None


@pytest.mark.parametrize(
    ("name", "fields"),
    [
        (CONTACT, "name,contact_type"),
        (CONTACT, "id"),
        (CONTACT, "updated_at,contact_methods,references"),
        (CONFIGURATION, "hostname,ext_admin_password,cpu_cores"),
        ("organizations", "slug,deleted_at"),
    ],
)
def test_fields_projection(
    shared_api: Api, shared_sandbox: LexfulSandbox, name: str, fields: str
) -> None:
    truth = {r["id"]: r for r in shared_sandbox.truth(name, include_deleted=False)}
    wanted = {"id", *fields.split(",")}
    got = shared_api.all_items(path_of(name), page=PAGE, fields=fields)
    assert sorted(ids(got)) == sorted(truth)
    for item in got:
        assert item == {key: truth[item["id"]][key] for key in wanted}


@pytest.mark.parametrize("name", [CONTACT, CONFIGURATION, "organizations", "users"])
def test_include_deleted(shared_api: Api, shared_sandbox: LexfulSandbox, name: str) -> None:
    live = shared_sandbox.truth(name, include_deleted=False)
    every = shared_sandbox.truth(name, include_deleted=True)
    assert all(r["deleted_at"] is None for r in live)
    assert any(r["deleted_at"] for r in every), "the dataset should hold archived rows"
    assert [r for r in every if r["deleted_at"] is None] == live
    for params, want in (({}, live), ({"include_deleted": "false"}, live),
                         ({"include_deleted": "true"}, every)):  # fmt: skip
        got = shared_api.all_items(path_of(name), page=PAGE, sort="id", **params)
        assert got == want, params


def _expanded(value: Any, index: dict[str, Record]) -> Any:
    if isinstance(value, list):
        return [index[v] for v in value]
    return None if value is None else index[value]


@pytest.mark.parametrize(
    ("name", "expand", "expanded"),
    [
        (CONFIGURATION, "references", {"location", "ext_contacts"}),
        (CONFIGURATION, "references.location", {"location"}),
        (CONFIGURATION, "references.ext_contacts", {"ext_contacts"}),
        (CONTACT, "references.location", {"location"}),
        (LICENSE, "references", {"vendor_contact", "covered_configurations"}),
    ],
)
def test_expand_references(
    shared_api: Api, shared_sandbox: LexfulSandbox, name: str, expand: str, expanded: set[str]
) -> None:
    index = {
        r["id"]: {"id": r["id"], "name": r["name"], "asset_type": type_name}
        for type_name in ASSET_TYPES
        for r in shared_sandbox.truth(type_name)
    }
    truth = {r["id"]: r for r in shared_sandbox.truth(name, include_deleted=False)}
    got = shared_api.all_items(path_of(name), page=PAGE, expand=expand)
    assert sorted(ids(got)) == sorted(truth)
    for item in got:
        record = truth[item["id"]]
        want = {
            ref: _expanded(value, index) if ref in expanded else value
            for ref, value in record["references"].items()
        }
        assert item == {**record, "references": want}
    assert all(any(item["references"][ref] for item in got) for ref in expanded)


@pytest.mark.parametrize("name", [CONTACT, CONFIGURATION])
def test_labels_only_with_expand(shared_api: Api, name: str) -> None:
    plain = shared_api.all_items(path_of(name), page=PAGE)
    labelled = shared_api.all_items(path_of(name), page=PAGE, expand="labels")
    assert all("labels" not in item for item in plain)
    assert [{k: v for k, v in item.items() if k != "labels"} for item in labelled] == plain
    labels = [item["labels"] for item in labelled]
    assert any(labels) and not all(labels)
    assert all(label.keys() == {"id", "name"} for group in labels for label in group)


# -- errors ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "params", "named"),
    [
        (CONTACT, {"nope[eq]": "1"}, "nope"),
        (CONTACT, {"nope": "1"}, "nope"),
        (CONTACT, {"name[regex]": "J.*"}, "name[regex]"),
        (CONTACT, {"name[]": "x"}, "name[]"),
        (CONFIGURATION, {"cpu_cores[gte]": "eight"}, "cpu_cores[gte]"),
        (CONFIGURATION, {"ram_gb[lt]": "NaN"}, "ram_gb[lt]"),
        (CONFIGURATION, {"cpu_cores[in]": "8,lots"}, "cpu_cores[in]"),
        (CONTACT, {"important[eq]": "yes"}, "important[eq]"),
        (CONTACT, {"important": "maybe"}, "important"),
        (CONFIGURATION, {"purchased_on[lt]": "2024-13-01"}, "purchased_on[lt]"),
        (CONFIGURATION, {"purchased_on[lt]": "2024-01-01junk"}, "purchased_on[lt]"),
        (CONFIGURATION, {"warranty_expires_at[gt]": "2024-02-30T00:00:00Z"}, "warranty_expires_at"),
        (CONTACT, {"updated_at[gte]": "yesterday"}, "updated_at[gte]"),
        (CONTACT, {"title[null]": "perhaps"}, "title[null]"),
        (CONFIGURATION, {"cpu_cores[contains]": "8"}, "cpu_cores[contains]"),
        (CONTACT, {"important[like]": "t%"}, "important[like]"),
        (CONTACT, {"updated_at[startswith]": "2024"}, "updated_at[startswith]"),
        (CONTACT, {"name[array_contains]": '"J"'}, "name[array_contains]"),
        (CONTACT, {"title[array_length_gt]": "0"}, "title[array_length_gt]"),
        (CONTACT, {"contact_methods[array_length_gt]": "many"}, "contact_methods"),
        (CONTACT, {"contact_methods[array_empty]": "sometimes"}, "contact_methods"),
        (CONFIGURATION, {"ext_admin_password": "x"}, "ext_admin_password"),
        (CONFIGURATION, {"ext_admin_password[null]": "false"}, "ext_admin_password"),
        (LICENSE, {"license_key[startswith]": "LK"}, "license_key"),
        (LICENSE, {"portal_mfa[eq]": "x"}, "portal_mfa"),
        (CONTACT, {"sort": "name", "order": "SIDEWAYS"}, "order"),
        (CONTACT, {"sort": "name,title", "order": "ASC,UP"}, "order"),
        (CONTACT, {"sort": "contact_methods"}, "sort"),
        (CONTACT, {"sort": "references"}, "sort"),
        (CONTACT, {"sort": "nope"}, "sort"),
        (CONFIGURATION, {"sort": "ext_admin_password"}, "sort"),
        (CONFIGURATION, {"cpu_cores[between]": "8"}, "cpu_cores[between]"),
        (CONFIGURATION, {"cpu_cores[between]": "2,8,16"}, "cpu_cores[between]"),
        (CONTACT, {"references.nope": "x"}, "references.nope"),
        (CONTACT, {"fields": "name,nope"}, "fields"),
        (CONTACT, {"include_deleted": "sometimes"}, "include_deleted"),
        ("organizations", {"organization_id": "x"}, "organization_id"),
    ],
)
def test_bad_request(shared_api: Api, name: str, params: Params, named: str) -> None:
    assert_bad_request(shared_api.get(path_of(name), **params), named)


def test_unknown_asset_type_is_404(shared_api: Api) -> None:
    response = shared_api.get(path_of("system.nope"), **{"name[eq]": "x"})
    assert response.status_code == 404
    body = response.json()
    assert (body["statusCode"], body["error"]) == (404, "Not Found")
    assert "system.nope" in body["message"]
