"""Offset pagination, and the exact incremental scan built on it.

Plain offset paging over data that changes while it is read skips records (an edit moves
a record, every later one shifts, the one at the page boundary is never served). The
incremental scan avoids that with a frozen window:

1. Page 0 asks for ``updated_at >= since`` newest first. Its first record gives the
   window's upper bound ``U``; every later page asks for ``since <= updated_at <= U``.
2. Inside a frozen window nothing can enter except at ``U`` itself (at the front), and an
   edit, archive-with-bump or purge can only make a record *leave*. Records that stay
   keep their order, so a page that starts at or before the last record read (``last``)
   leaves no gap behind it. Each page is asked for at ``last``'s offset, sharing that
   record with the page before; one that shares it, or starts with a record newer than
   ``last``, is read on from. One that does not may have been served after records
   before ``last`` left (or ``last`` itself did): it is asked for again further back,
   and further still until one reaches (offset 0 always does). The check holds
   whatever order the server answers in, so a list's next pages are asked for at once
   (``in_flight``), each where it would start if nothing left. Records read twice are
   dropped (by id, once per run). Records that left are newer than ``U`` and come with
   the next run.
3. The next run starts at ``updated_at >= U`` and skips the records it already loaded at
   exactly ``U``, unless their content changed (a second edit within one timestamp tick
   keeps ``U``): boundary records are neither lost nor loaded twice, and a run with no
   changes is a single request (more only if the records sharing ``U`` fill a page).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from queue import Full, Queue
from typing import Any

from .client import LexfulClient, describe
from .errors import MalformedResponseError, PaginationError
from .records import ParsedPage
from .timestamps import format_timestamp, parse_timestamp

# A page's body to a parsed page, or None for the dict path (records.OnDemandDecoder)
Decoder = Callable[[bytes], ParsedPage | None]


@dataclass
class Page:
    records: list[dict[str, Any]] | ParsedPage
    total: int | None
    offset: int

    @property
    def items(self) -> list[dict[str, Any]]:
        """The records; a decoded page makes them here, once: the scan asks for them on the
        thread that gets the page, before any other thread can (``_reaches``)."""
        if isinstance(self.records, ParsedPage):
            self.records = self.records.make_items()
        return self.records


def fetch_page(
    client: LexfulClient,
    path: str,
    params: Mapping[str, Any],
    offset: int,
    limit: int,
    decode: Decoder | None = None,
) -> Page:
    """One list request, checked against the documented response shape. With ``decode``
    a page it takes comes parsed by Arrow (decoding.py); any other, and every page it
    declines (records.OnDemandDecoder), as orjson's dicts."""
    query = {**params, "limit": limit, "offset": offset}
    doc = client.get_json(path, query, decode)
    where = describe("GET", path, query)
    if isinstance(doc, ParsedPage):
        doc.where = where
        return Page(doc, doc.total, offset)
    if not isinstance(doc, dict) or not isinstance(doc.get("items"), list):
        keys = sorted(doc) if isinstance(doc, dict) else type(doc).__name__
        raise MalformedResponseError(f"{where}: response has no 'items' list (got {keys})")
    total = doc.get("total")
    if total is not None and (not isinstance(total, int) or isinstance(total, bool)):
        raise MalformedResponseError(
            f"{where}: 'total' is {type(total).__name__} {total!r}, expected an integer"
        )
    if "total" in doc and total is None:
        raise MalformedResponseError(f"{where}: 'total' is null, expected an integer")
    return Page(doc["items"], total, offset)


def scan_all(
    client: LexfulClient,
    path: str,
    page_size: int,
    params: Mapping[str, Any] | None = None,
    first: Page | None = None,
) -> Iterator[list[dict[str, Any]]]:
    """Every page of a list, stopping on ``offset >= total`` (or a short page when the
    response has no ``total``), and refusing a server that repeats a page forever.
    ``first`` is page 0 when the caller has fetched it already."""
    offset, previous = 0, None
    while True:
        if first is not None:
            page, first = first, None
        else:
            page = fetch_page(client, path, params or {}, offset, page_size)
        ids = [_id_of(item, path, offset + position) for position, item in enumerate(page.items)]
        if ids and ids == previous:
            where = describe("GET", path, {"offset": offset})
            raise PaginationError(f"{where}: the same page was served twice; offset is ignored")
        previous = ids
        if page.items:
            yield page.items
        offset += page_size
        done = offset >= page.total if page.total is not None else len(page.items) < page_size
        if done or not page.items:
            return


@dataclass
class WindowScan:
    """One run's incremental read of a list endpoint; see the module docstring.

    Iterate it for pages of new or changed records; afterwards ``cursor`` and
    ``versions_at_cursor`` (id -> ``digest`` of the record as loaded) are the state the
    next run starts from.
    """

    client: LexfulClient
    path: str
    since: datetime
    known_at_since: Mapping[str, str]  # id -> digest, for records loaded at ``since``
    page_size: int
    digest: Callable[[dict[str, Any]], str]
    params: Mapping[str, Any] = field(default_factory=dict)
    cursor_field: str = "updated_at"  # or deleted_at, to find archives that kept updated_at
    in_flight: int = 1  # requests for the next pages at once (1: each when its turn comes)
    decode: Decoder | None = None  # reads pages straight to tables (records.py, decoding.py)
    cursor: datetime | None = None
    versions_at_cursor: dict[str, str] = field(default_factory=dict)
    records: int = 0
    pages: int = 0
    expected: int | None = None  # records in the window, from page 0's total

    def __post_init__(self) -> None:
        self.cursor = self.since
        self.versions_at_cursor = dict(self.known_at_since)
        self._emitted: set[str] = set()  # this run's ids: a step back re-reads some
        self._ahead: ReadAhead | None = None

    @property
    def page_waiting(self) -> bool:
        """Whether the next page is read already, so taking it costs no wait."""
        return self._ahead is not None and self._ahead.ready

    def _fetch(self, params: Mapping[str, Any], offset: int) -> Page:
        return fetch_page(self.client, self.path, params, offset, self.page_size, self.decode)

    def __iter__(self) -> Iterator[list[dict[str, Any]]]:
        since, key = format_timestamp(self.since), self.cursor_field
        base = {**self.params, f"{key}[gte]": since, "sort": f"{key},id",
                "order": "DESC,DESC", "include_deleted": "true"}  # fmt: skip
        first = self._fetch(base, 0)
        self.pages += 1
        stamps = self._stamps(first)
        fresh = self._accept(first, stamps)
        if not first.items:
            return
        upper = max(stamps)
        self.cursor, self.versions_at_cursor = upper, {}
        self._note_cursor(first.items, stamps, fresh)
        if fresh:
            yield fresh
        if first.total is None:
            yield from self._seek_without_totals(base, first)
            return
        window = {**base, f"{key}[lte]": format_timestamp(upper)}
        self.expected = first.total
        pages = self._window_pages(window, first)
        if self.in_flight > 1:
            pages = self._ahead = ReadAhead(pages, self.in_flight - 1)
        try:
            for page in pages:
                stamps = self._stamps(page)
                fresh = self._accept(page, stamps)
                self._note_cursor(page.items, stamps, fresh)
                if fresh:
                    yield fresh
        finally:
            pages.close()  # stops the read-ahead thread when the reader stops early

    def _window_pages(self, window: Mapping[str, Any], first: Page) -> Generator[Page]:
        """The window's pages after page 0, each read on from only once it reaches back to
        the last record read (see the module docstring). Which offsets come next depends
        on the pages got so far alone, so this can run ahead of the reading
        (``ReadAhead``) and, while no page is being asked for again, ask for several at
        once on the guess that each comes full (``Requests``)."""
        step = self.page_size - 1  # pages share one record
        guard = 3 * (first.total // step + 2) + 10
        requests = Requests(
            lambda offset: self._fetch(window, offset),
            self.in_flight,
            pace=lambda: self._ahead.pace if self._ahead else 0.0,
        )
        previous = first
        while previous.items and previous.offset + len(previous.items) < previous.total:
            last = previous.items[-1]
            anchor = previous.offset + len(previous.items) - 1  # where ``last`` was
            last_stamp = self._stamp(last, anchor)
            offset, back = anchor, 0
            while True:
                guess = range(offset + step, previous.total, step) if not back else ()
                page = requests.take(offset, guess)
                self.pages += 1
                if self.pages > guard:
                    raise PaginationError(
                        f"GET {self.path}: more than {guard} requests for a window of "
                        f"{first.total} records; the server keeps changing or ignores offset"
                    )
                if page.total is None:
                    raise MalformedResponseError(
                        f"{describe('GET', self.path, {'offset': offset})}: 'total' disappeared"
                    )
                if self._reaches(page, last["id"], last_stamp):
                    break
                # Records before ``last`` left the window (as many as ``total`` shrank by,
                # unless others entered at the front), or ``last`` did: step back further
                # each time, as records may keep leaving.
                back = max(2 * back, previous.total - page.total, 1)
                offset = max(anchor - back, 0)
            yield page
            previous = page

    def _reaches(self, page: Page, last_id: str, last_stamp: datetime) -> bool:
        """Whether ``page`` starts at or before the last record read: at the window's
        front, with a record newer than it, or holding it (ties: its id). Makes the
        page's records, which the reader then takes as made."""
        items = page.items
        if page.offset == 0:
            return True
        if not items:
            return False
        head = items[0]
        if _identity(head, self.path, page.offset) == last_id:
            return True
        if self._stamp(head, page.offset) > last_stamp:
            return True
        where = enumerate(items, page.offset)
        return any(_id_of(item, self.path, position) == last_id for position, item in where)

    def _seek_without_totals(self, base: Mapping[str, Any], first: Page) -> Iterator[list[dict]]:
        """For list responses without ``total`` (tolerated): with no count to watch, seek
        instead of counting. Each page asks for records at or below the oldest stamp read
        so far and skips the ones already read at exactly that stamp, so records leaving
        the window shift nothing; only one leaving the very tie being read could."""
        page, stamps = first, self._stamps(first)
        floor, at_floor = None, 0
        while True:
            for stamp in stamps:
                floor, at_floor = (floor, at_floor + 1) if stamp == floor else (stamp, 1)
            if len(page.items) < self.page_size or floor is None:
                return
            window = {**base, f"{self.cursor_field}[lte]": format_timestamp(floor)}
            page = self._fetch(window, at_floor)
            self.pages += 1
            stamps = self._stamps(page)
            fresh = self._accept(page, stamps)
            self._note_cursor(page.items, stamps, fresh)
            if fresh:
                yield fresh

    def _stamps(self, page: Page) -> list[datetime]:
        """Each record's cursor value, parsed once per page; checks every record has the
        fields every record has, naming the endpoint and offset of one that does not."""
        stamps = []
        for position, item in enumerate(page.items):
            _identity(item, self.path, page.offset + position)
            stamps.append(self._stamp(item, page.offset + position))
        return stamps

    def _accept(self, page: Page, stamps: list[datetime]) -> list[dict[str, Any]]:
        """The page's records minus those already emitted or loaded by the last run."""
        fresh = []
        for item, stamp in zip(page.items, stamps, strict=True):
            record_id = item["id"]
            if record_id in self._emitted:
                continue
            if stamp == self.since and self.known_at_since.get(record_id) == self.digest(item):
                continue
            self._emitted.add(record_id)
            fresh.append(item)
        self.records += len(fresh)
        return fresh

    def _note_cursor(
        self, items: list[dict[str, Any]], stamps: list[datetime], fresh: list[dict[str, Any]]
    ) -> None:
        """Remember the version loaded of each record at the cursor. A record read again
        after this run emitted it may have changed within the same instant: its version
        here is not the one loaded, so it must not be remembered (if it was emitted at an
        older stamp, it is left out, and the next run loads it again)."""
        if self.cursor not in stamps:  # most pages: nothing at the cursor
            return
        emitted_now = {item["id"] for item in fresh}
        for item, stamp in zip(items, stamps, strict=True):
            record_id = item["id"]
            if stamp != self.cursor:
                continue
            if record_id in emitted_now:
                self.versions_at_cursor[record_id] = self.digest(item)
            elif record_id not in self._emitted:  # skipped as loaded already, unchanged
                self.versions_at_cursor[record_id] = self.known_at_since[record_id]

    def _stamp(self, item: dict[str, Any], position: int) -> datetime:
        """The record's cursor value, or an error naming the endpoint and offset."""
        value = item.get(self.cursor_field)
        if isinstance(value, str):
            try:
                return parse_timestamp(value)
            except ValueError:
                problem = f"has {self.cursor_field} {value!r}, not an ISO-8601 timestamp"
        else:
            problem = f"without a '{self.cursor_field}'"
        where = describe("GET", self.path, {"offset": position})
        raise MalformedResponseError(f"{where}: record {item.get('id')} {problem}")


def _id_of(item: Any, path: str, position: int) -> str:
    """A record's id, or an error naming the endpoint and offset."""
    record_id = item.get("id") if isinstance(item, dict) else None
    if isinstance(record_id, str) and record_id:
        return record_id
    where = describe("GET", path, {"offset": position})
    if not isinstance(item, dict):
        raise MalformedResponseError(f"{where}: item is {type(item).__name__}, not an object")
    raise MalformedResponseError(f"{where}: record without an 'id'")


def _identity(item: Any, path: str, position: int) -> str:
    """A record's id and that it has the fields every record has, or an error naming
    the endpoint and offset."""
    record_id = _id_of(item, path, position)
    if not isinstance(item.get("updated_at"), str):
        where = describe("GET", path, {"offset": position})
        raise MalformedResponseError(f"{where}: record {record_id} without an 'updated_at'")
    return record_id


class ReadAhead(Iterator[Page]):
    """``pages``, produced on a daemon thread up to ``depth`` pages ahead of the reader,
    so the next requests are answered while this process turns the last page into
    tables. A reader that stops early (``close``) stops the producer after its current
    page, and the producer's errors are raised to the reader."""

    def __init__(self, pages: Iterator[Page], depth: int) -> None:
        self._queue: Queue[tuple[str, Any]] = Queue(maxsize=depth)
        self._stop = threading.Event()
        self._pages = pages
        self._done = False
        self.pace = 0.0  # seconds the reader keeps a page before it wants the next
        self._taken: float | None = None  # when the reader took its last page
        threading.Thread(target=self._produce, daemon=True, name="lexful-read-ahead").start()

    def _wanted(self) -> None:
        """The reader wants its next page: how long it kept the last one."""
        if self._taken is not None:
            kept, self._taken = time.monotonic() - self._taken, None
            self.pace = _smoothed(self.pace, kept)

    @property
    def ready(self) -> bool:
        """Whether the next page (or the end) is already here: ``next`` will not wait.
        Asking means the reader wants it, which ``pace`` counts."""
        self._wanted()
        return self._done or not self._queue.empty()

    def __next__(self) -> Page:
        if self._done:
            raise StopIteration
        self._wanted()
        kind, value = self._queue.get()
        if kind == "page":
            self._taken = time.monotonic()
            return value
        self.close()
        if kind == "error":
            raise value
        raise StopIteration

    def close(self) -> None:
        self._done = True
        self._stop.set()

    def _offer(self, item: tuple[str, Any]) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except Full:
                continue
        return False

    def _produce(self) -> None:
        try:
            for page in self._pages:
                if not self._offer(("page", page)):
                    return
            self._offer(("end", None))
        except BaseException as exc:  # raised again by the reader
            self._offer(("error", exc))


class Requests:
    """A list's pages asked for before their turn, answered in the reader's order: as
    many at once as it takes for the next to be in when the reader wants it, the time a
    request takes over the time the reader keeps a page (``pace``), rounded down, from
    1 to ``limit`` (``limit`` until both are known). Over a slow network a list so keeps
    ``limit`` requests in flight (a load with every answer 50 ms late took 5.2 s instead
    of 8.8); over loopback, where the reader is the slower side, mostly one: always 4
    made a load 8% slower, more threads contending for the interpreter lock. At one at a
    time the page is fetched on the caller's thread; beyond, each on a daemon thread of
    its own, which a run that stops early does not wait for. A page asked for on a guess
    the reader then drops is not waited for, nor its error raised."""

    def __init__(self, fetch: Callable[[int], Page], limit: int, pace: Callable[[], float]) -> None:
        self._fetch, self._limit, self._pace = fetch, max(limit, 1), pace
        self._width = self._limit  # until both times are known
        self._took = 0.0  # seconds a request takes, answer parsed
        self._pending: dict[int, Future[Page]] = {}

    def take(self, offset: int, then: Iterable[int] = ()) -> Page:
        """The page at ``offset``; meanwhile the offsets likely wanted next (``then``, as
        many as the width allows) are asked for. Pending pages off that plan are
        dropped; those on it are kept, however narrow the width has become."""
        pace = self._pace()
        if pace and self._took:
            self._width = min(max(int(self._took / pace), 1), self._limit)
        plan = [offset, *islice(then, self._limit - 1)]
        for dropped in self._pending.keys() - set(plan):
            del self._pending[dropped]
        for planned in plan[: self._width]:
            if planned not in self._pending and (planned != offset or self._width > 1):
                self._pending[planned] = self._start(planned)
        if offset not in self._pending:
            return self._timed(offset)  # on this thread: one hop fewer per page
        return self._pending.pop(offset).result()

    def _timed(self, offset: int) -> Page:
        started = time.monotonic()
        page = self._fetch(offset)
        self._took = _smoothed(self._took, time.monotonic() - started)
        return page

    def _start(self, offset: int) -> Future[Page]:
        future: Future[Page] = Future()

        def run() -> None:
            try:
                future.set_result(self._timed(offset))
            except BaseException as exc:  # raised by take(), if the page is still wanted
                future.set_exception(exc)

        threading.Thread(target=run, daemon=True, name="lexful-page").start()
        return future


def _smoothed(average: float, value: float) -> float:
    """A running average that follows the last few values (0: none yet)."""
    return value if not average else 0.8 * average + 0.2 * value
