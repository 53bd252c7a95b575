"""Property: random edits, inserts, archives, restores and purges, interleaved with the
connector's page requests over several runs, lose nothing. After each run every contact
that no operation touched during that run is in the destination exactly as the truth has
it (children included); what was touched comes with the next run. A last run with
``reconcile=True`` then makes every table equal the truth.

The clock often stands still between operations, so ties are common, and a record is
often changed again within the instant it already carries.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from lexful_source.sandbox import (
    DatasetSize,
    LexfulSandbox,
    ManualClock,
    RequestInfo,
    SandboxSettings,
)
from lexful_source.sandbox.catalogue import CONTACT

from .conftest import Loader
from .test_incremental import CHANGES, CONTACT_PATH, CONTACTS, START, Hook, new_contact
from .test_load import check
from .truth import expected_tables, normalize

EXAMPLES = int(os.environ.get("LEXFUL_PROPERTY_EXAMPLES", "15"))
STEPS_MS = (0, 1, 2, 1000)  # the clock moves this much before an operation; 0 makes ties


@dataclass(frozen=True)
class Op:
    kind: str  # edit | insert | archive | restore | purge
    target: int  # index into the records it may apply to, newest first as the scan reads
    at: int  # runs before this contacts request of the run (1-based); if none, after it
    step_ms: int


@dataclass(frozen=True)
class Touch:
    """Live contacts edited between runs, so that the next run's window spans pages."""

    count: int
    start: int  # the first one's index among live contacts, newest first
    step_ms: int  # 0: all of them one tie


@dataclass(frozen=True)
class RunPlan:
    touches: tuple[Touch, ...]  # before the run
    ops: tuple[Op, ...]  # while it is paging


@dataclass(frozen=True)
class Scenario:
    archive_bumps_updated_at: bool
    timestamp_style: str
    contacts: int
    page_size: int
    seed: int
    runs: tuple[RunPlan, ...]


INDEX = st.one_of(st.integers(0, 60), st.integers(0, 10_000))  # often among the newest
OPS = st.builds(
    Op,
    kind=st.sampled_from(("edit", "insert", "archive", "restore", "purge")),
    target=INDEX,
    at=st.integers(1, 16),
    step_ms=st.sampled_from(STEPS_MS),
)
TOUCHES = st.builds(
    Touch, count=st.integers(0, 60), start=INDEX, step_ms=st.sampled_from((0, 1, 1000))
)
RUNS = st.builds(
    RunPlan,
    touches=st.lists(TOUCHES, max_size=3).map(tuple),
    ops=st.lists(OPS, max_size=10).map(tuple),
)
SCENARIOS = st.builds(
    Scenario,
    archive_bumps_updated_at=st.booleans(),
    timestamp_style=st.sampled_from(("millis", "mixed")),
    contacts=st.integers(150, 300),
    page_size=st.integers(20, 60),
    seed=st.integers(1, 50),
    runs=st.lists(RUNS, min_size=2, max_size=4).map(tuple),
)


class World:
    """The sandbox's contacts, changed by a scenario's operations; remembers which records
    a run may not have seen yet."""

    def __init__(self, sandbox: LexfulSandbox, clock: ManualClock, bumps: bool) -> None:
        self.sandbox, self.clock, self.bumps = sandbox, clock, bumps
        self.rows = sandbox.store.assets(CONTACT).rows
        self.touched: set[str] = set()  # changed while the current run was paging
        self.unseen: set[str] = set()  # restored keeping updated_at: for the reconcile run
        self.edits = 0
        self.log: list[str] = []  # noted from the test's thread: the hook runs in the server's
        self.errors: list[BaseException] = []  # raised in the hook, where nobody would see them
        self.left_over: list[Op] = []  # the last run's operations it made no request for

    def pool(self, kind: str) -> list[str]:
        """The records an operation may apply to, newest first (the changes scan's order)."""
        archived = kind == "restore"
        rows = [
            r
            for r in self.rows.values()
            if kind == "purge" or archived == (r.deleted_ms is not None)
        ]
        return [r.id for r in sorted(rows, key=lambda r: (r.updated_ms, r.id), reverse=True)]

    def apply(self, op: Op, during: bool, where: str) -> None:
        self.clock.advance(ms=op.step_ms)
        if op.kind == "insert":
            target = new_contact(self.sandbox)
        else:
            pool = self.pool(op.kind)
            if not pool:
                return
            target = pool[op.target % len(pool)]
            if op.kind == "edit":
                self.edit(target)
            else:
                CHANGES[op.kind](self.sandbox, target)
        if op.kind == "restore" and not self.bumps:
            self.unseen.add(target)
        else:
            self.unseen.discard(target)
        if during:
            self.touched.add(target)
        self.log.append(f"{where}: {op.kind} {target} at {self.clock.now_ms()}")

    def edit(self, target: str) -> None:
        self.edits += 1
        n = self.edits
        methods = [{"type": "Fax", "value": f"{n}-{k}"} for k in range(n % 3)]
        changes: dict[str, Any] = {"title": f"Edit {n}", "contact_methods": methods}
        if n % 2:
            changes["references"] = {"location": None}
        self.sandbox.app.edit_asset(CONTACT, target, changes)

    def touch(self, touch: Touch, number: int) -> None:
        """Edit ``touch.count`` live contacts in a row (each edit moves the one edited
        before the others, so the next index is the next record)."""
        for k in range(min(touch.count, len(self.pool("edit")))):
            self.apply(Op("edit", touch.start + k, 0, touch.step_ms), False, f"before run {number}")


def is_contacts_request(info: RequestInfo) -> bool:
    return info.method == "GET" and info.path == CONTACT_PATH


def batches(ops: Iterable[Op]) -> list[list[Op]]:
    """The run's operations grouped by the request they run before, in request order."""
    ordered = sorted(ops, key=lambda op: op.at)
    return [list(group) for _, group in groupby(ordered, key=lambda op: op.at)]


def assert_nothing_lost(loader: Loader, sandbox: LexfulSandbox, excluded: set[str]) -> None:
    """Every contact in the truth but ``excluded`` is loaded exactly as the truth has it,
    child rows included (stale or duplicate ones fail too)."""
    expected = {n: r for n, r in expected_tables(sandbox).items() if n.split("__")[0] == CONTACTS}
    loaded = loader.tables(list(expected))
    checked = {r["id"] for r in expected[CONTACTS]} - excluded
    for name, rows in expected.items():
        owner, key = ("id", ("id",)) if name == CONTACTS else ("asset_id", ("asset_id", "position"))

        def order(row: dict[str, Any], key: tuple[str, ...] = key) -> tuple[str, ...]:
            return tuple(str(row[k]) for k in key)

        want = sorted((r for r in rows if r[owner] in checked), key=order)
        got = sorted((r for r in loaded[name] if r[owner] in checked), key=order)
        want_keys, got_keys = [order(r) for r in want], [order(r) for r in got]
        missing = sorted(set(want_keys) - set(got_keys))
        extra = sorted(k for k in got_keys if got_keys.count(k) > want_keys.count(k))
        assert want_keys == got_keys, f"{name}: missing {missing[:5]}, extra {extra[:5]}"
        for g, w in zip(got, want, strict=True):
            row = normalize(g, w)
            diff = {k: (row[k], w[k]) for k in w if row[k] != w[k]}
            assert not diff, f"{name} row {order(w)}: (loaded, truth) {diff}"


def run_with_changes(
    loader: Loader,
    sandbox: LexfulSandbox,
    world: World,
    plan: RunPlan,
    number: int,
    paged: dict[str, Any],
) -> None:
    """One run, the plan's operations applied before the contacts requests they name;
    those naming requests the run never made are left in ``world.left_over``."""
    pending = batches(plan.ops)
    queue = iter(pending)

    def act() -> None:
        try:
            for op in next(queue):
                world.apply(op, True, f"run {number}, before contacts request {op.at}")
        except BaseException as exc:  # the server would drop the connection
            world.errors.append(exc)

    sandbox.on_request = hook = Hook(is_contacts_request, act, at={b[0].at for b in pending})
    try:
        loader.run(sandbox, **paged)
    finally:
        sandbox.on_request = None
    assert not world.errors, world.errors
    world.left_over = [op for batch in pending[hook.fired :] for op in batch]
    world.log.append(f"run {number}: {hook.seen} contacts requests")


@pytest.mark.timeout(120 + 30 * EXAMPLES)  # one test for all examples: about 8 s each
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=os.environ.get("CI", "").lower() in ("1", "true", "yes"),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(scenario=SCENARIOS)
def test_random_changes_while_paging_lose_nothing(scenario: Scenario) -> None:
    clock = ManualClock(START)
    sandbox_settings = SandboxSettings(
        seed=scenario.seed,
        size=DatasetSize(contacts=scenario.contacts),
        clock=clock,
        timestamp_style=scenario.timestamp_style,  # type: ignore[arg-type]
        archive_bumps_updated_at=scenario.archive_bumps_updated_at,
    )
    with (
        tempfile.TemporaryDirectory() as workdir,
        contextlib.chdir(workdir),  # the DuckDB file lands in the working directory
        LexfulSandbox(sandbox_settings) as sandbox,
    ):
        loader = Loader("duckdb", Path(workdir))
        paged = {"source_args": {"page_size": scenario.page_size}}
        world = World(sandbox, clock, scenario.archive_bumps_updated_at)
        try:
            for number, plan in enumerate(scenario.runs, 1):
                for touch in plan.touches:
                    world.touch(touch, number)
                run_with_changes(loader, sandbox, world, plan, number, paged)
                assert_nothing_lost(loader, sandbox, world.touched | world.unseen)
                world.touched.clear()
                for op in world.left_over:  # past the run's last request: between runs
                    world.apply(op, False, f"after run {number}")
            loader.run(sandbox, reconcile=True, **paged)
            check(loader, sandbox)
        finally:
            note("\n".join(world.log))
