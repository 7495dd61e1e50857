"""Which integration and service take a message: read from the receiver's discovery documents
(``GET /`` and ``GET /<integration>/endpoint.json``), so a remote service is asked what it serves
rather than this host's copy of the registry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import click

from shiphub_cli.receiver import Receiver, path_of


@dataclass(frozen=True)
class Target:
    """A service of an integration: where a hub message is posted."""

    integration: str
    service: str
    messages: tuple[str, ...]
    schedule: dict[str, Any] | None

    @property
    def path(self) -> str:
        return path_of(self.integration, self.service)

    @property
    def name(self) -> str:
        return f"{self.integration}/{self.service}"


def integrations(receiver: Receiver) -> list[str]:
    answer = receiver.get("/")
    if not answer.ok:
        raise receiver.refusal(answer, "listing the integrations")
    return [str(i["name"]) for i in answer.body.get("integrations", []) if "name" in i]


def services(receiver: Receiver, integration: str) -> list[Target]:
    """The services ``integration`` lists in its ``endpoint.json``."""
    answer = receiver.get(path_of(integration, "endpoint.json"))
    if answer.status == 404:
        raise click.UsageError(f"the receiver has no integration {integration!r}: {answer.reason}")
    if not answer.ok:
        raise receiver.refusal(answer, f"reading {integration}'s endpoint.json")
    return [
        Target(
            integration,
            str(s["name"]),
            tuple(s.get("recommends", {}).get("messages", [])),
            s.get("recommends", {}).get("schedule"),
        )
        for s in answer.body.get("services", [])
    ]


def target_for(receiver: Receiver, message: str, to: str | None) -> Target:
    """The one service that takes ``message``, among every integration's or ``to``'s
    (``integration`` or ``integration/service``). None or several: a usage error naming them."""
    if to is not None and not to.strip("/"):
        raise click.BadParameter("is empty", param_hint="--to")
    if to and "/" in to:
        integration, _, service = to.partition("/")
        if not integration or not service or "/" in service:
            raise click.BadParameter(f"{to!r} is not INTEGRATION/SERVICE", param_hint="--to")
        return Target(integration, service, (message,), None)
    names = [to] if to else integrations(receiver)
    takers = [t for name in names for t in services(receiver, name) if message in t.messages]
    if len(takers) == 1:
        return takers[0]
    where = f"{to}'s services" if to else "the receiver's integrations"
    if not takers:
        raise click.UsageError(f"no service of {where} takes {message!r}")
    raise click.UsageError(
        f"{message!r} is taken by {', '.join(t.name for t in takers)}: "
        "say which with --to INTEGRATION or --to INTEGRATION/SERVICE"
    )


def poll_target(receiver: Receiver, integration: str, service: str | None) -> Target:
    """The scheduled service to poll: ``service``, or the integration's only scheduled one."""
    found = services(receiver, integration)
    polls = [t for t in found if t.schedule]
    names = ", ".join(t.service for t in polls) or "none"
    if service is None:
        if len(polls) != 1:
            raise click.UsageError(f"name the service to poll; {integration}'s polls: {names}")
        return polls[0]
    chosen = next((t for t in found if t.service == service), None)
    if chosen is None or not chosen.schedule:
        raise click.UsageError(f"{integration}/{service} is not a poll; {integration}'s: {names}")
    return chosen
