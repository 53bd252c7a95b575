"""Variants the API notes say to tolerate, and definitions that could trip the mapping."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from lexful_source.errors import MalformedResponseError
from lexful_source.sandbox import LexfulSandbox, ManualClock, RequestInfo
from lexful_source.sandbox.catalogue import CONTACT
from lexful_source.schema import asset_table_spec
from lexful_source.tables import build_tables
from lexful_source.timestamps import format_timestamp, parse_timestamp

from .conftest import Loader
from .test_load import check

VAULT = {
    "name": "vault_entry",
    "display_name": "Vault entry",
    "is_system": False,
    "properties": [
        {"name": "label", "type": "string", "display_name": "Label", "required": True},
        {"name": "recovery_codes", "type": "array", "display_name": "Codes",
         "array": {"type": "secret"}},
        {"name": "steps", "type": "array", "display_name": "Steps",
         "array": {"type": "object", "properties": [
             {"name": "position", "type": "integer", "display_name": "Position"},
             {"name": "note", "type": "string", "display_name": "Note"},
             {"name": "pin", "type": "secret", "display_name": "PIN"},
             {"name": "backup_pins", "type": "array", "display_name": "Backup",
              "array": {"type": "totp"}}]}},
    ],
    "references": [],
}  # fmt: skip
PLANTED = ["S3CRET-CODE-1", "S3CRET-PIN-2", "S3CRET-TOTP-3"]


def test_items_only_pages_lose_nothing_while_records_change(
    duckdb_loader: Loader, make_sandbox: Callable[..., LexfulSandbox]
) -> None:
    """Without ``total`` the scan seeks by stamp; edits while paging shift nothing."""
    clock = ManualClock("2026-03-01T00:00:00Z")
    sandbox = make_sandbox(contacts=300, list_shape="items_only", clock=clock)
    served = sandbox.truth(CONTACT)
    newest_first = sorted(served, key=lambda r: (r["updated_at"], r["id"]), reverse=True)
    edited = [r["id"] for r in newest_first[:3]]  # on the first page, read already

    def edit_while_paging(info: RequestInfo) -> None:
        if info.path.endswith(CONTACT) and info.param("offset") not in (None, "0") and edited:
            clock.advance(1)
            sandbox.app.edit_asset(CONTACT, edited.pop(), {"title": "moved to the end"})

    sandbox.on_request = edit_while_paging
    duckdb_loader.run(sandbox, source_args={"page_size": 50})
    loaded = {r["id"] for r in duckdb_loader.tables(["system_contact"])["system_contact"]}
    assert {r["id"] for r in served} <= loaded, "a record at a page boundary was skipped"
    sandbox.on_request = None
    duckdb_loader.run(sandbox, source_args={"page_size": 50})
    check(duckdb_loader, sandbox)


def test_lists_of_secrets_are_never_loaded(
    duckdb_loader: Loader, make_sandbox: Callable[..., LexfulSandbox]
) -> None:
    sandbox = make_sandbox(contacts=10, secret_values="clear")
    sandbox.store.add_asset_type(VAULT)
    org = sandbox.truth("organizations", include_deleted=False)[0]["id"]
    step = {"position": 1, "note": "first", "pin": PLANTED[1], "backup_pins": [PLANTED[2]]}
    body = {"organization_id": org, "label": "router", "recovery_codes": [PLANTED[0]],
            "steps": [step]}  # fmt: skip
    sandbox.app.create_asset("vault_entry", body)
    summary = duckdb_loader.run(sandbox)
    assert summary.rows["vault_entry"] == 1
    assert "vault_entry__recovery_codes" not in summary.rows
    steps = duckdb_loader.tables(["vault_entry__steps"])["vault_entry__steps"]
    assert [(r["item_position"], r["note"]) for r in steps] == [(1, "first")]
    with duckdb_loader.pipeline().sql_client() as client:
        dump = str(
            client.execute_sql(
                f"select * from {client.make_qualified_table_name('vault_entry__steps')}"
            )
        )
    assert not any(secret in dump for secret in PLANTED)


def test_a_fraction_in_an_integer_property_fails_naming_it() -> None:
    definition = {"name": "x.y", "properties": [{"name": "seats", "type": "integer"}]}
    spec = asset_table_spec(definition)
    record = {"id": "a", "updated_at": "2026-01-01T00:00:00Z", "seats": 5.0}
    assert build_tables(spec, [record])[0][1]["seats"].to_pylist() == [5]
    with pytest.raises(MalformedResponseError, match=r"x_y\.seats.*5\.5"):
        build_tables(spec, [{**record, "seats": 5.5}])


@pytest.mark.parametrize(
    "stamp", ["2026-01-01T00:00:00.123Z", "2026-01-01T00:00:00.123456Z", "2026-01-01T00:00:00Z"]
)
def test_cursors_keep_their_precision(stamp: str) -> None:
    assert parse_timestamp(format_timestamp(parse_timestamp(stamp))) == parse_timestamp(stamp)


def test_an_asset_type_named_like_another_table_is_refused(
    duckdb_loader: Loader, make_sandbox: Callable[..., LexfulSandbox]
) -> None:
    sandbox = make_sandbox(contacts=5)
    sandbox.store.add_asset_type({**VAULT, "name": "users"})
    with pytest.raises(Exception, match=r"'users'.*sources\.lexful\.asset_types"):
        duckdb_loader.run(sandbox)
