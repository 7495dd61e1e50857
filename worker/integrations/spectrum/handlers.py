"""Spectrum's service: ``send_tracking`` sends a confirmed shipment's tracking to Spectrum as a
ship notification.

* Once per shipment: what was delivered is kept per shipment number; the same shipment
  confirmed again (another message_id) with the same notification is not sent again, a changed
  one (new tracking numbers) is. The call runs under ``job.once``: a redelivered message that
  had sent it does not send it again.
* Paced: Spectrum answers 403 past ~100 requests per 60 s per endpoint, so calls go through a
  leaky bucket in Redis per environment (``SPECTRUM_RATE_PER_MINUTE``, ``SPECTRUM_BURST``),
  shared by every worker process.
* A 403 is throttling or a bad token, and Spectrum does not say which: each one pauses the
  environment's calls (``SPECTRUM_FORBIDDEN_PAUSE_SECONDS``) and is retried; the 403s of one run
  of a message are counted (``Job.count_up``), and past ``SPECTRUM_FORBIDDEN_RETRIES`` retries it
  is a hard error saying it is either a bad token or throttling (the token is never shown).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from pydantic import SecretStr

from worker.basics.errors import HardError, MissingParameter, ProviderError, TransientError
from worker.hub.messages import Answer, Level
from worker.integrations import registry
from worker.integrations.job import Job, Pace
from worker.integrations.kit import credential
from worker.integrations.registry import Integration, Requirement
from worker.integrations.spectrum.client import (
    SHIP_NOTIFICATION,
    Forbidden,
    SpectrumClient,
    UnknownRecipeSets,
)
from worker.integrations.spectrum.mapping import (
    ShipmentConfirmed,
    sent_summary,
    ship_notification,
    unknown_reasons,
)
from worker.integrations.spectrum.settings import (
    API_TOKEN_VARIABLE,
    PROVIDER,
    SpectrumSettings,
    check_settings,
    load_config,
    spectrum_settings,
)

SENT = "Tracking sent to Spectrum"
ALREADY_SENT = "Tracking already sent to Spectrum"
REFUSED = "Spectrum refused the ship notification"
FORBIDDEN = "Spectrum answered 403 Forbidden"
DELIVERED = "delivered"  # handler memory: the notification delivered, per shipment number
FORBIDDEN_COUNT = "forbidden"  # the 403s of one run of a message, while it is retried

spectrum = registry.register(
    Integration(
        "spectrum",
        PROVIDER,
        "Product customizer: confirmed shipments' tracking numbers sent to Spectrum as ship "
        "notifications, per purchase order and recipe set.",
        config=load_config,
        check=check_settings,
    )
)

API_TOKEN = Requirement("api_token", "Your Spectrum API token (the SPECTRUM_API_TOKEN header)")


@spectrum.service(
    "send_tracking",
    message="shipment:confirm",
    payload=ShipmentConfirmed,
    description="Send a shipped shipment's tracking numbers to Spectrum (ship notification).",
    requires=[API_TOKEN],
)
def send_tracking(job: Job[ShipmentConfirmed]) -> Answer:
    """Send the ship notification once per shipment; answer what was sent."""
    s = spectrum_settings()
    base_url = s.base_url  # an unconfigured Spectrum says so before anything else
    token = credential(job, "api_token", API_TOKEN_VARIABLE).strip()
    if not token:
        raise MissingParameter("api_token")
    shipment = job.payload.shipment
    body = ship_notification(shipment)
    (kept,) = job.watch(DELIVERED, shipment.number)
    if _same_notification(kept, body):
        return job.answer().notify(
            Level.INFO,
            ALREADY_SENT,
            f"shipment {shipment.number} was sent to Spectrum by message {kept['message_id']} "
            "with the same tracking: not sent again",
        )
    client = SpectrumClient(base_url, SecretStr(token), s.timeout)
    bucket = bucket_for(job, s, base_url)

    def send(_key: str) -> dict[str, Any]:
        bucket.take(PROVIDER)
        return client.ship_notification(body).model_dump(mode="json")

    try:
        status = job.once("ship_notification", send, sends=body)
    except Forbidden as exc:
        raise after_forbidden(job, s, bucket, exc) from None
    except UnknownRecipeSets as exc:
        raise HardError(
            REFUSED, unknown_reasons(body, exc.ids, exc.details, exc.status or 409)
        ) from None
    forget_forbidden(job)
    job.keep(DELIVERED, shipment.number, {"message_id": job.message_id, "sends": body})
    return job.answer().notify(
        Level.INFO, SENT, sent_summary(shipment.number, body, status.get("details"))
    )


def _same_notification(kept: Any, body: Mapping[str, Any]) -> bool:
    return isinstance(kept, Mapping) and kept.get("sends") == body


def bucket_for(job: Job[Any], s: SpectrumSettings, base_url: str) -> Pace:
    """The pace of one environment's ship-notification endpoint, for every token together:
    Spectrum's limit is "per endpoint", and whether it counts per token or per client address
    is unknown, so the cautious reading is taken (a 403's pause then holds up every store's
    calls to that environment for a while, which costs time, not updates)."""
    digest = hashlib.sha256(base_url.encode()).hexdigest()[:16]
    return job.pace(f"{digest}:ship-notification", capacity=s.burst, per_second=s.per_second)


def after_forbidden(
    job: Job[Any], s: SpectrumSettings, bucket: Pace, exc: Forbidden
) -> ProviderError:
    """A 403: pause the environment's calls, then try again (a TransientError) until this message
    has had ``forbidden_retries`` retries; then a HardError saying it is throttling or a bad
    token."""
    bucket.hold(s.forbidden_pause_seconds)
    count = job.count_up(FORBIDDEN_COUNT)  # this run's (a replay counts afresh)
    if count <= s.forbidden_retries:
        return TransientError(
            f"{FORBIDDEN} (throttled, or a bad token)",
            [
                f"403 number {count} for this message: Spectrum throttles with 403, so it is "
                f"retried ({s.forbidden_retries} times at most) after a pause of "
                f"{s.forbidden_pause_seconds:g} s",
                *exc.reasons,
            ],
            retry_after=s.forbidden_pause_seconds,
            status=403,
        )
    job.clear_count(FORBIDDEN_COUNT)
    return HardError(
        FORBIDDEN,
        [
            f"Spectrum refused POST {SHIP_NOTIFICATION} with 403 Forbidden {count} times: "
            f"either the token is wrong (check the api_token parameter or {API_TOKEN_VARIABLE}; "
            "its value is not shown) or Spectrum is throttling us (it answers 403 past about "
            "100 requests a minute; check SPECTRUM_RATE_PER_MINUTE and other clients of the "
            "same token)",
            *exc.reasons,
        ],
        status=403,
    )


def forget_forbidden(job: Job[Any]) -> None:
    job.clear_count(FORBIDDEN_COUNT)
