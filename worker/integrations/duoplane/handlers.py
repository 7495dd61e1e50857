"""Duoplane's services: ``send_tracking`` (a hub ``shipment:confirm`` becomes a shipment on the
purchase order) and ``tracking`` (the shipments vendors entered become ``shipment:confirm``).

A repeated create makes a second shipment at Duoplane, which takes no idempotency key. So a
confirmation is sent at most once: what was delivered is kept per shipment and tracking numbers
(a second message with the same confirmation answers "already delivered"); the create runs
under ``job.once``; before creating, Duoplane's shipments with the first tracking number are
read (a vendor's, or an earlier attempt's that landed, is found, not made again); the POST has
a guard of its own, so after an attempt whose POST has an unknown outcome (timed out, answer
lost, worker killed) nothing is sent until that POST can no longer land (``lands_within``:
connect + read timeout + DUOPLANE_LATE_LANDING_SECONDS) and a look finds nothing; and after
creating, the look is made again: two shipments holding the tracking are answered with a
warning naming both.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, SecretStr, ValidationError

from worker.basics.errors import HardError, TransientError, WaitUntil
from worker.hub.messages import Answer, Level, PollPayload
from worker.integrations import registry
from worker.integrations.duoplane.client import Account, DuoplaneClient, Pacing
from worker.integrations.duoplane.mapping import (
    ApiShipment,
    DuoplaneShipment,
    Match,
    ShipmentConfirm,
    confirmation,
    create_body,
    delivered_key,
    matches,
    parse_cursor,
    query_time,
    window_start,
)
from worker.integrations.duoplane.settings import (
    CURSOR,
    PROVIDER,
    DuoplaneSettings,
    duoplane_settings,
    load_config,
)
from worker.integrations.job import Job, LookFirst
from worker.integrations.kit import (
    CURSOR_RANGE,
    credential,
    invalid_credential,
    listing,
    parsed_at_start,
)
from worker.integrations.registry import Integration, Requirement, Schedule

log = logging.getLogger(__name__)

SENT = "Tracking sent to Duoplane"
FOUND = "Tracking already at Duoplane"
ALREADY_SENT = "Tracking already sent to Duoplane"
REFUSED = "Duoplane refused the shipment"
TWICE = "Duoplane may hold this shipment twice"
POLLED = "Polled Duoplane shipments"
DELIVERED = "delivered"  # per confirmation (delivered_key): what send_tracking created
CONFIRMED = "confirmed"  # per Duoplane shipment id: the hub knows it (sent or polled)
BATCH = 1000  # shipments confirmed and sent ahead together


def check_settings() -> list[str]:
    """``DUOPLANE_*`` when a process starts: each value valid (``DuoplaneSettings.check``), and
    the cursor parsed as a message's parameter is. Returns the unset required ones."""
    missing = DuoplaneSettings.check()
    cursor = duoplane_settings().last_polling_datetime
    parsed_at_start(PROVIDER, "DUOPLANE_LAST_POLLING_DATETIME", cursor, read_cursor)
    return missing


duoplane = registry.register(
    Integration(
        "duoplane",
        PROVIDER,
        "Duoplane automates dropship order routing: tracking numbers go to purchase orders as "
        "shipments, and the shipments vendors enter come back as confirmations.",
        config=load_config,
        check=check_settings,
    )
)

API_KEY = Requirement("api_key", "Your Duoplane API key (the HTTP Basic user)")
PASSWORD = Requirement("password", "Your Duoplane API password")
LAST_POLLING = Requirement(CURSOR, "Shipments updated since this time are polled", cursor=True)


def client_for(job: Job[Any], s: DuoplaneSettings) -> DuoplaneClient:
    """The client for this message's API user, paced by its bucket; an unconfigured Duoplane
    says so before anything else. A wait for the pace longer than ``PACE_SLEEP_MAX_SECONDS``
    ends the attempt (``WaitUntil``) instead of being slept."""
    base_url = s.base_url
    api_key = credential(job, "api_key", "DUOPLANE_API_KEY").strip()
    if ":" in api_key:
        raise invalid_credential(
            "api_key", "DUOPLANE_API_KEY", "has a ':' (HTTP Basic cannot carry it)"
        )
    password = credential(job, "password", "DUOPLANE_PASSWORD")
    account = Account(api_key, SecretStr(password))
    # A long wait is booked: send_tracking comes back to the step it stopped at (its create's
    # guards), a poll to the page it stopped at (``poll_shipments``).
    bucket = job.pace(
        account.digest(base_url),
        capacity=s.rate_capacity,
        per_second=s.rate_per_second,
    )
    pacing = Pacing(bucket, s.retry_after_margin_seconds, s.rate_limited_retries)
    return DuoplaneClient(base_url, account, s.timeout, pacing)


def shipments_of(rows: Sequence[dict[str, Any]]) -> list[ApiShipment]:
    """The listed shipments that can be read (one without an id is left out, logged)."""
    found = []
    for row in rows:
        try:
            found.append(ApiShipment.model_validate(row))
        except ValidationError:
            log.warning("duoplane: a listed shipment without a readable id was left out")
    return found


@duoplane.service(
    "send_tracking",
    message="shipment:confirm",
    payload=ShipmentConfirm,
    description="Send a shipment's tracking numbers to its Duoplane purchase order.",
    requires=[API_KEY, PASSWORD],
)
def send_tracking(job: Job[ShipmentConfirm]) -> Answer:
    """Create the shipment on its purchase order, once."""
    s = duoplane_settings()
    shipment = job.payload.shipment
    client = client_for(job, s)
    creating = Creating(client, shipment, create_body(shipment), s.page_size)
    (kept,) = job.watch(DELIVERED, delivered_key(shipment))
    if isinstance(kept, dict):
        return job.answer().notify(
            Level.INFO,
            ALREADY_SENT,
            f"Shipment {shipment.number} with tracking {listing(creating.tracking)} was "
            f"delivered by message {kept.get('message_id')} as Duoplane shipment "
            f"{kept.get('duoplane_shipment_id')}; nothing was sent again",
        )

    def create(_key: str) -> dict[str, Any]:
        # Looked up before every create: a vendor may have entered it, an earlier attempt's
        # create may have landed. The POST has a guard of its own, marked right before it is
        # sent (the rate limit's wait comes first): an unknown earlier POST is waited out
        # until it can no longer land, then looked up, and only if it is not there is it sent.
        # A wait for the pace ends the attempt (WaitUntil) before the POST, or after it: then
        # the next attempt finds the POST done and only looks again.
        made = job.done("post_shipment")
        if made is None:
            found = creating.look()
            if found is not None:
                return found
            creating.client.make_room()
            made = job.once(
                "post_shipment",
                creating.post,
                sends=creating.body,
                look=LookFirst(s.lands_within, creating.look),
            )
        return creating.looked_again(made)

    result = job.once("create_shipment", create, sends=creating.body)
    remember(job, creating, result)
    return answered(job.answer(), creating, result)


@dataclass(frozen=True)
class Creating:
    """One confirmation's shipment on its purchase order: looked up, and created."""

    client: DuoplaneClient
    shipment: DuoplaneShipment
    body: dict[str, Any]
    page_size: int

    @property
    def purchase_order(self) -> int:
        return self.shipment.duoplane_purchase_order_id

    @property
    def tracking(self) -> list[str]:
        return self.shipment.all_tracking

    def held(self) -> list[Match]:
        """Duoplane's shipments on the purchase order with our tracking numbers (searched by
        the first), the most complete first."""
        listed = [
            found
            for page in self.client.shipment_pages({"tracking": self.tracking[0]}, self.page_size)
            for found in shipments_of(page)
        ]
        return matches(listed, self.purchase_order, self.tracking)

    def look(self) -> dict[str, Any] | None:
        """The shipment Duoplane already holds with all our tracking numbers (and any other
        holding them), None when it holds none; a HardError when the closest holds only some."""
        held = self.held()
        if not held:
            return None
        best = held[0]
        if not best.complete:
            raise HardError(
                REFUSED,
                [
                    f"Duoplane shipment {best.shipment.id} on purchase order "
                    f"{self.purchase_order} already has tracking {listing(best.shared)} but not "
                    f"{listing(best.missing)}: a new shipment would repeat its tracking"
                ],
            )
        return outcome(best.shipment.id, held, was_there=True)

    def post(self, _key: str) -> dict[str, Any]:
        """Create it (``make_room`` came first)."""
        made = self.client.create_shipment(self.purchase_order, self.body, room_made=True)
        return outcome(made.get("id"), [], was_there=False)

    def looked_again(self, made: dict[str, Any]) -> dict[str, Any]:
        """After creating, look again: another shipment with our tracking numbers (an earlier
        create that landed later than assumed, one a vendor entered meanwhile) is named. If
        this look fails, the attempt is retried at the back-off, not after a wait (the POST
        has its result); the next attempt's look before creating finds the shipment."""
        return outcome(made.get("id"), self.held(), was_there=bool(made.get("was_there")))


def outcome(shipment_id: Any, held: Sequence[Match], *, was_there: bool) -> dict[str, Any]:
    """What the create's guard keeps (JSON): the shipment the hub is told of, whether it was
    there already, and the other shipments holding our tracking numbers (duplicates to check)."""
    others = [m.shipment.id for m in held if str(m.shipment.id) != str(shipment_id)]
    return {"id": shipment_id, "was_there": was_there, "others": others}


def remember(job: Job[ShipmentConfirm], creating: Creating, result: dict[str, Any]) -> None:
    """Keep the delivery, and every shipment the answer names (the poll must not confirm them
    back to the hub)."""
    shipment_id = result.get("id")
    job.keep(
        DELIVERED,
        delivered_key(creating.shipment),
        {"message_id": job.message_id, "duoplane_shipment_id": shipment_id},
    )
    for named in [shipment_id, *(result.get("others") or [])]:
        if named is not None:
            job.keep(
                CONFIRMED, str(named), {"message_id": job.message_id, "tracking": creating.tracking}
            )


def answered(answer: Answer, creating: Creating, result: dict[str, Any]) -> Answer:
    """Created, or found there; and a warning when Duoplane holds more than one."""
    number, tracking = creating.shipment.number, listing(creating.tracking)
    shipment_id, others = result.get("id"), result.get("others") or []
    where = f"purchase order {creating.purchase_order}"
    if result.get("was_there"):
        answer.notify(
            Level.INFO,
            FOUND,
            f"Shipment {number}: Duoplane already has shipment {shipment_id} on {where} with "
            f"tracking {tracking} (entered at Duoplane, or created by an earlier attempt whose "
            "answer never came); nothing was created",
        )
    else:
        fields = creating.body["shipment"]
        carrier = fields.get("shipper_name") or f"shipper_id {fields.get('shipper_id')}"
        answer.notify(
            Level.INFO,
            SENT,
            f"Shipment {number}: Duoplane shipment {shipment_id} created on {where} with "
            f"{len(fields['shipment_items_attributes'])} item(s), tracking {tracking}, "
            f"carrier {carrier}",
        )
    if others:
        answer.notify(
            Level.WARN,
            TWICE,
            f"Shipment {number}: Duoplane shipments {shipment_id} and "
            f"{listing([str(i) for i in others])} on {where} hold its tracking ({tracking}); "
            "one may be a duplicate (entered by a vendor, or a create that landed later than "
            f"assumed): the hub was told of {shipment_id}; check them at Duoplane",
        )
    return answer


def cursor_of(job: Job[Any]) -> datetime | None:
    raw = job.parameters.get(CURSOR)
    if raw in (None, ""):
        return None
    return read_cursor(str(raw))


def read_cursor(raw: str) -> datetime:
    """The cursor parameter as a time; a HardError saying what it should be."""
    try:
        return parse_cursor(raw)
    except ValueError:
        raise HardError(
            f"Invalid {CURSOR}",
            [
                f"{CURSOR} {raw!r} is not a time {CURSOR_RANGE}: use ISO 8601 "
                "('2026-11-23T05:00:00+00:00')"
            ],
        ) from None


@duoplane.service(
    "tracking",
    message="duoplane:shipment_results:poll",
    payload=PollPayload,
    description="Poll the shipments updated at Duoplane; confirm each new one once.",
    requires=[API_KEY, PASSWORD, LAST_POLLING],
    schedule=Schedule(1, "hours"),
)
def poll_shipments(job: Job[PollPayload]) -> Answer:
    """Read every page of the shipments updated since the cursor (less an overlap); confirm
    each shipment the hub has not been told of; the new cursor is when the poll started.

    A page that must wait for the pace longer than ``PACE_SLEEP_MAX_SECONDS`` holds no thread:
    what was read is confirmed and sent ahead, where the poll got is kept (``Job.keep_progress``)
    and the attempt ends (``WaitUntil``); the message comes back when that page may go and reads
    on from it, in the same window. An attempt cut off on its way (its deadline, a timeout, any
    transient failure) keeps where it got the same way: its retry reads on from that page, so a
    poll longer than one attempt still ends."""
    s = duoplane_settings()
    client = client_for(job, s)
    poll = PollProgress.resumed(job.progress(PROGRESS)) or PollProgress.starting(job, s)
    answer = job.answer()
    pages = client.shipment_pages({"updated_at_min": poll.since}, s.page_size, poll.page)
    read: list[Sequence[dict[str, Any]]] = []
    try:
        for page in pages:
            read.append(page)
            if sum(len(p) for p in read) >= BATCH:
                poll.confirm(job, answer, read)
        poll.confirm(job, answer, read)
    except (WaitUntil, TransientError):  # its pace, or the attempt cut off (deadline, timeout)
        poll.confirm(job, answer, read)  # what was read is not read again
        job.send_ahead(answer)
        job.keep_progress(PROGRESS, poll.model_dump())
        raise
    span = f"updated since {poll.since} ({poll.pages} page(s))"
    summary = f"{poll.new} new shipment(s) {span}" if poll.new else f"No new shipments {span}"
    if poll.already:
        summary += f"; {poll.already} already confirmed"
    answer.notify(Level.INFO, POLLED, summary)
    return answer.add_parameter(CURSOR, poll.until)


PROGRESS = "poll-progress"  # how far a poll that waited for its pace got (Job.keep_progress)


class PollProgress(BaseModel):
    """A poll's window and how far it got: the next page to read, and what the pages before it
    held. Kept between the attempts of a poll that waits for its pace."""

    since: str  # updated_at_min (the cursor less the overlap)
    until: str  # when the poll started: the new cursor
    page: int = 1
    pages: int = 0
    new: int = 0
    already: int = 0

    @classmethod
    def starting(cls, job: Job[Any], s: DuoplaneSettings) -> PollProgress:
        now = datetime.now(UTC)
        start = window_start(
            cursor_of(job),
            now,
            timedelta(seconds=s.poll_overlap_seconds),
            timedelta(hours=s.first_poll_lookback_hours),
        )
        return cls(since=query_time(start), until=query_time(now))

    @classmethod
    def resumed(cls, kept: Any) -> PollProgress | None:
        try:
            return cls.model_validate(kept) if kept is not None else None
        except ValidationError:  # kept by another version: start again (confirmed once anyway)
            return None

    def confirm(self, job: Job[Any], answer: Answer, read: list[Sequence[dict[str, Any]]]) -> None:
        """Confirm the shipments of the pages ``read`` (then forgotten), after sending ahead
        the batch before them: stored with what it kept, so that a shipment seen again on a
        later page is already confirmed; one batch answers in one piece."""
        if not read:
            return
        job.send_ahead(answer)
        tally = PollTally()
        confirm_new(job, answer, list(tally.shipments(read)), tally)
        self.page += tally.pages
        self.pages += tally.pages
        self.new += tally.new
        self.already += tally.already
        read.clear()


@dataclass
class PollTally:
    """What a poll found, counted as its shipments stream by."""

    new: int = 0
    already: int = 0
    pages: int = 0

    def shipments(self, pages: Iterable[Sequence[dict[str, Any]]]) -> Iterator[ApiShipment]:
        """The shipments of page after page, counting the pages."""
        for page in pages:
            self.pages += 1
            yield from shipments_of(page)


def confirm_new(
    job: Job[Any], answer: Answer, batch: Sequence[ApiShipment], tally: PollTally
) -> None:
    """Confirm the shipments of this batch no earlier message confirmed (each once; the latest
    row of a shipment the batch holds twice)."""
    latest = {shipment.id: shipment for shipment in batch}
    confirmed = job.recall_found(CONFIRMED, [str(i) for i in latest])
    new = [shipment for i, shipment in latest.items() if str(i) not in confirmed]
    # Confirmed by an earlier attempt of this very poll: in its answer, sent ahead.
    ours = sum(
        1
        for kept in confirmed.values()
        if isinstance(kept, dict) and kept.get("message_id") == job.message_id
    )
    tally.new += len(new) + ours
    tally.already += len(latest) - len(new) - ours
    for shipment in new:
        answer.confirm(confirmation(shipment))
        job.keep(
            CONFIRMED,
            str(shipment.id),
            {"message_id": job.message_id, "tracking": shipment.tracking_numbers},
        )
