"""Duoplane's services: ``send_tracking`` (a hub ``shipment:confirm`` becomes a shipment on the
purchase order) and ``tracking`` (the shipments vendors entered become ``shipment:confirm``).

A repeated create makes a second shipment at Duoplane, which takes no idempotency key. So a
confirmation is sent at most once: what was delivered is kept per shipment and tracking numbers
(a second message with the same confirmation answers "already delivered"); the create runs
under ``job.once``; and before creating, Duoplane's shipments with the first tracking number are
read, so a create that landed while its worker died is found on the repeat, not made again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import SecretStr, ValidationError

from worker import registry
from worker.errors import HardError
from worker.hub import Answer, PollPayload
from worker.integrations.duoplane.client import Account, DuoplaneClient, Pacing
from worker.integrations.duoplane.mapping import (
    ApiShipment,
    ShipmentConfirm,
    confirmation,
    create_body,
    delivered_key,
    existing,
    parse_cursor,
    query_time,
    window_start,
)
from worker.integrations.duoplane.settings import (
    CURSOR,
    PROVIDER,
    DuoplaneSettings,
    check_settings,
    duoplane_settings,
    load_config,
)
from worker.integrations.kit import CURSOR_RANGE, batched, credential, invalid_credential, listing
from worker.job import Job
from worker.pacing import Bucket
from worker.registry import Integration, Requirement, Schedule

log = logging.getLogger(__name__)

SENT = "Tracking sent to Duoplane"
FOUND = "Tracking already at Duoplane"
ALREADY_SENT = "Tracking already sent to Duoplane"
REFUSED = "Duoplane refused the shipment"
POLLED = "Polled Duoplane shipments"
DELIVERED = "delivered"  # per confirmation (delivered_key): what send_tracking created
CONFIRMED = "confirmed"  # per Duoplane shipment id: the hub knows it (sent or polled)
BATCH = 1000  # shipments confirmed and sent ahead together

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
    says so before anything else."""
    base_url = s.base_url
    api_key = credential(job, "api_key", "DUOPLANE_API_KEY").strip()
    if ":" in api_key:
        raise invalid_credential(
            "api_key", "DUOPLANE_API_KEY", "has a ':' (HTTP Basic cannot carry it)"
        )
    password = credential(job, "password", "DUOPLANE_PASSWORD")
    account = Account(api_key, SecretStr(password))
    bucket = Bucket(
        job.records.redis,
        f"duoplane:{account.digest(base_url)}",
        s.rate_capacity,
        s.rate_per_second,
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
    client = client_for(job, s)
    shipment = job.payload.shipment
    body = create_body(shipment)
    tracking = shipment.all_tracking
    purchase_order = shipment.duoplane_purchase_order_id
    key = delivered_key(shipment)
    (kept,) = job.watch(DELIVERED, key)
    if isinstance(kept, dict):
        return job.answer().notify(
            "info",
            ALREADY_SENT,
            f"Shipment {shipment.number} with tracking {listing(tracking)} was delivered by "
            f"message {kept.get('message_id')} as Duoplane shipment "
            f"{kept.get('duoplane_shipment_id')}; nothing was sent again",
        )

    def create(_key: str) -> dict[str, Any]:
        # Look before creating: a create that landed while an earlier attempt died is there.
        listed = [
            found
            for page in client.shipment_pages({"tracking": tracking[0]}, s.page_size)
            for found in shipments_of(page)
        ]
        match = existing(listed, purchase_order, tracking)
        if match is not None and match.complete:
            return {"id": match.shipment.id, "was_there": True}
        if match is not None:
            raise HardError(
                REFUSED,
                [
                    f"Duoplane shipment {match.shipment.id} on purchase order {purchase_order} "
                    f"already has tracking {listing(match.shared)} but not "
                    f"{listing(match.missing)}: a new shipment would repeat its tracking"
                ],
            )
        created = client.create_shipment(purchase_order, body)
        return {"id": created.get("id"), "was_there": False}

    result = job.once("create_shipment", create, sends=body)
    shipment_id = result.get("id")
    job.keep(
        DELIVERED,
        key,
        {"message_id": job.message_id, "duoplane_shipment_id": shipment_id},
    )
    if shipment_id is not None:  # the poll must not confirm it back to the hub
        job.keep(CONFIRMED, str(shipment_id), {"message_id": job.message_id, "tracking": tracking})
    fields = body["shipment"]
    carrier = fields.get("shipper_name") or f"shipper_id {fields.get('shipper_id')}"
    what = (
        f"{len(fields['shipment_items_attributes'])} item(s), tracking {listing(tracking)}, "
        f"carrier {carrier}"
    )
    if result.get("was_there"):
        return job.answer().notify(
            "info",
            FOUND,
            f"Shipment {shipment.number}: Duoplane already has shipment {shipment_id} on "
            f"purchase order {purchase_order} with tracking {listing(tracking)}; nothing "
            "was created",
        )
    return job.answer().notify(
        "info",
        SENT,
        f"Shipment {shipment.number}: Duoplane shipment {shipment_id} created on purchase "
        f"order {purchase_order} with {what}",
    )


def cursor_of(job: Job[Any]) -> datetime | None:
    raw = job.parameters.get(CURSOR)
    if raw in (None, ""):
        return None
    try:
        return parse_cursor(str(raw))
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
    each shipment the hub has not been told of; the new cursor is when the poll started."""
    s = duoplane_settings()
    client = client_for(job, s)
    now = datetime.now(UTC)
    start = window_start(
        cursor_of(job),
        now,
        timedelta(seconds=s.poll_overlap_seconds),
        timedelta(hours=s.first_poll_lookback_hours),
    )
    answer = job.answer()
    tally = PollTally()
    pages = client.shipment_pages({"updated_at_min": query_time(start)}, s.page_size)
    for batch in batched(tally.shipments(pages), BATCH):
        # The batch before this one leaves memory, stored with what it kept (so a shipment seen
        # again on a later page is already confirmed); one batch answers in one piece.
        job.send_ahead(answer)
        confirm_new(job, answer, batch, tally)
    span = f"updated since {query_time(start)} ({tally.pages} page(s))"
    summary = f"{tally.new} new shipment(s) {span}" if tally.new else f"No new shipments {span}"
    if tally.already:
        summary += f"; {tally.already} already confirmed"
    answer.notify("info", POLLED, summary)
    return answer.add_parameter(CURSOR, query_time(now))


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
