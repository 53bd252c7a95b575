"""limit/offset paging, totals, list shapes and single-record reads."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from lexful_source.sandbox import LexfulSandbox
from lexful_source.sandbox.catalogue import CONTACT

from ..conftest import Api

ASSETS = f"/v1/assets/{CONTACT}"


@pytest.mark.parametrize("limit", ["0", "1001", "-1", "ten", "2.5"])
def test_limit_outside_bounds_is_400(shared_api: Api, limit: str) -> None:
    response = shared_api.get(ASSETS, limit=limit)
    assert response.status_code == 400
    assert "limit" in response.json()["message"]


@pytest.mark.parametrize("offset", ["-1", "x"])
def test_bad_offset_is_400(shared_api: Api, offset: str) -> None:
    response = shared_api.get(ASSETS, offset=offset)
    assert response.status_code == 400
    assert "offset" in response.json()["message"]


@pytest.mark.parametrize("limit", [1, 1000])
def test_limit_bounds_are_accepted(shared_api: Api, limit: int) -> None:
    doc = shared_api.get(ASSETS, limit=limit).json()
    assert doc["limit"] == limit
    assert len(doc["items"]) == min(limit, doc["total"])


def test_default_page_is_100(shared_api: Api, shared_sandbox: LexfulSandbox) -> None:
    doc = shared_api.get(ASSETS).json()
    live = shared_sandbox.truth(CONTACT, include_deleted=False)
    assert (doc["limit"], doc["offset"], doc["total"]) == (100, 0, len(live))
    assert len(doc["items"]) == 100 < len(live)


@pytest.mark.parametrize("past", [0, 1, 5000])
def test_offset_at_or_past_total_is_empty(shared_api: Api, past: int) -> None:
    total = shared_api.get(ASSETS, limit=1).json()["total"]
    doc = shared_api.get(ASSETS, offset=total + past).json()
    assert doc["items"] == []
    assert doc["total"] == total


@pytest.mark.parametrize("page", [1, 7, 100, 1000])
def test_pages_concatenate_to_the_truth(
    shared_api: Api, shared_sandbox: LexfulSandbox, page: int
) -> None:
    want = shared_sandbox.truth(CONTACT, include_deleted=True)
    got = shared_api.all_items(ASSETS, page=page, sort="id", include_deleted="true")
    assert got == want


def test_total_counts_every_match_not_the_page(shared_api: Api) -> None:
    full = shared_api.all_items(ASSETS, **{"important[eq]": "true"})
    doc = shared_api.get(ASSETS, limit=3, offset=2, **{"important[eq]": "true"}).json()
    assert doc["total"] == len(full) > 5
    assert len(doc["items"]) == 3


@pytest.mark.parametrize("order", ["ASC", "DESC", "DESC,DESC", "ASC,ASC"])
@pytest.mark.parametrize("include_deleted", ["true", "false"])
@pytest.mark.parametrize("bound", ["gte", "gt", "lte", "lt", "eq"])
def test_indexed_incremental_query_matches_a_full_scan(
    shared_api: Api, shared_sandbox: LexfulSandbox, bound: str, include_deleted: str, order: str
) -> None:
    """The bisected fast path must answer exactly as the filtered scan does."""
    stamps = sorted(r["updated_at"] for r in shared_sandbox.truth(CONTACT, include_deleted=False))
    pivot = stamps[len(stamps) // 2]
    params = {f"updated_at[{bound}]": pivot, "sort": "updated_at,id", "order": order}
    params["include_deleted"] = include_deleted
    fast = shared_api.all_items(ASSETS, page=50, **params)
    scan = shared_api.all_items(ASSETS, page=50, **params, **{"id[null]": "false"})
    assert fast == scan
    assert 0 < len(fast) < len(stamps) or bound == "eq"
    assert fast, "the pivot itself always matches eq/gte/lte"


def test_items_only_list_shape(make_sandbox: Callable[..., LexfulSandbox], api_for) -> None:
    api = api_for(make_sandbox(contacts=20, list_shape="items_only"))
    doc = api.get(ASSETS, limit=5).json()
    assert list(doc) == ["items"]
    assert len(doc["items"]) == 5


def test_single_reads_and_archived_records(shared_api: Api, shared_sandbox: LexfulSandbox) -> None:
    records = shared_sandbox.truth(CONTACT)
    live = next(r for r in records if r["deleted_at"] is None)
    archived = next(r for r in records if r["deleted_at"] is not None)
    assert shared_api.get(f"{ASSETS}/{live['id']}").json() == live
    assert shared_api.get(f"{ASSETS}/{archived['id']}").status_code == 404
    assert shared_api.get(f"{ASSETS}/{archived['id']}", include_deleted="true").json() == archived
    org = shared_sandbox.truth("organizations", include_deleted=False)[0]
    assert shared_api.get(f"/v1/organizations/{org['id']}").json() == org


def test_asset_type_by_id_or_name(shared_api: Api) -> None:
    catalogue = shared_api.items("/v1/asset_types", limit=1000)
    for entry in catalogue:
        assert shared_api.get(f"/v1/asset_types/{entry['name']}").json() == entry
        assert shared_api.get(f"/v1/asset_types/{entry['id']}").json() == entry
    assert shared_api.get("/v1/asset_types/nope").status_code == 404


@pytest.mark.parametrize(
    "path", ["/v1/assets/system.nope", "/v1/assets/system.nope/123", "/v1/nothing", "/v2/assets"]
)
def test_unknown_types_and_routes_are_404(shared_api: Api, path: str) -> None:
    response = shared_api.get(path)
    assert response.status_code == 404
    assert response.json()["statusCode"] == 404


@pytest.mark.parametrize(
    "path", ["/v1/organizations", "/v1/organization_types", "/v1/users", "/v1/asset_types"]
)
def test_reference_lists_page_like_assets(shared_api: Api, path: str) -> None:
    everything = shared_api.all_items(path, page=2, include_deleted="true", sort="id")
    assert len(everything) == shared_api.get(path, include_deleted="true").json()["total"] > 2
    assert [r["id"] for r in everything] == sorted(r["id"] for r in everything)
