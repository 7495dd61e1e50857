"""ecomdash's service: ``send_tracking`` takes the hub's ``shipment:confirm`` and submits the
shipment's tracking to ecomdash, which tells the marketplaces.

Confirmations of one account that arrive close together share one call (``batching``), paced
across every worker process to ecomdash's limits (``Job.pace``, ``Job.in_flight``: 120 calls a
minute, 3 at once, per account, named by a digest of the account's key). Each message answers
its own record's outcome. A delivery already made (the same ShipmentId, tracking numbers and line
items) is not sent again: the message answers an info notification naming the message that
delivered it.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import SecretStr

from worker.hub.messages import Answer, Level
from worker.integrations import registry
from worker.integrations.ecomdash.batching import Batcher, Entry, Outcome, digest
from worker.integrations.ecomdash.client import EcomdashClient, Keys
from worker.integrations.ecomdash.mapping import (
    Mapped,
    SubmitAnswer,
    TrackingConfirmation,
    carrier_ids,
    describe,
    tracking_record,
)
from worker.integrations.ecomdash.settings import (
    PROVIDER,
    EcomdashSettings,
    ecomdash_settings,
    load_config,
)
from worker.integrations.job import Job
from worker.integrations.kit import credential, parsed_at_start
from worker.integrations.registry import Integration, Requirement

DELIVERED = "delivered"  # handler memory: delivery key -> the message that delivered it
OPERATION = "submitTrackingInfo"
BURST = 10  # calls the pacing bucket lets through at once; the rest of the minute is paced


def check_settings() -> list[str]:
    """``ECOMDASH_*`` when a process starts: each value valid (``EcomdashSettings.check``), and
    the carrier lookup parsed as a message's parameter is. Returns the unset required ones."""
    missing = EcomdashSettings.check()
    lookup = ecomdash_settings().carrier_lookup
    parsed_at_start(PROVIDER, "ECOMDASH_CARRIER_LOOKUP", lookup, carrier_ids)
    return missing


ecomdash = registry.register(
    Integration(
        "ecomdash",
        "ecomdash",
        "Inventory management and marketplaces: shipment tracking submitted to ecomdash, "
        "which passes it on to the marketplaces the orders came from.",
        config=load_config,
        check=check_settings,
    )
)

SUBSCRIPTION_KEY = Requirement(
    "subscription_key", "Your ecomdash API subscription key (Ocp-Apim-Subscription-Key)"
)
ECD_KEY = Requirement(
    "ecd_key", "The ecomdash account's integration key (ecd-subscription-key), from its App Store"
)
CARRIER_LOOKUP = Requirement(
    "carrier_lookup",
    'Optional: carrier names to ecomdash CarrierIds, e.g. [{"UPS": 3}]',
    "list",
)


def keys_for(job: Job[Any]) -> Keys:
    return Keys(
        subscription=SecretStr(
            credential(job, "subscription_key", "ECOMDASH_SUBSCRIPTION_KEY").strip()
        ),
        ecd=SecretStr(credential(job, "ecd_key", "ECOMDASH_ECD_KEY").strip()),
    )


def batcher_for(job: Job[Any], s: EcomdashSettings, base_url: str, keys: Keys) -> Batcher:
    """The account's batch queue, its calls paced to ecomdash's limits for the account."""
    client = EcomdashClient(base_url, keys, s.timeout)
    ecd, subscription = keys.ecd.get_secret_value(), keys.subscription.get_secret_value()
    account = digest(ecd)
    burst = min(BURST, s.calls_per_minute)
    # At most ``calls_per_minute`` in any minute: the burst, then the rest over the minute.
    bucket = job.pace(account, capacity=burst, per_second=max(s.calls_per_minute - burst, 1) / 60.0)
    slots = job.in_flight(f"{account}:{OPERATION}", s.concurrent_calls)

    def room() -> None:
        bucket.take(PROVIDER)  # a long wait ends the leader's attempt (WaitUntil), booked

    def send(records: list[dict[str, Any]]) -> SubmitAnswer:
        with slots.held(PROVIDER):
            try:
                return client.submit_tracking(records)
            except Exception as exc:
                hint = getattr(exc, "retry_after", None)
                if getattr(exc, "status", None) == 429 and hint:
                    bucket.hold(hint)  # every worker pauses for this account
                raise

    return Batcher(
        queue=job.batch(digest(base_url, subscription, ecd), ttl_seconds=s.result_ttl_seconds),
        account=account,
        window_seconds=s.batch_window_seconds,
        max_wait_seconds=max(s.batch_max_wait_seconds, s.batch_window_seconds),
        batch_size=s.batch_size,
        call_seconds=sum(s.timeout),
        send=send,
        room=room,
    )


@ecomdash.service(
    "send_tracking",
    message="shipment:confirm",
    payload=TrackingConfirmation,
    description="Submit a shipped shipment's tracking to ecomdash (batched per account).",
    requires=[SUBSCRIPTION_KEY, ECD_KEY, CARRIER_LOOKUP],
)
def send_tracking(job: Job[TrackingConfirmation]) -> Answer:
    """Submit one confirmation's tracking record; answer what was sent."""
    s = ecomdash_settings()
    base_url = s.base_url  # an unconfigured integration says so before anything else
    keys = keys_for(job)
    shipment = job.payload.shipment
    mapped = tracking_record(shipment, carrier_ids(job.parameters.get("carrier_lookup")), s.zone)
    answer = job.answer()
    for warning in mapped.warnings:
        answer.notify(Level.WARN, "Not everything could be sent to ecomdash", warning)
    (kept,) = job.recall(DELIVERED, mapped.key)
    if isinstance(kept, dict) and kept.get("message_id") not in (None, job.message_id):
        return answer.notify(
            Level.INFO,
            "Tracking already delivered to ecomdash",
            f"Shipment {shipment.number}: {describe(mapped.record)} was delivered by message "
            f"{kept['message_id']}; not sent again",
        )
    batcher = batcher_for(job, s, base_url, keys)
    # Under this run's name: a replay is not answered with what ecomdash said to an earlier run.
    entry = Entry(
        job.run_key,
        mapped.record,
        mapped.key,
        queued_at=time.time(),
        attempt=job.attempt,
        message=job.message_id,
    )
    result = job.once(
        OPERATION,
        lambda _key: batcher.submit(entry).raise_unless_sent().model_dump(mode="json"),
        sends=mapped.record,
    )
    return answered(job, answer, mapped, Outcome.model_validate(result))


def answered(job: Job[Any], answer: Answer, mapped: Mapped, outcome: Outcome) -> Answer:
    shipment_number = job.payload.shipment.number
    deliverer = outcome.sent_by or job.message_id
    job.keep(DELIVERED, mapped.key, {"message_id": deliverer, "record": mapped.record})
    if outcome.sent_by is not None:
        return answer.notify(
            Level.INFO,
            "Tracking already delivered to ecomdash",
            f"Shipment {shipment_number}: {describe(mapped.record)} was delivered by message "
            f"{outcome.sent_by}; not sent again",
        )
    said = f"; ecomdash said: {' / '.join(outcome.messages)}" if outcome.messages else ""
    return answer.notify(
        Level.INFO,
        "Tracking sent to ecomdash",
        f"Shipment {shipment_number}: {describe(mapped.record)} (one call for "
        f"{outcome.batch} record{'s' if outcome.batch != 1 else ''}){said}",
    )
