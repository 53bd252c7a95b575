"""The seeded account: deterministic, and shaped to catch connectors out."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest

from lexful_source.sandbox import DatasetSize, LexfulSandbox, SandboxSettings
from lexful_source.sandbox.catalogue import (
    CONFIGURATION,
    CONTACT,
    LICENSE,
    LOCATION,
    PROPERTY_TYPES,
)
from lexful_source.sandbox.dataset import build_store
from lexful_source.sandbox.store import MASK, Store
from lexful_source.sandbox.timestamps import ManualClock, parse_instant

from ..conftest import Api

COLLECTIONS = ["organizations", "organization_types", "users", "asset_types"]
ASSET_TYPES = [CONTACT, LOCATION, CONFIGURATION, LICENSE]


def snapshot(seed: int, contacts: int) -> dict[str, list[dict]]:
    store = build_store(Store(ManualClock()), seed, DatasetSize(contacts=contacts))
    return {name: store.truth(name) for name in COLLECTIONS + ASSET_TYPES}


def test_same_seed_same_account_other_seed_other_account() -> None:
    first, again, other = snapshot(7, 120), snapshot(7, 120), snapshot(8, 120)
    assert first == again
    for name in ["organizations", CONTACT, CONFIGURATION]:
        assert first[name] != other[name]


@pytest.mark.parametrize("contacts", [1, 10, 2000])
def test_sizes(contacts: int) -> None:
    size = DatasetSize(contacts=contacts)
    data = snapshot(3, contacts)
    for name, count in size.resolved().items():
        assert len(data[name]) == count
    assert len(data["users"]) == size.users


def test_catalogue(shared_api: Api) -> None:
    types = {t["name"]: t for t in shared_api.items("/v1/asset_types")}
    assert {CONTACT, LOCATION, CONFIGURATION} <= {n for n, t in types.items() if t["is_system"]}
    custom = [t for t in types.values() if not t["is_system"]]
    assert [t["name"] for t in custom] == [LICENSE]
    used = {p["type"] for t in types.values() for p in t["properties"]}
    assert used == set(PROPERTY_TYPES)
    ext = [p["name"] for p in types[CONFIGURATION]["properties"] if p["name"].startswith("ext_")]
    assert "ext_admin_password" in ext
    refs = {r["name"]: r for r in types[CONFIGURATION]["references"]}
    assert refs["ext_contacts"]["multiple"] and not refs["location"]["multiple"]
    assert refs["location"]["target_asset_types"] == [LOCATION]
    contact = {p["name"]: p for p in types[CONTACT]["properties"]}
    assert contact["important"]["required"] is True
    assert len(contact["contact_type"]["enum"]) == 8


def test_older_reference_key_variant(make_sandbox: Callable[..., LexfulSandbox], api_for) -> None:
    api = api_for(make_sandbox(contacts=5, reference_target_key="target_entity_types"))
    for entry in api.items("/v1/asset_types"):
        for ref in entry["references"]:
            assert "target_entity_types" in ref and "target_asset_types" not in ref


def test_shapes_that_catch_connectors(shared_sandbox: LexfulSandbox) -> None:
    contacts = shared_sandbox.truth(CONTACT)
    method_counts = Counter(min(len(c["contact_methods"]), 2) for c in contacts)
    assert set(method_counts) == {0, 1, 2}
    locations = Counter(type(c["references"]["location"]).__name__ for c in contacts)
    assert set(locations) == {"str", "NoneType"}
    configs = shared_sandbox.truth(CONFIGURATION)
    multi = Counter(type(c["references"]["ext_contacts"]).__name__ for c in configs)
    assert set(multi) == {"list", "NoneType"}
    assert any(len(c["references"]["ext_contacts"] or []) > 1 for c in configs)
    for name in [*ASSET_TYPES, "organizations"]:
        assert any(r["deleted_at"] for r in shared_sandbox.truth(name)), name
    assert all(c["ext_decommissioned_on"] is None for c in configs)
    text = str(contacts)
    assert (any(ord(ch) > 0xFFFF for ch in text) and "ü" in text) or "ø" in text.lower()
    orgs = shared_sandbox.truth("organizations")
    assert any(o["parent_id"] for o in orgs)
    assert {o["type"] for o in orgs} >= {"client", "vendor", "internal"}
    assert sum(o["is_primary"] for o in orgs) == 1


def test_secrets_are_masked_in_lists_but_held(shared_sandbox: LexfulSandbox) -> None:
    licenses = shared_sandbox.truth(LICENSE)
    assert {lic["license_key"] for lic in licenses} == {MASK}
    assert {lic["portal_mfa"] for lic in licenses} == {MASK}
    held = shared_sandbox.store.hidden_values()
    assert len(held) == 2 * len(licenses) + len(shared_sandbox.truth(CONFIGURATION))
    assert not any(value in str(licenses) for value in held)


@pytest.mark.parametrize("mode", ["omit", "clear"])
def test_secret_display_modes(mode: str) -> None:
    settings = SandboxSettings(size=DatasetSize(contacts=20), secret_values=mode)
    sandbox = LexfulSandbox(settings)
    license_ = sandbox.truth(LICENSE)[0]
    if mode == "omit":
        assert "license_key" not in license_ and "portal_mfa" not in license_
    else:
        assert license_["license_key"] in sandbox.store.hidden_values()


def test_ties_small_groups_and_a_bulk_import_bigger_than_a_page() -> None:
    store = build_store(Store(ManualClock()), 5, DatasetSize(contacts=4000))
    stamps = Counter(r["updated_at"] for r in store.truth(CONTACT))
    sizes = sorted(stamps.values(), reverse=True)
    assert sizes[0] > 1000
    assert sum(1 for s in sizes[1:] if s >= 2) > 20


def test_mixed_timestamp_forms_are_the_same_instants() -> None:
    def stamps(style: str) -> list[tuple[str, int]]:
        store = Store(ManualClock())
        store.settings.timestamp_style = style  # type: ignore[assignment]
        rows = build_store(store, 9, DatasetSize(contacts=200)).truth(CONTACT)
        return [(r["id"], r["updated_at"]) for r in rows]

    plain, mixed = stamps("millis"), stamps("mixed")
    assert [(i, parse_instant(t)) for i, t in plain] == [(i, parse_instant(t)) for i, t in mixed]
    forms = {("Z" if t.endswith("Z") else t[-6:], "." in t) for _, t in mixed}
    assert {("Z", True), ("+00:00", True)} <= forms
    assert len({f for f, _ in forms}) >= 3
