"""Dotcom's services: ``send_shipment`` and ``tracking``."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import SecretStr

from worker.basics.errors import HardError
from worker.hub.messages import Answer, Level, PollPayload, ShipmentReady
from worker.integrations import registry
from worker.integrations.dotcom.client import Credentials, DotcomClient
from worker.integrations.dotcom.documents import Release, is_duplicate_order
from worker.integrations.dotcom.mapping import (
    DotcomOrder,
    SentShipment,
    checked_shipping_methods,
    distinct,
    dotcom_order,
    dotcom_time,
    order_document,
    parse_cursor,
    poll_window,
    shipment_confirmation,
    shipments_url,
    shipping_methods,
)
from worker.integrations.dotcom.settings import (
    CURSOR,
    PROVIDER,
    DotcomSettings,
    dotcom_settings,
    load_config,
)
from worker.integrations.job import Job, LookFirst
from worker.integrations.kit import (
    CURSOR_RANGE,
    batched,
    credential,
    invalid_credential,
    parsed_at_start,
)
from worker.integrations.registry import Integration, Requirement, Schedule

log = logging.getLogger(__name__)

SENT_NOTICE = "Successfully Sent Shipment to Dotcom Distribution"  # the seed's own words
REFUSED = "Dotcom Distribution refused the shipment"
ALREADY_SENT = "Shipment already sent to Dotcom Distribution"
POLLED = "Polled Dotcom Distribution shipments"
RECALL_BATCH = 1000  # releases read from memory, confirmed and sent ahead together
CREATE = "create_order"  # the once of a send; its mark holds what was sent, while its record lives
UNKNOWN_SHOWN = 50


def check_settings() -> list[str]:
    """``DOTCOM_*`` when a process starts: each value valid (``DotcomSettings.check``), and the
    lookup and the cursor the environment gives parsed as a message's parameters are (every
    ship-method code of the lookup checked). Returns the required variables that are unset."""
    missing = DotcomSettings.check()
    s = dotcom_settings()
    parsed_at_start(PROVIDER, "DOTCOM_SHIPPING_LOOKUP", s.shipping_lookup, checked_shipping_methods)
    parsed_at_start(
        PROVIDER,
        "DOTCOM_LAST_POLLING_DATETIME",
        s.last_polling_datetime,
        lambda raw: read_cursor(raw, s.zone),
    )
    return missing


dotcom = registry.register(
    Integration(
        "dotcom",
        PROVIDER,
        "Dotcom Distribution is the premier provider of logistics and fulfillment services to "
        "growing retailers & manufacturers.",
        config=load_config,
        check=check_settings,
    )
)

# ---------------------------------------------------------------------------------------------
# Handlers

API_KEY = Requirement("api_key", "Your Dotcom Distribution API key")
PASSWORD = Requirement("password", "Your Dotcom Distribution account password")
SHIPPING_LOOKUP = Requirement(
    "shipping_lookup", "Spree to Dotcom Distribution shipping methods' mapping", "list"
)
LAST_POLLING = Requirement(CURSOR, "Initial date shipment polling will start from", cursor=True)


def credentials(job: Job[Any]) -> Credentials:
    """The account's credentials, checked before anything is signed or sent: a value with
    control characters (a pasted line break) would break the ``Authorization`` header, and the
    error requests gives then quotes the header, key and signature alike."""
    api_key = credential(job, "api_key", "DOTCOM_API_KEY")
    if not api_key.isascii():
        raise invalid_credential("api_key", "DOTCOM_API_KEY", "has characters other than ASCII")
    password = credential(job, "password", "DOTCOM_PASSWORD")
    return Credentials(api_key=api_key.strip(), password=SecretStr(password))


def client_for(job: Job[Any], s: DotcomSettings) -> DotcomClient:
    """The client for this message's account; the URL is checked first, so an unconfigured
    Dotcom says so before anything else."""
    return DotcomClient(s.base_url, credentials(job), s.timeout)


@dotcom.service(
    "send_shipment",
    message="shipment:ready",
    payload=ShipmentReady,
    description="Send a shipment to Dotcom Distribution.",
    requires=[API_KEY, PASSWORD, SHIPPING_LOOKUP],
)
def send_shipment(job: Job[ShipmentReady]) -> Answer:
    """Send a shipment to Dotcom Distribution, once.

    Dotcom takes no idempotency key and does not document what it does with an order number
    it already holds, so nothing rests on its answer to a repeat: a shipment another message
    sent is answered from what was kept (``sent_before``), and an attempt whose outcome is
    unknown is looked up with ``GET /order/{order-number}`` once it can no longer land, and
    sent again only if Dotcom does not have it."""
    s = dotcom_settings()
    client = client_for(job, s)
    now = datetime.now(s.zone)
    order = dotcom_order(job.payload, shipping_methods(job.param("shipping_lookup")), now.date())
    sends = order_content(order)
    number = order.order_number
    how = job.sent_before("sent", number, sends, REFUSED, operation=CREATE)
    if how is not None:
        return already_sent(job, number, how)

    def held() -> dict[str, Any]:
        # Dotcom holds the number: success only when it holds what this message sends (another
        # message's order, or this message's own earlier attempt).
        return {
            "order_number": number,
            "was_there": job.already_there("sent", number, sends, REFUSED),
        }

    def create(_key: str) -> dict[str, Any]:
        errors = client.send_orders(order_document(order))
        if errors and any(is_duplicate_order(e, number) for e in errors):
            return held()  # should Dotcom refuse a repeated number
        if errors:
            raise HardError(REFUSED, [e.description for e in errors])
        return {"order_number": number, "was_there": ""}

    def find() -> dict[str, Any] | None:
        orders = client.held_orders(number)
        return held() if any(o.client_order_number == number for o in orders) else None

    created = job.once(CREATE, create, sends=sends, look=LookFirst(s.lands_within, find))
    shipment = job.payload.shipment
    # Kept for months: what a confirm puts back, and digests of what was sent (job.keep_sent).
    job.keep_sent(
        "sent",
        number,
        sends,
        SentShipment(shipment.order_number, shipment.shipping_method).to_memory(),
    )
    was_there = created.get("was_there") or ""
    if was_there.startswith("already sent"):
        return already_sent(job, number, was_there)
    if was_there:
        log.info("dotcom: order %s %s", number, was_there)
    return job.answer().notify(Level.INFO, SENT_NOTICE, SENT_NOTICE)


def already_sent(job: Job[Any], number: str, how: str) -> Answer:
    return job.answer().notify(
        Level.INFO,
        ALREADY_SENT,
        f"Shipment {number} was {how}; {PROVIDER} holds it, nothing was sent again",
    )


def order_content(order: DotcomOrder) -> dict[str, Any]:
    """What a Dotcom order holds, to tell one order from another under the same number
    (JSON-able). The order date is left out: the same shipment sent again another day is the
    same order."""
    content = dataclasses.asdict(order)
    content.pop("order_date")
    return json.loads(json.dumps(content, default=str))


def cursor_of(job: Job[Any], zone: ZoneInfo) -> tuple[str | None, datetime | None]:
    raw = job.parameters.get(CURSOR)
    if raw in (None, ""):
        return None, None
    return str(raw), read_cursor(str(raw), zone)


def read_cursor(raw: str, zone: ZoneInfo) -> datetime:
    """The cursor parameter as a time; a HardError saying what it should be."""
    try:
        return parse_cursor(raw, zone)
    except ValueError:
        raise HardError(
            f"Invalid {CURSOR}",
            [
                f"{CURSOR} {raw!r} is not a date-time {CURSOR_RANGE}: use "
                "'2013-10-28 03:15:21 -0400', ISO 8601 or a date"
            ],
        ) from None


@dotcom.service(
    "tracking",
    message="dotcom:shipment_results:poll",
    payload=PollPayload,
    description="Track shipment dispatches.",
    requires=[API_KEY, PASSWORD, LAST_POLLING],
    schedule=Schedule(1, "hours"),
)
def poll_shipment_results(job: Job[PollPayload]) -> Answer:
    """Track shipment dispatches."""
    s = dotcom_settings()
    client = client_for(job, s)
    zone = s.zone
    raw_cursor, cursor = cursor_of(job, zone)
    window = poll_window(cursor, datetime.now(zone), s)
    answer = job.answer()
    span = f"from {dotcom_time(window.start, zone)} to {dotcom_time(window.end, zone)}"
    if not window.is_open:
        return answer.notify(
            Level.INFO, POLLED, f"Nothing to poll yet: the window {span} is empty"
        ).add_parameter(CURSOR, raw_cursor or dotcom_time(window.start, zone))

    url = shipments_url(s.base_url, window.query_start, window.end, zone)
    tally = PollTally()
    for batch in batched((r for r in client.shipments(url) if r.shipped), RECALL_BATCH):
        # The batch before this one leaves memory, stored with what it kept: the answer never
        # holds more than one batch (a poll of one batch answers in one piece, as ever).
        job.send_ahead(answer)
        confirm_new(job, answer, batch, zone, tally)
    if tally.unknown:
        answer.notify(
            Level.WARN,
            "Shipments this endpoint did not send",
            f"No record of sending {tally.unknown_listing()} to {PROVIDER}: their "
            "shipment:confirm messages carry no order_number",
        )
    summary = f"{tally.new} new shipment(s) {span}" if tally.new else f"No new shipments {span}"
    if tally.already:
        summary += f"; {tally.already} already confirmed"
    answer.notify(Level.INFO, POLLED, summary)
    return answer.add_parameter(CURSOR, dotcom_time(window.end, zone))


@dataclasses.dataclass
class PollTally:
    """What a poll found, counted as its releases stream by (its notifications)."""

    new: int = 0
    already: int = 0
    unknown: dict[str, None] = dataclasses.field(default_factory=dict)  # the first names
    more_unknown: int = 0

    def add_unknown(self, client_order_number: str) -> None:
        if client_order_number in self.unknown:
            return
        if len(self.unknown) < UNKNOWN_SHOWN:
            self.unknown[client_order_number] = None
        else:
            self.more_unknown += 1  # not told apart beyond the names shown: memory stays flat

    def unknown_listing(self) -> str:
        shown = ", ".join(self.unknown)
        return f"{shown} and {self.more_unknown} more" if self.more_unknown else shown


def confirm_new(
    job: Job[Any], answer: Answer, batch: Sequence[Release], zone: ZoneInfo, tally: PollTally
) -> None:
    """Confirm the releases of this batch no earlier message confirmed (each once)."""
    releases = {r.key: r for r in batch}
    confirmed = job.recall_found("confirmed", list(releases))
    new = [release for key, release in releases.items() if key not in confirmed]
    sent = job.recall_found("sent", distinct(r.client_order_number for r in new))
    # Confirmed by an earlier attempt of this very poll: in its answer, sent ahead.
    ours = sum(1 for kept in confirmed.values() if job.marked_by_this_message(kept))
    tally.new += ours
    tally.already += len(releases) - len(new) - ours
    for release in new:
        record = SentShipment.from_memory(job.sent_about(sent.get(release.client_order_number)))
        confirmed_shipment = shipment_confirmation(release, zone, record)
        if confirmed_shipment is None:  # not reached: only shipped releases are here
            continue
        answer.confirm(confirmed_shipment)
        job.keep("confirmed", release.key, job.mark)  # that it was, and by which poll
        tally.new += 1
        if record is None or record.order_number is None:
            tally.add_unknown(release.client_order_number)
