"""Edits, archives, restores and purges, stamped by a clock the tests control."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from lexful_source.sandbox import LexfulSandbox, ManualClock
from lexful_source.sandbox.catalogue import CONTACT
from lexful_source.sandbox.timestamps import parse_instant

from ..conftest import Api

ASSETS = f"/v1/assets/{CONTACT}"
NOW = "2026-06-01T08:00:00.000Z"


@pytest.fixture
def world(make_sandbox: Callable[..., LexfulSandbox], api_for) -> tuple[LexfulSandbox, Api]:
    sandbox = make_sandbox(contacts=40, clock=ManualClock(NOW))
    return sandbox, api_for(sandbox)


def live_contact(sandbox: LexfulSandbox) -> dict:
    return next(r for r in sandbox.truth(CONTACT) if r["deleted_at"] is None)


@pytest.mark.parametrize("bumps", [False, True])
def test_archive_is_a_soft_delete(
    make_sandbox: Callable[..., LexfulSandbox], api_for, bumps: bool
) -> None:
    sandbox = make_sandbox(contacts=20, clock=ManualClock(NOW), archive_bumps_updated_at=bumps)
    api = api_for(sandbox)
    record = live_contact(sandbox)
    assert api.http.delete(f"{ASSETS}/{record['id']}").status_code == 204
    assert record["id"] not in {r["id"] for r in api.all_items(ASSETS)}
    archived = {r["id"]: r for r in api.all_items(ASSETS, include_deleted="true")}[record["id"]]
    assert archived["deleted_at"] == NOW
    assert (archived["updated_at"] == NOW) is bumps
    assert api.http.delete(f"{ASSETS}/{record['id']}").status_code == 404


def test_edits_are_stamped_by_the_clock_and_can_tie(world: tuple[LexfulSandbox, Api]) -> None:
    sandbox, api = world
    a, b = [r["id"] for r in sandbox.truth(CONTACT, include_deleted=False)[:2]]
    for asset_id in (a, b):
        response = api.http.patch(f"{ASSETS}/{asset_id}", json={"title": "Ünïcode Chief"})
        assert response.status_code == 200, response.text
    sandbox.clock.advance(1.5)  # type: ignore[attr-defined]
    assert api.http.patch(f"{ASSETS}/{a}", json={"important": True}).status_code == 200
    stamps = {r["id"]: r["updated_at"] for r in api.items(ASSETS, **{"updated_at[gte]": NOW})}
    assert stamps == {b: NOW, a: "2026-06-01T08:00:01.500Z"}


def test_restore_and_purge(world: tuple[LexfulSandbox, Api]) -> None:
    sandbox, api = world
    store, coll = sandbox.store, sandbox.store.assets(CONTACT)
    record = live_contact(sandbox)
    store.archive(coll, record["id"])
    store.restore(coll, record["id"])
    assert api.get(f"{ASSETS}/{record['id']}").json()["deleted_at"] is None
    store.purge(coll, record["id"])
    assert api.get(f"{ASSETS}/{record['id']}", include_deleted="true").status_code == 404
    assert record["id"] not in {r["id"] for r in sandbox.truth(CONTACT)}


def test_an_insert_while_paging_shows_in_total(world: tuple[LexfulSandbox, Api]) -> None:
    sandbox, api = world
    org = sandbox.truth("organizations", include_deleted=False)[0]
    inserted: list[str] = []

    def insert_once(info) -> None:
        if info.param("offset") == "10" and not inserted:
            body = {"organization_id": org["id"], "important": False, "first_name": "Late"}
            inserted.append(sandbox.app.create_asset(CONTACT, body).id)

    first = api.get(ASSETS, limit=10, offset=0, sort="updated_at").json()
    sandbox.on_request = insert_once
    second = api.get(ASSETS, limit=10, offset=10, sort="updated_at").json()
    assert second["total"] == first["total"] + 1
    assert inserted[0] in {r["id"] for r in sandbox.truth(CONTACT)}


def test_write_validation_names_the_field(world: tuple[LexfulSandbox, Api]) -> None:
    sandbox, api = world
    org_id = sandbox.truth("organizations", include_deleted=False)[0]["id"]
    cases = [
        ({"organization_id": org_id}, "important"),
        ({"organization_id": org_id, "important": "yes"}, "important"),
        ({"organization_id": org_id, "important": True, "contact_type": "Boss"}, "contact_type"),
        ({"organization_id": "missing", "important": True}, "organization_id"),
        ({"organization_id": org_id, "important": True, "shoe_size": 9}, "shoe_size"),
        ({"organization_id": org_id, "important": True,
          "references": {"location": "x"}}, "location"),
        ({"organization_id": org_id, "important": True,
          "contact_methods": [{"type": "Pager", "value": "1"}]}, "contact_methods"),
    ]  # fmt: skip
    for body, field in cases:
        response = api.http.post(ASSETS, json=body)
        assert response.status_code == 400, body
        assert field in response.json()["message"]


def test_created_records_get_ids_and_times(world: tuple[LexfulSandbox, Api]) -> None:
    sandbox, api = world
    org_id = sandbox.truth("organizations", include_deleted=False)[0]["id"]
    body = {"organization_id": org_id, "important": True, "first_name": "Ada", "last_name": "L"}
    created = api.http.post(ASSETS, json=body).json()
    assert created["name"] == "Ada L"
    assert created["created_at"] == created["updated_at"] == NOW
    assert created["id"][14] == "7", "ids look like UUIDv7"
    assert parse_instant(created["created_at"]) == sandbox.clock.now_ms()
    assert created in sandbox.truth(CONTACT)
