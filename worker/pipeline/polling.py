"""Scheduled polls: which services poll, how often, and the poll message each tick builds.

``POLLS=auto`` (the default) polls every service with a schedule (its ``endpoint.json``
``recommends.schedule``) of every integration whose credentials are configured in the
environment. ``POLLS=dotcom.tracking=600,other.service`` chooses explicitly (seconds; without
one, the service's own schedule); ``POLLS=off`` polls nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from worker.hub.messages import HubMessage
from worker.integrations.registry import Integration, Service

POLL_TASK = "shiphub.poll"


@dataclass(frozen=True)
class Poll:
    integration: str
    service: str
    every_seconds: int

    @property
    def entry_name(self) -> str:
        return f"poll {self.integration}.{self.service}"


class ScheduleError(ValueError):
    pass


def configured_polls(spec: str, integrations: dict[str, Integration]) -> list[Poll]:
    spec = spec.strip()
    if spec.lower() in ("", "off", "none"):
        return []
    if spec.lower() == "auto":
        return [
            Poll(i.name, svc.name, svc.schedule.seconds)
            for i in integrations.values()
            for svc in i.services.values()
            if svc.schedule and i.configured(svc)
        ]
    return [_parse_one(item.strip(), integrations) for item in spec.split(",") if item.strip()]


def _parse_one(item: str, integrations: dict[str, Integration]) -> Poll:
    target, _, seconds = item.partition("=")
    name, _, service = target.partition(".")
    svc = integrations.get(name, Integration(name, "", "")).services.get(service)
    if svc is None:
        raise ScheduleError(f"POLLS: unknown service {target!r}")
    if seconds:
        if not seconds.isdigit() or int(seconds) < 1:
            raise ScheduleError(f"POLLS: {item!r}: the interval is a whole number of seconds")
        return Poll(name, service, int(seconds))
    if svc.schedule is None:
        raise ScheduleError(f"POLLS: {target!r} has no schedule of its own; give one in seconds")
    return Poll(name, service, svc.schedule.seconds)


def poll_message(
    integration: str, service: Service, every_seconds: int, now: float | None = None
) -> HubMessage:
    """The poll message a scheduled tick sends: the service's message, no parameters (the
    handler continues from the stored cursor), and an id fixed per interval, so two beats (or
    a re-sent tick) cannot poll twice in one interval."""
    slot = int((time.time() if now is None else now) // every_seconds)
    return HubMessage(
        message_id=f"scheduled-{integration}-{service.name}-{slot}",
        message=service.messages[0],
        payload={},
    )
