"""What each destination table must hold, derived from the sandbox's ground truth.

Written from the API's documented shapes, not from the connector's schema code, so the
tests do not check the connector against itself.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

from lexful_source.sandbox import LexfulSandbox

BASE = ["id", "organization_id", "organization_name", "visibility", "owned_by", "name",
        "created_at", "updated_at", "deleted_at", "created_by", "updated_by"]  # fmt: skip
INSTANTS = {"created_at", "updated_at", "deleted_at"}
ORGANIZATION = ["id", "is_primary", "name", "slug", "type", "status", "description",
                "logo_url", "website_url", "notes", "alert", "parent_id", "asset_management",
                "labels", "created_at", "updated_at", "created_by", "updated_by",
                "deleted_at"]  # fmt: skip


def instant(text: str | None) -> datetime | None:
    if text is None:
        return None
    moment = datetime.fromisoformat(text)
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def table_of(type_name: str) -> str:
    return type_name.replace(".", "_")


def _value(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if kind in ("instant", "datetime"):
        return instant(value)
    if kind == "date":
        return date.fromisoformat(value)
    if kind == "number":
        return float(value)
    if kind == "file":
        return json.dumps(value, sort_keys=True)
    return value


def expected_tables(sandbox: LexfulSandbox) -> dict[str, list[dict[str, Any]]]:
    """Every incremental table, keyed by its name, as lists of rows."""
    tables: dict[str, list[dict[str, Any]]] = {}
    orgs = sandbox.truth("organizations")
    tables["organizations"] = [
        {c: instant(o[c]) if c in INSTANTS else _labels(o[c]) if c == "labels" else o[c]
         for c in ORGANIZATION}
        for o in orgs
    ]  # fmt: skip
    for definition in sandbox.truth("asset_types"):
        name, table = definition["name"], table_of(definition["name"])
        props = definition["properties"]
        kinds = {p["name"]: p["type"] for p in props if p["type"] not in ("secret", "totp")}
        scalars = [p for p, k in kinds.items() if k != "array"]
        arrays = [p for p, k in kinds.items() if k == "array"]
        rows, refs = [], []
        children: dict[str, list[dict[str, Any]]] = {a: [] for a in arrays}
        for record in sandbox.truth(name):
            row = {c: instant(record[c]) if c in INSTANTS else record[c] for c in BASE}
            row.update({p: _value(record.get(p), kinds[p]) for p in scalars})
            rows.append(row)
            for prop in arrays:
                for position, item in enumerate(record.get(prop) or []):
                    children[prop].append({"asset_id": record["id"], "position": position, **item})
            position = 0
            # positions follow the reference names' order, not the response's key order
            for ref_name, target in sorted((record.get("references") or {}).items()):
                for target_id in target if isinstance(target, list) else [target]:
                    if target_id is not None:
                        refs.append({"asset_id": record["id"], "position": position,
                                     "reference_name": ref_name,
                                     "referenced_asset_id": target_id})  # fmt: skip
                        position += 1
        tables[table] = rows
        tables[f"{table}__references"] = refs
        for prop, child_rows in children.items():
            tables[f"{table}__{prop}"] = child_rows
    return tables


def _labels(labels: Any) -> str:
    return json.dumps(labels, sort_keys=True)


def normalize(row: dict[str, Any], expected: dict[str, Any]) -> dict[str, Any]:
    """A destination row in the expected row's terms: instants in UTC, JSON parsed."""
    out = {}
    for key, want in expected.items():
        got = row.get(key)
        if isinstance(got, datetime):
            got = got.astimezone(UTC) if got.tzinfo else got.replace(tzinfo=UTC)
        elif isinstance(want, str) and want[:1] in "[{" and isinstance(got, str):
            got = json.dumps(json.loads(got), sort_keys=True)
        elif isinstance(got, (dict, list)):
            got = json.dumps(got, sort_keys=True)
        elif isinstance(want, float) and isinstance(got, (int, float)):
            got = float(got)
        out[key] = got
    return out


def assert_matches(actual: dict[str, list[dict[str, Any]]], sandbox: LexfulSandbox) -> None:
    """Every table equal to the truth, row by row (parents by id, children by position)."""
    expected = expected_tables(sandbox)
    for table, rows in expected.items():
        got = actual.get(table, [])
        key = ("id",) if "id" in (rows[0] if rows else {"id": 1}) else ("asset_id", "position")
        want = sorted(rows, key=lambda r: tuple(str(r[k]) for k in key))
        got_rows = sorted(got, key=lambda r: tuple(str(r[k]) for k in key))
        assert len(got_rows) == len(want), f"{table}: {len(got_rows)} rows, truth has {len(want)}"
        for g, w in zip(got_rows, want, strict=True):
            got_row = normalize(g, w)
            diff = {k: (got_row[k], w[k]) for k in w if got_row[k] != w[k]}
            assert not diff, f"{table} row {tuple(w[k] for k in key)}: (loaded, truth) {diff}"
