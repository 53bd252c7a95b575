"""The Lexful dlt source: organizations, reference data and one resource per asset type.

Configuration comes from dlt's providers (``.dlt/config.toml``, ``.dlt/secrets.toml``,
environment variables such as ``SOURCES__LEXFUL__API_KEY_SECRET``)::

    [sources.lexful]
    api_base_url = "https://api.us.lexful.app"
    account_id = "..."
    requests_per_minute = 300    # optional: stay under the API's rate limit
    on_forbidden = "skip"        # optional: skip (with a warning) types the key may not read
    # secrets.toml
    api_key_id = "..."
    api_key_secret = "..."
"""

from __future__ import annotations

import fnmatch
import logging
import os
from collections.abc import Sequence
from typing import Any

import dlt
from dlt.extract.resource import DltResource

from .budget import RequestBudget
from .client import LexfulClient, RetryPolicy
from .errors import ConfigurationError, UnknownAssetTypeError
from .paging import scan_all
from .resources import (
    asset_types_resource,
    catalogue_resources,
    incremental_resource,
    reconcile_resource,
)
from .schema import asset_table_spec, organizations_spec
from .settings import (
    ASSET_TYPES_PATH,
    CATALOGUE_RESOURCES,
    CONCURRENT_REQUESTS,
    DEFAULT_API_BASE_URL,
    DEFAULT_START_DATE,
    MAX_PAGE_SIZE,
    ON_FORBIDDEN,
    REQUEST_TIMEOUT_S,
)
from .timestamps import parse_timestamp

__all__ = ["lexful_source", "select_asset_types"]
log = logging.getLogger("lexful_source")

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
    max_attempts: int = RetryPolicy.max_attempts,
    backoff_s: float = RetryPolicy.backoff_s,
    request_timeout_s: float = REQUEST_TIMEOUT_S,
    concurrent_requests: int = CONCURRENT_REQUESTS,
    requests_per_minute: float | None = None,
    on_forbidden: str = "fail",
    reload_reference_data: bool = False,
    reconcile: dict[str, dict[str, str | None]] | None = None,
    destination_tables: Sequence[str] | None = None,
    parquet_files: bool = False,
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

    ``max_attempts``, ``backoff_s`` and ``request_timeout_s`` set the retry policy;
    ``requests_per_minute`` paces requests below the API's rate limit;
    ``concurrent_requests`` bounds the requests in flight across resources; each list asks
    for up to that many of its next pages at once, ahead of their conversion to tables
    (1: each page when its turn comes).
    ``on_forbidden`` says what a 403 on one resource does: ``fail`` the run, or ``skip``
    that resource with a warning in the run summary (its cursor stays where it was).

    Reference data (the catalogue, users, organization types) is replaced only when it
    changed since the last load; ``reload_reference_data`` replaces it anyway (a full
    refresh sets it: it drops the tables after the source is built).

    ``destination_tables`` (the tables the destination holds, less those a full refresh
    drops; ``pipeline.run_load`` passes them) lets a type loaded for the first time
    append instead of merge, which halves the load step. Without them every load merges:
    an append is safe only where the run that follows a crash removes what a re-run load
    job repeated, which ``run_load`` does.

    ``parquet_files`` hands dlt each asset type's tables as Parquet files the source
    writes on a thread of its own, instead of as Arrow tables, which dlt's extract would
    write on the thread that makes them (loader_files.py). The destination must import
    Parquet files as they are: ``run_load`` sets it for DuckDB.
    """
    # 2 at least: consecutive pages of a list share a record (paging.py)
    _check_range("page_size", page_size, 2, MAX_PAGE_SIZE)
    _check_range("max_attempts", max_attempts, 1, 100)
    _check_range("backoff_s", backoff_s, 0, 600)
    _check_range("request_timeout_s", request_timeout_s, 0.1, 3600)
    _check_range("concurrent_requests", concurrent_requests, 1, 32)
    if requests_per_minute is not None:
        _check_range("requests_per_minute", requests_per_minute, 1, 1_000_000)
    if on_forbidden not in ON_FORBIDDEN:
        raise ConfigurationError(
            f"sources.lexful.on_forbidden must be one of {', '.join(ON_FORBIDDEN)}, "
            f"got {on_forbidden!r}"
        )
    try:
        start = parse_timestamp(start_date)
    except ValueError:
        raise ConfigurationError(
            f"sources.lexful.start_date must be an ISO-8601 date or timestamp, got {start_date!r}"
        ) from None
    client = LexfulClient(
        api_base_url,
        account_id,
        api_key_id,
        api_key_secret,
        retry=RetryPolicy(max_attempts=int(max_attempts), backoff_s=float(backoff_s)),
        timeout=float(request_timeout_s),
        budget=RequestBudget(float(requests_per_minute) if requests_per_minute else None),
        concurrent_requests=int(concurrent_requests),
    )
    log.debug("Lexful at %s: %s", client.base_url, client.describe())
    skip_forbidden = on_forbidden == "skip"
    definitions: list[dict[str, Any]] = [
        d for page in scan_all(client, ASSET_TYPES_PATH, int(page_size)) for d in page
    ]
    by_name = {d["name"]: d for d in definitions if not d.get("deleted_at")}
    chosen = select_asset_types(list(by_name), asset_types)
    specs = [organizations_spec(), *(asset_table_spec(by_name[name]) for name in chosen)]
    taken = {"asset_types", *CATALOGUE_RESOURCES}
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
            reconcile_resource(client, spec, reconcile[spec.name], int(page_size), skip_forbidden)
            for spec in specs
            if spec.name in reconcile
        ]
    reload = bool(reload_reference_data)
    catalogue = asset_types_resource(definitions, reload)
    resources = [] if catalogue is None else [catalogue]
    resources += catalogue_resources(client, int(page_size), skip_forbidden, reload)
    resources += [
        incremental_resource(
            client,
            spec,
            start,
            int(page_size),
            bool(detect_archives),
            skip_forbidden,
            None if destination_tables is None else frozenset(destination_tables),
            bool(parquet_files),
        )
        for spec in specs
    ]
    return resources


def _check_range(name: str, value: float, low: float, high: float) -> None:
    try:
        ok = low <= float(value) <= high
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ConfigurationError(
            f"sources.lexful.{name} must be a number from {low:g} to {high:g}, got {value!r}"
        )
