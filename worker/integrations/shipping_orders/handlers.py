"""The Shipping Order API's services: send, update, cancel, retry and get a shipment, poll the
orders that changed, and take the API's webhooks.

Every status the hub hears goes through one decision (``tell``): the canonical status of what
the API said, reported only if it is news after what the hub was last told of that shipment
(``worker.hub.status``), and kept with the answer under a watch, so that a webhook, a poll and a
send reporting the same shipment at once cannot both report it. ``shipment:confirm`` goes once,
the first time a shipment is seen picked up or later. Only ``get_shipment`` answers the current
status even when it was reported before: the hub asked for it.

The API's orders are read in the seed's shape or the vendor's (``mapping``); a field that cannot
be read is left out with a warn notification naming the shipment and the field, and is never
why an order is not reported, nor why a create that the API answered 2xx is made again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import SecretStr, ValidationError

from worker.basics.errors import HardError
from worker.hub.messages import (
    Answer,
    Level,
    PollPayload,
    ShipmentChanged,
    ShipmentReady,
    ShipmentReference,
)
from worker.hub.status import Progress, ShipmentStatus, is_news
from worker.integrations import registry
from worker.integrations.job import Job, LookFirst
from worker.integrations.kit import CURSOR_RANGE, credential, listing, parsed_at_start
from worker.integrations.registry import Integration, Requirement, Schedule
from worker.integrations.shipping_orders.client import Account, ShippingOrdersClient
from worker.integrations.shipping_orders.mapping import (
    RECEIVED,
    ApiOrder,
    HistoryEntry,
    Reading,
    answered_order,
    canonical_status,
    create_body,
    cursor_text,
    edit_body,
    iso_ms,
    list_filters,
    observed,
    order_of,
    parse_cursor,
    poll_windows,
    report,
    shipment_update,
)
from worker.integrations.shipping_orders.settings import (
    CURSOR,
    PROVIDER,
    WEBHOOK_SECRET_VARIABLE,
    ShippingOrdersSettings,
    load_config,
    shipping_orders_settings,
    webhook_secrets,
)
from worker.integrations.webhooks import WebhookSecret, hex_hmac_sha256

log = logging.getLogger(__name__)

REFUSED = "The Shipping Order API refused the shipment"
SENT = "Shipment sent to the Shipping Order API"
RECEIVED_BY_API = "Shipment received by the Shipping Order API"
POLLED = "Polled the Shipping Order API"
UNREADABLE = "Unreadable fields left out"
NO_STATUS = "No status to report"
# Received, not yet placed with a delivery provider: its provider and tracking come later.
NOT_YET_DISPATCHED = frozenset({ShipmentStatus.PENDING, ShipmentStatus.ACCEPTED})
ALREADY_CANCELLED = {"ORDER_ALREADY_CANCELED", "ORDER_ALREADY_CANCELLED"}
CANCELLED = "ORDER_CANCELLED"  # what a 2xx to a cancel says, when its answer cannot
SIGNATURE_HEADER = "X-DS-Signature"
PROGRESS = "progress"  # handler memory: what the hub was last told of each shipment
SENT_KIND = "sent"


def check_settings() -> list[str]:
    """``SHIPPING_ORDERS_*`` when a process starts: each value valid (the webhook secret fit to
    verify with: ``ShippingOrdersSettings.check``), and the cursor parsed as a message's
    parameter is. Returns the unset required ones."""
    missing = ShippingOrdersSettings.check()
    cursor = shipping_orders_settings().last_polling_datetime
    parsed_at_start(PROVIDER, "SHIPPING_ORDERS_LAST_POLLING_DATETIME", cursor, read_cursor)
    return missing


shipping_orders = registry.register(
    Integration(
        "shipping_orders",
        PROVIDER,
        "Multi-provider delivery orchestration: shipping orders placed with the best-fit "
        "delivery provider, tracked through their lifecycle.",
        config=load_config,
        check=check_settings,
    )
)

API_KEY = Requirement("api_key", "Your Shipping Order API key (x-api-key)")
TENANT_ID = Requirement("tenant_id", "Your Shipping Order API tenant id (tenantId)")
LOCATION = Requirement("location_external_id", "The location shipments are picked up from")
LAST_POLLING = Requirement(CURSOR, "Orders changed since this time are polled", cursor=True)


def client_for(job: Job[Any]) -> ShippingOrdersClient:
    s = shipping_orders_settings()
    base_url = s.base_url  # an unconfigured API says so before anything else
    api_key = credential(job, "api_key", "SHIPPING_ORDERS_API_KEY")
    tenant = credential(job, "tenant_id", "SHIPPING_ORDERS_TENANT_ID").strip()
    return ShippingOrdersClient(base_url, Account(SecretStr(api_key.strip()), tenant), s.timeout)


def tell(
    job: Job[Any],
    answer: Answer,
    order: ApiOrder,
    history: Sequence[HistoryEntry] = (),
    *,
    always: bool = False,
) -> bool:
    """Add to ``answer`` what is news about ``order`` (updates in order: the ``history``
    entries after the last status told, then its current status; a confirm the first time it
    is picked up) and keep the progress; with ``always``, the current status even when it is
    not news. True when something was news."""
    (kept,) = job.watch(PROGRESS, order.orderExternalId)
    last = Progress.from_json(kept)
    told = report(order, last, history)
    for update in told.updates:
        answer.update(update)
    if told.confirm is not None:
        answer.confirm(told.confirm)
    if told.progress is not None:
        job.keep(PROGRESS, order.orderExternalId, told.progress.to_json())
    elif always:
        answer.update(shipment_update(order, observed(order), last.sequence if last else None))
    if told.unknown:
        answer.notify(
            Level.WARN,
            "Unknown shipment status",
            f"{PROVIDER} reported {', '.join(sorted(set(told.unknown)))} for shipment "
            f"{order.orderExternalId}: not a status we know; reported as 'unknown'",
        )
    return bool(told.updates)


def warn_unreadable(answer: Answer, number: str, what: str, unreadable: Mapping[str, str]) -> None:
    """A warn notification naming the shipment and each field of ``what`` (the API's answer,
    a webhook...) left out because it could not be read."""
    if unreadable:
        fields = "; ".join(f"{name} ({why})" for name, why in sorted(unreadable.items()))
        answer.notify(
            Level.WARN,
            UNREADABLE,
            f"Shipment {number}: the {PROVIDER}'s {what} has fields we could not read, left "
            f"out of what the hub is told: {fields}",
        )


def answer_with(job: Job[Any], read: Reading, number: str, subject: str, what: str) -> Answer:
    """The answer to a hub request about one order: its news and what it is now, with what
    could not be read; without a readable status, only that."""
    answer = job.answer()
    warn_unreadable(answer, number, what, read.unreadable)
    if read.order is None:
        return answer.notify(
            Level.WARN,
            NO_STATUS,
            f"Shipment {number}: {subject}, but the {PROVIDER}'s {what} has "
            "no status we can read; the next webhook or poll reports it",
        )
    tell(job, answer, read.order)
    return answer.notify(Level.INFO, subject, summary(read.order))


def summary(order: ApiOrder) -> str:
    who = " ".join(filter(None, (order.carrier, order.service)))
    parts = [f"shipment {order.orderExternalId} is {order.status}"]
    if who:
        parts.append(f"with {who}")
    if order.tracking_number:
        parts.append(f"tracking {order.tracking_number}")
    return ", ".join(parts)


def received(order: ApiOrder) -> str:
    return (
        f"shipment {order.orderExternalId} is {order.status}: the {PROVIDER} has it and has "
        "not yet placed it with a delivery provider; its provider and tracking reach the hub "
        "by webhook or poll"
    )


@shipping_orders.service(
    "send_shipment",
    message="shipment:ready",
    payload=ShipmentReady,
    description="Send a shipment to the Shipping Order API, which places it with a provider.",
    requires=[API_KEY, TENANT_ID, LOCATION],
)
def send_shipment(job: Job[ShipmentReady]) -> Answer:
    """Send a shipment; answer its provider, service, tracking and status."""
    client = client_for(job)
    shipment = job.payload.shipment
    body = create_body(job.payload, str(job.param("location_external_id")).strip())

    def ours(order: dict[str, Any]) -> dict[str, Any]:
        # The API holds our number: success only when it holds what we send (job.already_there):
        # a create whose answer was lost, or the same shipment sent by another message.
        how = job.already_there(SENT_KIND, shipment.number, body, REFUSED)
        log.info("shipping_orders: %s %s; read back", shipment.number, how)
        return order

    def create(_key: str) -> dict[str, Any]:
        # The API takes no idempotency key: orderExternalId is the guard (DUPLICATE_ID).
        try:
            return client.create(body)
        except HardError as exc:
            if exc.code != "DUPLICATE_ID":
                raise
            return ours(client.get(shipment.number))

    def find() -> dict[str, Any] | None:
        held = client.find(shipment.number)
        return None if held is None else ours(held)

    # A create whose outcome is unknown is looked up once it can no longer land, rather than
    # trusting the API to refuse a second create while the first is still in flight. Whatever a
    # 2xx answer holds, the order exists: it is read as far as it can be and never makes the
    # create run again (job.once keeps the answer as it came).
    look = LookFirst(shipping_orders_settings().lands_within, find)
    raw = job.once("create_order", create, sends=body, look=look)
    job.keep_sent(SENT_KIND, shipment.number, body)
    read = answered_order(raw, shipment.number, RECEIVED)
    order = read.order or ApiOrder(orderExternalId=shipment.number, status=RECEIVED)
    answer = job.answer()
    warn_unreadable(answer, shipment.number, "answer to the create", read.unreadable)
    tell(job, answer, order)
    if canonical_status(order.status) in NOT_YET_DISPATCHED:
        return answer.notify(Level.INFO, RECEIVED_BY_API, received(order))
    return answer.notify(Level.INFO, SENT, summary(order))


@shipping_orders.service(
    "update_shipment",
    message="shipment:update",
    payload=ShipmentChanged,
    description="Change a shipment already sent (address, contact, items).",
    requires=[API_KEY, TENANT_ID],
)
def update_shipment(job: Job[ShipmentChanged]) -> Answer:
    """PUT what changed; answer the status if it is news."""
    changes = job.payload.shipment
    raw = client_for(job).edit(changes.number, edit_body(changes))
    read = answered_order(raw, changes.number)
    return answer_with(
        job, read, changes.number, "Shipment changed at the Shipping Order API", "answer"
    )


@shipping_orders.service(
    "cancel_shipment",
    message="shipment:cancel",
    payload=ShipmentReference,
    description="Cancel a shipment (already cancelled is success).",
    requires=[API_KEY, TENANT_ID],
)
def cancel_shipment(job: Job[ShipmentReference]) -> Answer:
    number = job.payload.shipment.number
    client = client_for(job)
    try:
        cancelled = client.cancel(number)
    except HardError as exc:
        if exc.code not in ALREADY_CANCELLED:
            raise
        read = answered_order(client.get(number), number, CANCELLED)
        return answer_with(job, read, number, "Shipment was already cancelled", "answer")
    read = answered_order(cancelled, number, CANCELLED)
    return answer_with(job, read, number, "Shipment cancelled", "answer to the cancel")


@shipping_orders.service(
    "retry_shipment",
    message="shipping_orders:shipment:retry",
    payload=ShipmentReference,
    description="Place a failed shipment again (after fixing what made it fail).",
    requires=[API_KEY, TENANT_ID],
)
def retry_shipment(job: Job[ShipmentReference]) -> Answer:
    number = job.payload.shipment.number
    raw = job.once("retry_order", lambda _key: client_for(job).retry(number))
    read = answered_order(raw, number)
    return answer_with(job, read, number, "Shipment placed again", "answer to the retry")


@shipping_orders.service(
    "get_shipment",
    message="shipping_orders:shipment:get",
    payload=ShipmentReference,
    description="Read a shipment and its status history.",
    requires=[API_KEY, TENANT_ID],
)
def get_shipment(job: Job[ShipmentReference]) -> Answer:
    """Answer the shipment's current status (reported or not) and its history."""
    number = job.payload.shipment.number
    client = client_for(job)
    read = answered_order(client.get(number), number)
    entries = history_of(client, number)
    answer = job.answer()
    warn_unreadable(answer, number, "answer", read.unreadable)
    warn_unreadable(answer, number, "status history", entries.unreadable)
    history = "; ".join(
        f"{e.status} at {iso_ms(e.updatedAtEpoch) or 'an unknown time'}" for e in entries.entries
    )
    if read.order is None:
        return answer.notify(
            Level.WARN,
            NO_STATUS,
            f"Shipment {number}: the {PROVIDER}'s answer has no status we "
            f"can read. History: {history or 'none'}",
        )
    tell(job, answer, read.order, entries.entries, always=True)
    return answer.notify(
        Level.INFO, "Shipment read", f"{summary(read.order)}. History: {history or 'none'}"
    )


@dataclass(frozen=True)
class History:
    """An order's status history as read: its entries, oldest first, and what could not be
    read of it."""

    entries: list[HistoryEntry]
    unreadable: dict[str, str]


def history_of(client: ShippingOrdersClient, number: str) -> History:
    """An order's history, oldest first (by ``updatedAtEpoch`` when every entry has one, else
    as the API lists it); an entry without a readable status is left out."""
    entries: list[HistoryEntry] = []
    unreadable: dict[str, str] = {}
    for position, raw in enumerate(client.history(number), start=1):
        try:
            entry = HistoryEntry.model_validate(raw)
        except ValidationError:
            unreadable[f"entry {position}"] = "no status we can read; left out"
            continue
        unreadable.update({f"entry {position} {k}": why for k, why in entry.unreadable.items()})
        entries.append(entry)
    if all(e.updatedAtEpoch is not None for e in entries):
        entries.sort(key=lambda e: e.updatedAtEpoch or 0)
    return History(entries, unreadable)


def cursor_of(job: Job[Any]) -> tuple[str | None, datetime | None]:
    raw = job.parameters.get(CURSOR)
    if raw in (None, ""):
        return None, None
    return str(raw), read_cursor(str(raw))


def read_cursor(raw: str) -> datetime:
    """The cursor parameter as a time; a HardError saying what it should be."""
    try:
        return parse_cursor(raw)
    except ValueError:
        raise HardError(
            f"Invalid {CURSOR}",
            [
                f"{CURSOR} {raw!r} is not a time {CURSOR_RANGE}: use ISO 8601 "
                "('2026-11-23T05:00:00Z')"
            ],
        ) from None


@shipping_orders.service(
    "tracking",
    message="shipping_orders:shipment_results:poll",
    payload=PollPayload,
    description="Poll the orders that changed; report each new status once.",
    requires=[API_KEY, TENANT_ID, LAST_POLLING],
    schedule=Schedule(15, "minutes"),
)
def poll_orders(job: Job[PollPayload]) -> Answer:
    """List the orders changed since the cursor (windows of at most 30 days, every page);
    for each with news, read its history, so that statuses a lost webhook never told are
    reported too, in order."""
    s = shipping_orders_settings()
    client = client_for(job)
    _, cursor = cursor_of(job)
    now = datetime.now(UTC)
    windows = poll_windows(
        cursor,
        now,
        timedelta(seconds=s.poll_overlap_seconds),
        timedelta(hours=s.first_poll_lookback_hours),
    )
    answer = job.answer()
    if windows.clamped:
        answer.notify(
            Level.WARN,
            "Polling window shortened",
            f"{CURSOR} is older than the year the {PROVIDER} lists reach; polling from "
            f"{cursor_text(windows.start)}",
        )
    latest, left_out = changed_orders(client, windows.each(), s.page_size)
    kept = dict(zip(latest, job.recall(PROGRESS, *latest), strict=True))
    news = [
        number
        for number, order in latest.items()
        if is_news(Progress.from_json(kept[number]), observed(order))
    ]
    for number in news:
        history = history_of(client, number)
        warn_unreadable(answer, number, "list", latest[number].unreadable)
        warn_unreadable(answer, number, "status history", history.unreadable)
        tell(job, answer, latest[number], history.entries)
    warn_unknown(job, answer, news)
    if left_out:
        answer.notify(
            Level.WARN,
            "Listed orders left out",
            f"{len(left_out)} order(s) the {PROVIDER} listed cannot be reported, having no "
            f"readable orderExternalId or status: {'; '.join(left_out[:20])}",
        )
    answer.notify(
        Level.INFO,
        POLLED,
        f"{len(latest)} order(s) changed from {cursor_text(windows.start)} to "
        f"{cursor_text(windows.end)}; {len(news)} with news",
    )
    return answer.add_parameter(CURSOR, cursor_text(now))


def changed_orders(
    client: ShippingOrdersClient, windows: Sequence[tuple[datetime, datetime]], page_size: int
) -> tuple[dict[str, ApiOrder], list[str]]:
    """Each order changed in the windows, as last seen (an order updated while the pages were
    read can appear twice); and what was listed without a readable orderExternalId or status
    (the only fields an order cannot be reported without), described."""
    latest: dict[str, ApiOrder] = {}
    left_out: list[str] = []
    for start, end in windows:
        for raw in client.orders(list_filters(start, end, page_size)):
            try:
                order = order_of(raw)
            except ValidationError as exc:
                left_out.append(unreported(raw, exc))
                continue
            latest[order.orderExternalId] = order
    return latest, left_out


def unreported(raw: Mapping[str, Any], exc: ValidationError) -> str:
    """A listed order that cannot be reported, named as well as it can be (never its
    content)."""
    fields = sorted({str(e["loc"][0]) for e in exc.errors() if e["loc"]})
    api_id = raw.get("orderId") or raw.get("id")
    which = f"order id {str(api_id)[:40]}" if isinstance(api_id, str | int) else "an order"
    return f"{which}: {', '.join(fields) or 'not an object'}"


def warn_unknown(job: Job[Any], answer: Answer, numbers: list[str]) -> None:
    sent = job.recall(SENT_KIND, *numbers)
    unknown = [n for n, kept in zip(numbers, sent, strict=True) if kept is None]
    if unknown:
        answer.notify(
            Level.WARN,
            "Shipments this endpoint did not send",
            f"No record of sending {listing(unknown)} to the {PROVIDER}; their updates are "
            "reported anyway",
        )


WEBHOOK_SECRET = WebhookSecret(WEBHOOK_SECRET_VARIABLE, webhook_secrets)


def event_key(order: ApiOrder) -> str:
    """An event's identity: the order, its status and when it changed."""
    return f"{order.orderExternalId}:{order.status}:{order.lastUpdatedAt or ''}"


@shipping_orders.webhook(
    message="shipping_orders:order:event",
    payload=ApiOrder,
    verify=hex_hmac_sha256(SIGNATURE_HEADER, webhook_secrets),
    secret=WEBHOOK_SECRET,
    key=event_key,
)
def order_event(job: Job[ApiOrder]) -> Answer:
    """A status change the API pushed: reported if it is news (the poll will not report it
    again, nor will this report what the poll already did), with the poll's warning when this
    endpoint never sent the shipment."""
    order = job.payload
    answer = job.answer()
    warn_unreadable(answer, order.orderExternalId, "webhook", order.unreadable)
    if tell(job, answer, order):
        warn_unknown(job, answer, [order.orderExternalId])
    else:
        answer.notify(
            Level.INFO,
            "Already reported",
            f"Shipment {order.orderExternalId}: {order.status} was already reported or is older "
            "than what was",
        )
    return answer
