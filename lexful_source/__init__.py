"""The Lexful dlt source: organizations, reference data and one resource per asset type.

Configuration comes from dlt's providers (``.dlt/config.toml``, ``.dlt/secrets.toml``,
environment variables such as ``SOURCES__LEXFUL__API_KEY_SECRET``)::

    [sources.lexful]
    api_base_url = "https://api.us.lexful.app"
    account_id = "..."
    # secrets.toml
    api_key_id = "..."
    api_key_secret = "..."
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Sequence
from typing import Any

import dlt
from dlt.extract.resource import DltResource

from .client import LexfulClient
from .errors import ConfigurationError, UnknownAssetTypeError
from .paging import scan_all
from .resources import (
    asset_types_resource,
    catalogue_resources,
    incremental_resource,
    reconcile_resource,
)
from .schema import asset_table_spec, organizations_spec
from .settings import ASSET_TYPES_PATH, DEFAULT_API_BASE_URL, DEFAULT_START_DATE, MAX_PAGE_SIZE
from .timestamps import parse_timestamp

__all__ = ["lexful_source", "select_asset_types"]

# Arrow tables skip dlt's normalizer; have it stamp _dlt_load_id anyway, so a Parquet
# dataset (append-only) can tell the versions of a record apart (see parquet_views.py).
os.environ.setdefault("NORMALIZE__PARQUET_NORMALIZER__ADD_DLT_LOAD_ID", "true")


def select_asset_types(available: Sequence[str], wanted: Sequence[str] | str | None) -> list[str]:
    """The asset types to load: names or glob patterns; each must match something."""
    if wanted is None or wanted == "*" or wanted == []:
        return list(available)
    patterns = [w.strip() for w in (wanted.split(",") if isinstance(wanted, str) else wanted)]
    chosen: list[str] = []
    for pattern in filter(None, patterns):
        matches = fnmatch.filter(available, pattern)
        if not matches:
            raise UnknownAssetTypeError(
                f"asset type {pattern!r} is not in this Lexful account; available: "
                f"{', '.join(sorted(available))}"
            )
        chosen.extend(m for m in matches if m not in chosen)
    return chosen


@dlt.source(name="lexful", max_table_nesting=2)
def lexful_source(
    account_id: str = dlt.config.value,
    api_key_id: str = dlt.secrets.value,
    api_key_secret: str = dlt.secrets.value,
    api_base_url: str = DEFAULT_API_BASE_URL,
    asset_types: Sequence[str] | str | None = None,
    start_date: str = DEFAULT_START_DATE,
    page_size: int = MAX_PAGE_SIZE,
    detect_archives: bool = True,
    reconcile: dict[str, dict[str, str | None]] | None = None,
) -> list[DltResource]:
    """Every asset type in the account (or those matching ``asset_types``), organizations,
    organization types, users and the asset-type catalogue.

    With ``reconcile`` (table -> {id: deleted_at} as the destination holds them; see
    ``pipeline.run_load(reconcile=True)``), the source makes those tables equal Lexful's
    records instead of reading changes: an id-only scan, refetches and purge tombstones.

    ``start_date`` bounds the first load of each incremental resource; later loads start
    where the last one ended. ``detect_archives`` adds one request per resource and run to
    find records archived without a new ``updated_at``; turn it off only if your account
    is known to move ``updated_at`` on archive. The catalogue is read when the source is
    created, so a new custom type in Lexful becomes a new table on the next run.
    """
    if not 1 <= int(page_size) <= MAX_PAGE_SIZE:
        raise ConfigurationError(
            f"sources.lexful.page_size must be between 1 and {MAX_PAGE_SIZE}, got {page_size}"
        )
    try:
        start = parse_timestamp(start_date)
    except ValueError:
        raise ConfigurationError(
            f"sources.lexful.start_date must be an ISO-8601 date or timestamp, got {start_date!r}"
        ) from None
    client = LexfulClient(api_base_url, account_id, api_key_id, api_key_secret)
    definitions: list[dict[str, Any]] = [
        d for page in scan_all(client, ASSET_TYPES_PATH, int(page_size)) for d in page
    ]
    by_name = {d["name"]: d for d in definitions if not d.get("deleted_at")}
    chosen = select_asset_types(list(by_name), asset_types)
    resources = [
        asset_types_resource(definitions),
        *catalogue_resources(client, int(page_size)),
    ]
    specs = [organizations_spec(), *(asset_table_spec(by_name[name]) for name in chosen)]
    taken = {r.name for r in resources}
    for spec in specs:
        if spec.name in taken:
            raise ConfigurationError(
                f"asset type {spec.path.rsplit('/', 1)[-1]!r} would load into table "
                f"{spec.name!r}, which another table already uses; leave it out with "
                "sources.lexful.asset_types"
            )
        taken.add(spec.name)
    if reconcile is not None:
        return [
            reconcile_resource(client, spec, reconcile[spec.name], int(page_size))
            for spec in specs
            if spec.name in reconcile
        ]
    resources += [
        incremental_resource(client, spec, start, int(page_size), bool(detect_archives))
        for spec in specs
    ]
    return resources
