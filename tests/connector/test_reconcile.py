"""Reconcile mode: what incremental reads cannot see (purges, restores that keep
updated_at) is made right by an id-only pass, in every destination."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from lexful_source.sandbox import LexfulSandbox, ManualClock
from lexful_source.sandbox.catalogue import CONFIGURATION, CONTACT

from .conftest import Loader
from .test_load import check


def test_reconcile_removes_purged_and_reloads_restored_records(
    loader: Loader, make_sandbox: Callable[..., LexfulSandbox]
) -> None:
    sandbox = make_sandbox(contacts=1200, clock=ManualClock("2026-04-01T00:00:00Z"))
    loader.run(sandbox)
    store = sandbox.store
    contacts, configs = store.assets(CONTACT), store.assets(CONFIGURATION)
    live = sandbox.truth(CONTACT, include_deleted=False)
    with_methods = next(c["id"] for c in live if c["contact_methods"])
    store.purge(contacts, with_methods)
    store.purge(configs, sandbox.truth(CONFIGURATION)[0]["id"])
    archived = next(c["id"] for c in sandbox.truth(CONTACT) if c["deleted_at"])
    store.restore(contacts, archived)  # keeps updated_at: no incremental read sees it

    sandbox.stats.reset()
    summary = loader.run(sandbox, reconcile=True)
    assert summary.reconciled == {"purged": 2, "refetched": 1}
    check(loader, sandbox)
    scans = Counter(
        r.path
        for r in sandbox.stats.log
        if r.params and ("fields", "id,updated_at,deleted_at") in r.params
    )
    assert scans[f"/v1/assets/{CONTACT}"] == 2  # 1,199 ids in pages of 1,000

    again = loader.run(sandbox, reconcile=True)
    assert again.reconciled == {"purged": 0, "refetched": 0}
    check(loader, sandbox)


def test_a_record_missed_by_paging_is_purged_only_if_really_gone(
    duckdb_loader: Loader, make_sandbox: Callable[..., LexfulSandbox]
) -> None:
    """The id-only scan pages by offset too: a record it misses is looked up by id before
    anything is deleted."""
    sandbox = make_sandbox(contacts=300)
    duckdb_loader.run(sandbox)
    first = sandbox.truth(CONTACT)[0]["id"]

    def purge_while_scanning(info) -> None:  # shifts every later id one place left
        if (
            info.param("fields")
            and info.param("offset") == "100"
            and first in sandbox.store.assets(CONTACT).rows
        ):
            sandbox.store.purge(sandbox.store.assets(CONTACT), first)

    sandbox.on_request = purge_while_scanning
    summary = duckdb_loader.run(sandbox, reconcile=True, source_args={"page_size": 100})
    # The shift hid one live record from the scan; the lookup kept it. The purged one was
    # already counted as present, so the next reconcile removes it.
    assert summary.reconciled == {"purged": 0, "refetched": 0}
    loaded = {r["id"] for r in duckdb_loader.tables(["system_contact"])["system_contact"]}
    assert {r["id"] for r in sandbox.truth(CONTACT)} <= loaded
    sandbox.on_request = None
    assert duckdb_loader.run(sandbox, reconcile=True).reconciled == {"purged": 1, "refetched": 0}
    check(duckdb_loader, sandbox)
