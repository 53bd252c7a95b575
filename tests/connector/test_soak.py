"""The soak at CI size: 10% of all requests fail (5xx, dropped connections, 429s), the
token request included, through a full load and an incremental one; both end equal to the
truth. ``benchmarks/soak.py`` runs the same at 100,000 contacts and prints its figures."""

from __future__ import annotations

from collections.abc import Callable

from lexful_source.sandbox import LexfulSandbox
from lexful_source.sandbox.catalogue import CONTACT

from .conftest import Loader
from .test_load import check


def test_a_load_with_one_request_in_ten_failing_equals_the_truth(
    duckdb_loader: Loader, make_sandbox: Callable[..., LexfulSandbox]
) -> None:
    sandbox = make_sandbox(contacts=3000, fault_rate=0.10, fault_seed=7)
    args = {"source_args": {"page_size": 100, "backoff_s": 0.01}}
    summary = duckdb_loader.run(sandbox, **args)
    check(duckdb_loader, sandbox)
    faults = sum(sandbox.stats.by_fault.values())
    assert faults >= 5 and summary.retries == faults, (faults, summary.retries)

    for record in sandbox.truth(CONTACT, include_deleted=False)[::100]:
        sandbox.app.edit_asset(CONTACT, record["id"], {"title": "Soaked"})
    sandbox.stats.reset()
    second = duckdb_loader.run(sandbox, **args)
    check(duckdb_loader, sandbox)
    assert second.rows["system_contact"] == 30
