"""A deterministic Lexful account: the same seed and sizes always give the same records.

The data is shaped to catch connectors out: unicode text, contacts with zero, one and
many contact methods, single and multiple references (and nulls), archived rows, a
property that is null everywhere, small groups of records sharing one ``updated_at``
and one bulk-import group larger than a page.
"""

from __future__ import annotations

import gc
import random
import uuid
from dataclasses import dataclass
from typing import Any

from .catalogue import (
    ASSET_TYPE_DEFINITIONS,
    CONFIGURATION,
    CONFIGURATION_KINDS,
    CONTACT,
    CONTACT_METHOD_TYPES,
    CONTACT_TYPES,
    LICENSE,
    LICENSE_TIERS,
    LOCATION,
    ORGANIZATION_STATUSES,
    ORGANIZATION_TYPE_DEFINITIONS,
    USER_ROLES,
    VISIBILITIES,
)
from .store import Collection, Row, Store
from .timestamps import format_instant, parse_instant

FIRST = [
    "Jane",
    "John",
    "José",
    "Zoë",
    "Øyvind",
    "Aiko",
    "Ngozi",
    "Łukasz",
    "Siobhán",
    "李",
    "Chloé",
    "Mehmet",
    "Ana-María",
    "O'Neil",
]
LAST = [
    "Smith",
    "Müller",
    "García",
    "Nakamura",
    "Okafor",
    "Dubois",
    "Kowalski",
    "O'Brien",
    "Nguyễn",
    "王",
    "Iversen",
    "Çelik",
    "Ferreira",
    "Björk",
]
TITLES = ["CTO", "IT Manager", "Office Manager", "CEO", "Sysadmin", "Accountant", None]
WORDS = [
    "alpha",
    "bravo",
    "nørd",
    "straße",
    "café",
    "naïve",
    "日本",
    "🚀 launch",
    "résumé",
    "delta",
    "échelle",
    "quartz",
]
CITIES = [
    ("Berlin", "BE", "DE"),
    ("Austin", "TX", "US"),
    ("Zürich", "ZH", "CH"),
    ("Kraków", "MA", "PL"),
    ("São Paulo", "SP", "BR"),
    ("Osaka", "27", "JP"),
]
VENDORS = ["Dell", "HP", "Lenovo", "Cisco", "Fortinet", "Ubiquiti", "Brother", "Apple"]
PRODUCTS = ["Microsoft 365", "Adobe Acrobat", "Veeam Backup", "SentinelOne", "AutoCAD", "Slack"]
LABELS = ["VIP", "Onboarding", "Legacy", "Priority", "Audit 2025", "Ünïcode"]

START_MS = parse_instant("2023-01-01T00:00:00Z")
CREATED_SPAN_MS = parse_instant("2025-06-01T00:00:00Z") - START_MS
UPDATED_END_MS = parse_instant("2025-12-31T00:00:00Z")
BULK_IMPORT_MS = parse_instant("2025-03-03T03:03:03Z")


@dataclass(frozen=True)
class DatasetSize:
    """How many records of each kind; unset sizes scale with the number of contacts."""

    contacts: int = 200
    organizations: int | None = None
    locations: int | None = None
    configurations: int | None = None
    licenses: int | None = None
    users: int = 12
    archived_share: float = 0.03
    tie_share: float = 0.05
    bulk_import: int | None = None

    def resolved(self) -> dict[str, int]:
        n = self.contacts
        return {
            "organizations": self.organizations or max(3, n // 50),
            LOCATION: self.locations if self.locations is not None else max(2, n // 10),
            CONTACT: n,
            CONFIGURATION: self.configurations if self.configurations is not None else n // 2,
            LICENSE: self.licenses if self.licenses is not None else max(2, n // 20),
        }


class _Generator:
    def __init__(self, store: Store, seed: int, size: DatasetSize) -> None:
        self.store = store
        self.rng = random.Random(seed)
        self.size = size

    def uuid7(self, ms: int) -> str:
        rand = self.rng.getrandbits(74)
        value = (ms & (2**48 - 1)) << 80 | 0x7 << 76 | (rand >> 62) << 64
        return str(uuid.UUID(int=value | 0b10 << 62 | rand & (2**62 - 1)))

    def times(self, count: int) -> list[tuple[int, int, int | None]]:
        """(created, updated, deleted) per record, with ties and one bulk-import group."""
        rng = self.rng
        out: list[tuple[int, int, int | None]] = []
        for _ in range(count):
            created = START_MS + rng.randrange(CREATED_SPAN_MS)
            updated = created + rng.randrange(max(1, UPDATED_END_MS - created))
            if rng.random() < 0.2:
                created -= created % 1000
                updated -= updated % 1000
            if out and rng.random() < self.size.tie_share:
                updated = max(created, out[-1][1])
            deleted = None
            if rng.random() < self.size.archived_share:
                deleted = updated if rng.random() < 0.5 else created + (updated - created) // 2
            out.append((created, updated, deleted))
        if count >= 3 and self.size.archived_share and all(d is None for _, _, d in out):
            created, updated, _ = out[-1]
            out[-1] = (created, updated, updated)  # every type shows at least one archive
        bulk = self.size.bulk_import
        bulk = min(count // 3, 1500) if bulk is None else min(bulk, count)
        start = rng.randrange(count - bulk + 1) if bulk else 0
        for i in range(start, start + bulk):
            created, _, deleted = out[i]
            created = min(created, BULK_IMPORT_MS)
            out[i] = (created, BULK_IMPORT_MS, None if deleted is None else created)
        return out

    def ts(self, ms: int) -> str:
        return format_instant(ms, self.store.settings.timestamp_style, self.rng.randrange(8))

    def text(self, words: int = 4) -> str:
        return " ".join(self.rng.choice(WORDS) for _ in range(words))

    def run(self) -> None:
        store, rng = self.store, self.rng
        counts = self.size.resolved()
        store.account_id = self.uuid7(START_MS)
        users = self.users()
        store.system_user_id = users[0]
        self.users_ = users
        self.org_types()
        orgs = self.organizations(counts["organizations"])
        self.orgs_ = orgs
        _collection(store, "asset_types", ASSET_TYPE_KINDS)
        for definition in ASSET_TYPE_DEFINITIONS:
            created = START_MS if definition["is_system"] else START_MS + 86_400_000
            store.add_asset_type(definition, row_id=self.uuid7(created), at_ms=created)
        times = {t: self.times(counts[t]) for t in (LOCATION, CONTACT, CONFIGURATION, LICENSE)}
        ids = {t: [self.uuid7(c) for c, _, _ in times[t]] for t in times}
        builders = {
            LOCATION: self.location,
            CONTACT: self.contact,
            CONFIGURATION: self.configuration,
            LICENSE: self.license,
        }
        for type_name, builder in builders.items():
            coll = store.asset_types[type_name]
            rows = []
            for row_id, (created, updated, deleted) in zip(
                ids[type_name], times[type_name], strict=True
            ):
                org_id, org_name = rng.choice(orgs)
                doc = {
                    "id": row_id,
                    "organization_id": org_id,
                    "organization_name": org_name,
                    "visibility": rng.choice(VISIBILITIES),
                    "owned_by": rng.choice(users),
                    "name": None,
                    **builder(ids),
                }
                doc["name"] = doc.pop("_name")
                doc["labels"] = self.labels()
                doc.update(
                    created_at=None,
                    updated_at=None,
                    deleted_at=None,
                    created_by=rng.choice(users),
                    updated_by=rng.choice(users),
                )
                row = Row(row_id, doc, created, updated, deleted, rng.randrange(8))
                # Serialized now, while the record is still in the CPU cache: later, with
                # records scattered over gigabytes, it costs ten times as much.
                store.body(coll, row)
                rows.append(row)
            coll.bulk_load(rows)

    def pick(self, ids: list[str]) -> str | None:
        return self.rng.choice(ids) if ids and self.rng.random() < 0.85 else None

    def pick_many(self, ids: list[str]) -> list[str] | None:
        if not ids or self.rng.random() < 0.1:
            return None
        return self.rng.sample(ids, min(len(ids), self.rng.randrange(4)))

    def contact_methods(self) -> list[dict[str, str]]:
        rng = self.rng
        roll = rng.random()
        count = 0 if roll < 0.15 else 1 if roll < 0.5 else rng.randint(2, 4)
        methods = []
        for _ in range(count):
            kind = rng.choice(CONTACT_METHOD_TYPES)
            value = (
                f"user{rng.randrange(10**6)}@example.com"
                if kind == "Email"
                else f"+1-555-{rng.randrange(10**4):04d}"
            )
            methods.append({"type": kind, "value": value})
        return methods

    def contact(self, ids: dict[str, list[str]]) -> dict[str, Any]:
        rng = self.rng
        first, last = rng.choice(FIRST), rng.choice(LAST)
        methods = self.contact_methods()
        return {
            "_name": f"{first} {last}",
            "first_name": first,
            "last_name": last,
            "title": rng.choice(TITLES),
            "important": rng.random() < 0.2,
            "contact_type": rng.choice(CONTACT_TYPES),
            "contact_methods": methods,
            "preferred_contact_method": rng.choice(methods)["type"] if methods else None,
            "notes": f"<p>{self.text()}</p>" if rng.random() < 0.5 else None,
            "references": {"location": self.pick(ids[LOCATION])},
        }

    def location(self, ids: dict[str, list[str]]) -> dict[str, Any]:
        rng = self.rng
        city, region, country = rng.choice(CITIES)
        return {
            "_name": f"{city} {self.text(1)}",
            "address_1": f"{rng.randint(1, 999)} {self.text(1).title()} Street",
            "address_2": None,
            "city": city,
            "region": region,
            "postal_code": f"{rng.randrange(10**5):05d}",
            "country": country,
            "phone": f"+1-555-{rng.randrange(10**4):04d}",
            "notes": f"<p>{self.text()}</p>" if rng.random() < 0.3 else None,
            "ext_opened_on": self.date_or_none(),
            "references": {"ext_primary_contact": self.pick(ids[CONTACT])},
        }

    def configuration(self, ids: dict[str, list[str]]) -> dict[str, Any]:
        rng = self.rng
        host = f"host-{rng.randrange(16**6):06x}"
        return {
            "_name": host,
            "hostname": host,
            "configuration_type": rng.choice(CONFIGURATION_KINDS),
            "manufacturer": rng.choice(VENDORS),
            "model": f"M{rng.randrange(1000)}",
            "serial_number": f"SN{rng.randrange(10**9):09d}",
            "ip_address": f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}",
            "cpu_cores": rng.choice([2, 4, 8, 16, None]),
            "ram_gb": rng.choice([4, 8, 15.5, 32, 64.0, None]),
            "is_managed": rng.random() < 0.7,
            "purchased_on": self.date_or_none(),
            "warranty_expires_at": self.ts(START_MS + rng.randrange(4 * CREATED_SPAN_MS)),
            "notes": f"<p>{self.text()}</p>" if rng.random() < 0.3 else None,
            "ext_asset_tag": f"AT-{rng.randrange(10**6):06d}",
            "ext_admin_password": f"pw-{rng.getrandbits(64):016x}",
            "ext_decommissioned_on": None,
            "references": {
                "location": self.pick(ids[LOCATION]),
                "ext_contacts": self.pick_many(ids[CONTACT]),
            },
        }

    def license(self, ids: dict[str, list[str]]) -> dict[str, Any]:
        rng = self.rng
        product = rng.choice(PRODUCTS)
        items = [
            {
                "sku": f"SKU-{rng.randrange(1000)}",
                "quantity": rng.randint(1, 50),
                "unit_price": round(rng.uniform(1, 500), 2),
            }
            for _ in range(rng.randrange(4))
        ]
        return {
            "_name": f"{product} ({rng.choice(LICENSE_TIERS)})",
            "product": product,
            "tier": rng.choice(LICENSE_TIERS),
            "seats": rng.randint(1, 500),
            "annual_cost": round(rng.uniform(100, 100000), 2),
            "auto_renew": rng.random() < 0.5,
            "starts_on": self.date_or_none(),
            "renews_at": self.ts(START_MS + rng.randrange(4 * CREATED_SPAN_MS)),
            "cancelled_on": None,
            "license_key": f"LK-{rng.getrandbits(80):020x}",
            "portal_mfa": f"JBSWY3DP{rng.getrandbits(40):010X}",
            "agreement": (
                {
                    "id": self.uuid7(START_MS),
                    "name": "agreement.pdf",
                    "mime_type": "application/pdf",
                    "size": rng.randrange(10**6),
                }
                if rng.random() < 0.5
                else None
            ),
            "terms": f"<p>{self.text(8)}</p>",
            "full_text": f"<h1>{product}</h1>"
            + "".join(f"<p>{self.text(12)}</p>" for _ in range(3)),
            "line_items": items,
            "references": {
                "vendor_contact": self.pick(ids[CONTACT]),
                "covered_configurations": self.pick_many(ids[CONFIGURATION]),
            },
        }

    def date_or_none(self) -> str | None:
        if self.rng.random() < 0.2:
            return None
        return format_instant(START_MS + self.rng.randrange(CREATED_SPAN_MS))[:10]

    def labels(self) -> list[dict[str, str]]:
        chosen = self.rng.sample(self.label_ids, self.rng.choice([0, 0, 1, 2]))
        return [{"id": i, "name": n} for i, n in chosen]

    def users(self) -> list[str]:
        rng, coll = self.rng, _collection(self.store, "users", USER_KINDS)
        rows = []
        for i in range(self.size.users):
            created = START_MS + rng.randrange(CREATED_SPAN_MS)
            first, last = rng.choice(FIRST), rng.choice(LAST)
            row_id = self.uuid7(created)
            doc = {
                "id": row_id,
                "account_id": self.store.account_id,
                "email": f"{first.lower()}.{i}@msp.example",
                "role": USER_ROLES[i % len(USER_ROLES)],
                "account_scopes": ["documentation:read"] + (["admin"] if i == 0 else []),
                "organization_scopes": [],
                "first_name": first,
                "last_name": last,
                "external_ids": {"entra": f"ext-{i}"} if i % 2 else {},
                "created_at": None,
                "updated_at": None,
                "deleted_at": None,
            }
            deleted = created + 1000 if i == self.size.users - 1 and i > 0 else None
            rows.append(Row(row_id, doc, created, created, deleted, rng.randrange(8)))
        coll.bulk_load(rows)
        self.label_ids = [(self.uuid7(START_MS), name) for name in LABELS]
        return [r.id for r in rows]

    def org_types(self) -> None:
        coll = _collection(self.store, "organization_types", ORG_TYPE_KINDS)
        rows = []
        for spec in ORGANIZATION_TYPE_DEFINITIONS:
            row_id = self.uuid7(START_MS)
            doc = {"id": row_id, **spec, "created_at": None, "updated_at": None, "deleted_at": None}
            rows.append(Row(row_id, doc, START_MS, START_MS, None, self.rng.randrange(8)))
        coll.bulk_load(rows)

    def organizations(self, count: int) -> list[tuple[str, str]]:
        rng = self.rng
        coll = _collection(self.store, "organizations", ORGANIZATION_KINDS)
        kinds = ["client", "vendor", "partner"]
        rows: list[Row] = []
        for i, (created, updated, deleted) in enumerate(self.times(count)):
            name = (
                "Our MSP"
                if i == 0
                else f"{rng.choice(LAST)} {rng.choice(['GmbH', 'Inc.', 'Ltd', 'S.A.', 'Co.'])} {i}"
            )
            row_id = self.uuid7(created)
            parent = rng.choice(rows).id if rows and rng.random() < 0.2 else None
            if i == 2:
                parent = rows[1].id  # every account shows a hierarchy
            doc = {
                "id": row_id,
                "is_primary": i == 0,
                "name": name,
                "slug": f"org-{i}",
                "type": "internal" if i == 0 else kinds[i - 1] if i <= 3 else rng.choice(kinds),
                "status": rng.choice(ORGANIZATION_STATUSES),
                "description": self.text(6) if rng.random() < 0.5 else None,
                "logo_url": None,
                "website_url": f"https://org-{i}.example.com" if rng.random() < 0.7 else None,
                "notes": f"<p>{self.text()}</p>" if rng.random() < 0.3 else None,
                "alert": "Call before visiting" if rng.random() < 0.05 else None,
                "parent_id": parent,
                "asset_management": rng.random() < 0.5,
                "labels": [],
                "created_at": None,
                "updated_at": None,
                "created_by": self.users_[0],
                "updated_by": rng.choice(self.users_),
                "deleted_at": None,
            }
            rows.append(
                Row(row_id, doc, created, updated, None if i == 0 else deleted, rng.randrange(8))
            )
        for row in rows:
            row.doc["labels"] = self.labels()
        coll.bulk_load(rows)
        return [(r.id, r.doc["name"]) for r in rows]


def _collection(store: Store, name: str, kinds: dict[str, str]) -> Collection:
    coll = Collection(name=name, kinds=kinds)
    store.collections[name] = coll
    return coll


_COMMON = {
    "id": "string",
    "created_at": "instant",
    "updated_at": "instant",
    "deleted_at": "instant",
}
USER_KINDS = {
    **_COMMON,
    "account_id": "string",
    "email": "string",
    "role": "string",
    "account_scopes": "array",
    "organization_scopes": "array",
    "first_name": "string",
    "last_name": "string",
    "external_ids": "object",
}
ORG_TYPE_KINDS = {**_COMMON, "name": "string", "description": "string", "is_system": "boolean"}
ORGANIZATION_KINDS = {
    **_COMMON,
    "is_primary": "boolean",
    "name": "string",
    "slug": "string",
    "type": "string",
    "status": "string",
    "description": "string",
    "logo_url": "string",
    "website_url": "string",
    "notes": "string",
    "alert": "string",
    "parent_id": "string",
    "asset_management": "boolean",
    "labels": "array",
    "created_by": "string",
    "updated_by": "string",
}
ASSET_TYPE_KINDS = {
    **_COMMON,
    "account_id": "string",
    "name": "string",
    "display_name": "string",
    "description": "string",
    "is_system": "boolean",
    "properties": "array",
    "references": "array",
    "version": "integer",
    "created_by": "string",
}


def build_store(store: Store, seed: int, size: DatasetSize) -> Store:
    """Fill an empty store with the account that ``seed`` and ``size`` describe."""
    collecting = gc.isenabled()
    gc.disable()  # everything made here lives on; collecting meanwhile doubles the time
    try:
        _Generator(store, seed, size).run()
    finally:
        if collecting:
            gc.enable()
    return store
