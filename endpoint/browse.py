"""The operations page's message tabs (``/ops/messages``), as Sidekiq's web UI has them: what is
queued, processing, retrying, failed, dead, and the pushes pending or dead, each with its count,
filtered by integration and store, searched by message id or shipment number, a page at a time,
newest first; and the bulk replay of a filtered list.

What each tab reads, so a page costs the same however much history Redis holds:

* retrying, failed, dead: the state indexes (``Listings.in_states``): exact counts (one ``ZCARD``
  of the filtered index), one index read and one record per row.
* queued, processing: the ``watch`` set (every unfinished message), pending pushes: the
  ``outbox``, dead pushes: ``dead:deliveries``, read a window at a time (``Listings.in_set``):
  a page looks at most ``WINDOW`` entries; filtered, it may hold fewer rows than asked and the
  next page goes on. Their counts are exact without a filter where a set holds only them (the
  pushes); otherwise counted among the newest ``COUNTED`` entries of their set, shown as "at
  least" when the set holds more.
* search: the records named by the id in each integration, and the ``number:<number>`` index
  (messages naming a shipment or order number, written when they are received).

Only this module knows the tabs; the routes, forms and their protection are ``endpoint.ops``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from werkzeug.datastructures import MultiDict

from endpoint import listing
from endpoint.access import Wiring
from endpoint.listing import BadQuery
from worker.integrations import registry
from worker.pipeline import replay
from worker.pipeline.replay import Refusal
from worker.store.bundle import Store
from worker.store.listings import SHOWN_FIELDS, Position
from worker.store.record import Record
from worker.store.schema import (
    DEAD_DELIVERIES,
    NUMBER_LONGEST,
    OUTBOX,
    WATCH,
    DeliveryStatus,
    MessageStatus,
    RecordField,
    record_key,
    split_member,
    state_key,
)

F = RecordField
WINDOW = 500  # entries of a set a page looks at, at most
COUNTED = 1000  # entries of a set its tabs are counted among, at most
SEARCH_SHOWN = 100  # rows a search shows, at most
BULK_MOST = 200  # messages one bulk replay takes, at most: submit again for more
LONGEST_SEARCH = max(NUMBER_LONGEST, 200)
# An entry name above every entry, so that a position "at this time" includes all of its ties.
LAST_ENTRY = "\U0010ffff"

Kind = Literal["message", "delivery"]


@dataclass(frozen=True)
class Tab:
    name: str  # in the URL (``?tab=``)
    title: str
    describes: str  # what the tab lists, under its title
    at: str  # what the time column shows
    status: MessageStatus | None = None  # a state index's tab: its state
    key: str = ""  # otherwise the set it reads
    wanted: Callable[[dict[str, str]], bool] = lambda _: True
    replays: Kind | None = None  # what its bulk replay replays (None: none)


def _status_is(status: str) -> Callable[[dict[str, str]], bool]:
    return lambda f: f.get(F.STATUS) == status


def _delivery_is(status: str) -> Callable[[dict[str, str]], bool]:
    return lambda f: f.get(F.DELIVERY) == status


TABS: tuple[Tab, ...] = (
    Tab(
        "queued",
        "Queued",
        "Received or replayed, waiting for a worker (or for their provider's pace).",
        "received",
        key=WATCH,
        wanted=_status_is(MessageStatus.QUEUED),
    ),
    Tab(
        "processing",
        "Processing",
        "A worker holds them now.",
        "started",
        key=WATCH,
        wanted=_status_is(MessageStatus.PROCESSING),
    ),
    Tab(
        "retrying",
        "Retrying",
        "An attempt failed; the next one is scheduled.",
        "next attempt",
        status=MessageStatus.RETRYING,
    ),
    Tab(
        "failed",
        "Failed",
        "Refused for good by their provider (no retry would help): replayable.",
        "failed at",
        status=MessageStatus.FAILED,
        replays="message",
    ),
    Tab(
        "dead",
        "Dead",
        "Ran out of retries: replayable.",
        "dead since",
        status=MessageStatus.DEAD,
        replays="message",
    ),
    Tab(
        "pushes",
        "Pending pushes",
        "Answers waiting to be pushed to the hub.",
        "next push",
        key=OUTBOX,
        wanted=_delivery_is(DeliveryStatus.PENDING),
    ),
    Tab(
        "dead-pushes",
        "Dead pushes",
        "Answers the hub never took: their delivery is replayable.",
        "dead since",
        key=DEAD_DELIVERIES,
        wanted=_delivery_is(DeliveryStatus.DEAD),
        replays="delivery",
    ),
)
BY_NAME = {t.name: t for t in TABS}
DEFAULT_TAB = "failed"


@dataclass(frozen=True)
class Query:
    tab: Tab
    integration: str | None
    store: str | None
    search: str | None
    limit: int
    after: Position | None

    def filters(self) -> dict[str, str]:
        """The query's filter as URL parameters (without its cursor)."""
        given = {"tab": self.tab.name, "integration": self.integration, "store": self.store}
        if self.search:
            given["q"] = self.search
        if self.limit != listing.DEFAULT_LIMIT:
            given["limit"] = str(self.limit)
        return {k: v for k, v in given.items() if v}


def query_of(args: MultiDict[str, str]) -> Query:
    """The page's query from its parameters; raises ``BadQuery`` (400) naming the one wrong."""
    tab = args.get("tab") or DEFAULT_TAB
    if tab not in BY_NAME:
        known = ", ".join(BY_NAME)
        raise BadQuery(400, "Invalid tab", f"tab {tab!r} is not one of {known}")
    integration = args.get("integration") or None
    if integration is not None and integration not in registry.integrations():
        known = ", ".join(registry.integrations()) or "none"
        raise BadQuery(
            400, "Invalid integration", f"integration {integration!r} is not one of {known}"
        )
    search = (args.get("q") or "").strip() or None
    if search is not None and len(search) > LONGEST_SEARCH:
        raise BadQuery(400, "Invalid search", f"q is longer than {LONGEST_SEARCH} characters")
    found = listing.parse_query((), None, args.get("store"), args.get("limit"), args.get("cursor"))
    return Query(BY_NAME[tab], integration, found.store, search, found.limit, found.after)


@dataclass(frozen=True)
class Row:
    """A message as a tab lists it: its times as epoch seconds (the page writes them)."""

    integration: str
    message_id: str
    store: str
    message: str
    status: str
    attempts: int
    received_at: str
    at: float | str | None  # the tab's own time (``Tab.at``)
    last_error: str

    @classmethod
    def of(cls, tab: Tab | None, record: Record, store: str, at: float | None) -> Row:
        """A tab's row (``tab`` None: a search result, timed by its last update)."""
        f = record.fields
        pushes = tab is not None and tab.key in (OUTBOX, DEAD_DELIVERIES)
        return cls(
            integration=record.integration,
            message_id=record.message_id,
            store=store,
            message=f.get(F.MESSAGE, ""),
            status=(f.get(F.DELIVERY, "") if pushes else f.get(F.STATUS, "")) or "expired",
            attempts=int(f.get(F.DELIVERY_ATTEMPTS if pushes else F.ATTEMPTS) or 0),
            received_at=f.get(F.RECEIVED_AT, ""),
            at=_time_of(tab, f, at),
            last_error=f.get(F.DELIVERY_ERROR if pushes else F.LAST_ERROR, ""),
        )


def _time_of(tab: Tab | None, f: dict[str, str], at: float | None) -> float | str | None:
    """The time a tab shows a message with (``Tab.at``)."""
    if tab is None:
        return f.get(F.UPDATED_AT)
    if tab.name == "queued":  # a message waiting for its pace has its next attempt's time
        return f.get(F.NEXT_ATTEMPT_AT) or f.get(F.RECEIVED_AT)
    if tab.name == "processing":
        return f.get(F.STARTED_AT)
    if tab.name == "retrying":
        return f.get(F.NEXT_ATTEMPT_AT)
    if tab.name == "pushes":
        return f.get(F.NEXT_PUSH_AT) or at
    return at  # when it entered the state (failed, dead) or died (dead pushes)


@dataclass(frozen=True)
class Count:
    value: int
    at_least: bool = False  # counted among the newest ``COUNTED`` of a larger set

    def __str__(self) -> str:
        return f"{self.value}+" if self.at_least else str(self.value)


def counts(db: Store, integration: str | None, store: str | None) -> dict[str, Count]:
    """Each tab's count under the filter: three round trips however large the sets."""
    exact = [t for t in TABS if t.status is not None]
    with db.redis.pipeline(transaction=False) as pipe:
        for t in exact:
            assert t.status is not None
            pipe.zcard(state_key(t.status, integration or "", store or ""))
        for key in (WATCH, OUTBOX, DEAD_DELIVERIES):
            pipe.zcard(key)
        found = pipe.execute()
    sizes = dict(zip((WATCH, OUTBOX, DEAD_DELIVERIES), found[len(exact) :], strict=True))
    result = {t.name: Count(n) for t, n in zip(exact, found[: len(exact)], strict=True)}
    filtered = bool(integration or store)
    sampled = {WATCH} | ({OUTBOX, DEAD_DELIVERIES} if filtered else set())
    tallies = _tally(db, sorted(sampled), integration, store)
    for t in TABS:
        if t.status is not None:
            continue
        if t.key in sampled:
            result[t.name] = Count(tallies[t.name], sizes[t.key] > COUNTED)
        else:
            result[t.name] = Count(sizes[t.key])
    return result


def _tally(db: Store, keys: list[str], integration: str | None, store: str | None) -> Counter[str]:
    """How many of the newest ``COUNTED`` entries of each set each tab reading it wants."""
    with db.redis.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.zrevrange(key, 0, COUNTED - 1)
        entries = pipe.execute()
    looked = [
        (key, entry)
        for key, found in zip(keys, entries, strict=True)
        for entry in found
        if not integration or split_member(entry)[0] == integration
    ]
    shown = (F.STATUS, F.STORE, F.DELIVERY)
    with db.redis.pipeline(transaction=False) as pipe:
        for _, entry in looked:
            pipe.hmget(record_key(*split_member(entry)), *shown)
        values = pipe.execute()
    tally: Counter[str] = Counter()
    for (key, _), read in zip(looked, values, strict=True):
        fields = {f.value: v for f, v in zip(shown, read, strict=True) if v is not None}
        if not fields or (store and fields.get(F.STORE, "default") != store):
            continue
        for t in TABS:
            if t.key == key and t.wanted(fields):
                tally[t.name] += 1
    return tally


def page(db: Store, query: Query) -> tuple[list[Row], Position | None]:
    """One page of the query's tab, newest first, and where the next starts (None: the last)."""
    tab = query.tab
    if tab.status is not None:
        listed, following = db.listings.in_states(
            [tab.status],
            integration=query.integration,
            store=query.store,
            limit=query.limit,
            after=query.after,
        )
        return [Row.of(tab, m.record, m.store, m.since) for m in listed], following
    found, following = db.listings.in_set(
        tab.key,
        tab.wanted,
        integration=query.integration,
        store=query.store,
        limit=query.limit,
        window=WINDOW,
        after=query.after,
    )
    return [Row.of(tab, m.record, m.store, m.at) for m in found], following


def search(db: Store, query: Query) -> list[Row]:
    """The messages whose id is the query's search (in each integration, or the one filtered),
    then those that named it as their shipment or order number, newest first; of the store
    filtered, when one is."""
    text = query.search or ""
    names = [query.integration] if query.integration else list(registry.integrations())
    wanted = [(i, text) for i in names]
    wanted += [
        found
        for found in db.listings.numbered(text, SEARCH_SHOWN)
        if found not in wanted and (not query.integration or found[0] == query.integration)
    ]
    with db.redis.pipeline(transaction=False) as pipe:
        for integration, message_id in wanted:
            pipe.hmget(record_key(integration, message_id), *SHOWN_FIELDS)
        values = pipe.execute()
    rows = []
    for (integration, message_id), read in zip(wanted, values, strict=True):
        fields = {f.value: v for f, v in zip(SHOWN_FIELDS, read, strict=True) if v is not None}
        store = fields.get(F.STORE, "default")
        if fields and (not query.store or store == query.store):
            rows.append(Row.of(None, Record(integration, message_id, fields), store, None))
    return rows[:SEARCH_SHOWN]


def known_stores(db: Store, rows: Iterable[Row], also: str | None) -> list[str]:
    """The stores offered in the store filter: those polled, those on the page, the one
    filtered."""
    found = {c.store for c in db.memory.cursors()} | {r.store for r in rows}
    return sorted(found | ({also} if also else set()))


# -- bulk replay -----------------------------------------------------------------------------
REASONS = {
    Refusal.STATE: "no longer failed or dead (replayed or changed meanwhile)",
    Refusal.UNHANDLED: "their integration takes no such message any more",
}
DELIVERY_REASONS = {Refusal.STATE: "no longer dead (replayed meanwhile)"}


@dataclass
class BulkReplay:
    """What a bulk replay did: how many it replayed, skipped (by reason), and whether more of
    the list remain (it takes ``BULK_MOST`` at a time)."""

    tab: str
    replayed: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    more: bool = False

    def skip(self, reason: Refusal) -> None:
        self.skipped[reason.value] = self.skipped.get(reason.value, 0) + 1


def replay_listed(
    w: Wiring,
    tab: Tab,
    integration: str | None,
    store: str | None,
    before: float,
) -> BulkReplay:
    """Replay what the tab lists under the filter that was there at ``before`` (when the page
    was made: what came after is not replayed), up to ``BULK_MOST``, each as its own Replay
    button would (``worker.pipeline.replay``)."""
    db = w.db
    done = BulkReplay(tab.name)
    start = Position(before, LAST_ENTRY)
    if tab.status is not None:
        listed, following = db.listings.in_states(
            [tab.status], integration=integration, store=store, limit=BULK_MOST, after=start
        )
        targets = [(m.record.integration, m.record.message_id) for m in listed]
    else:
        found, following = db.listings.in_set(
            tab.key,
            tab.wanted,
            integration=integration,
            store=store,
            limit=BULK_MOST,
            window=WINDOW,
            after=start,
        )
        targets = [(m.record.integration, m.record.message_id) for m in found]
    for name, message_id in targets:
        try:
            if tab.replays == "message":
                replay.replay_message(db, w.publish, name, message_id)
            else:
                replay.replay_delivery(w.outbox, w.send_push, name, message_id)
        except replay.NotReplayable as refused:
            done.skip(refused.reason)
            continue
        done.replayed += 1
    done.more = following is not None
    return done


def bulk_words(tab_name: str, replayed: int, skipped: dict[str, int], more: bool) -> str:
    """What a bulk replay did, in our fixed words (counts are the only thing filled in)."""
    tab = BY_NAME[tab_name]
    reasons = DELIVERY_REASONS if tab.replays == "delivery" else REASONS
    what = "delivery" if tab.replays == "delivery" else "message"
    plural = "deliveries" if what == "delivery" else "messages"
    words = f"Replay of the {tab.title.lower()} list: {replayed} "
    words += f"{what if replayed == 1 else plural} replayed"
    if tab.replays == "message":
        words += " (queued for a worker)"
    else:
        words += " (pushed to the hub shortly)"
    skips = [
        f"{n} {reasons[Refusal(reason)]}"
        for reason, n in sorted(skipped.items())
        if Refusal(reason) in reasons and n
    ]
    words += f", {sum(skipped.values())} skipped" + (f": {'; '.join(skips)}" if skips else "")
    words += "."
    if more:
        words += f" More remain (at most {BULK_MOST} at a time): replay the list again."
    return words
