"""Integrations and their services: what each provider module declares, and how it is found.

A provider module creates one ``Integration`` and decorates its handlers::

    dotcom = Integration("dotcom", "Dotcom Distribution", "...", config=load_config,
                         check=check_settings)

    @dotcom.service("send_shipment", message="shipment:ready", payload=ShipmentReady,
                    requires=[Requirement("api_key", "Your Dotcom API key")])
    def send_shipment(job: Job[ShipmentReady]) -> Answer: ...

The receiver validates against ``payload``; the worker runs the handler; ``endpoint.json`` is built
from the same declarations, so discovery cannot drift from what is served. ``load()`` runs each
integration's ``check`` in every process as it starts: a bad setting stops it there.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from worker.basics.errors import ConfigurationError, refuse_to_start
from worker.integrations.webhooks import EventKey, Verifier, Webhook, WebhookSecret

if TYPE_CHECKING:
    from worker.hub.messages import Answer
    from worker.integrations.job import Job

log = logging.getLogger(__name__)

# One line per provider.
BUILTIN_MODULES: tuple[str, ...] = (
    "worker.integrations.dotcom",
    "worker.integrations.shipping_orders",
    "worker.integrations.ecomdash",
    "worker.integrations.duoplane",
    "worker.integrations.spectrum",
)
HUB_QUEUE = "hub"
# The service a webhook's handler belongs to: not listed in endpoint.json, not postable by the hub.
WEBHOOK_SERVICE = "webhook"

Interval = Literal["minutes", "hours", "days"]
_SECONDS = {"minutes": 60, "hours": 3600, "days": 86400}


@dataclass(frozen=True)
class Requirement:
    name: str
    description: str
    data_type: str = "string"
    # A polling cursor: the service returns it and keeps it itself, so configuration need not.
    cursor: bool = False


@dataclass(frozen=True)
class Schedule:
    count: int
    interval: Interval

    @property
    def seconds(self) -> int:
        return self.count * _SECONDS[self.interval]


@dataclass(frozen=True)
class Route:
    """Where the task of a message goes: its name and its integration's queue, from the
    integration and the message type alone. So a process that does not run an integration (its
    module is not in this process's ``SHIPHUB_INTEGRATION_MODULES``) still hands a message of
    it on to the workers that do, through its queue."""

    integration: str
    message: str

    @property
    def task_name(self) -> str:
        """``dotcom.shipment_ready`` for ``shipment:ready``; ``dotcom.shipment_results_poll``
        for ``dotcom:shipment_results:poll`` (the integration's own prefix is dropped)."""
        bare = self.message.removeprefix(f"{self.integration}:")
        return f"{self.integration}.{bare.replace(':', '_')}"

    @property
    def queue(self) -> str:
        return self.integration


@dataclass(frozen=True)
class Handler:
    """One hub message type a service takes."""

    integration: str
    service: str
    message: str
    payload: type[BaseModel]
    handle: Callable[[Job[Any]], Answer]

    @property
    def task_name(self) -> str:
        return Route(self.integration, self.message).task_name

    @property
    def queue(self) -> str:
        return self.integration


@dataclass
class Service:
    name: str
    description: str
    requires: tuple[Requirement, ...]
    schedule: Schedule | None
    handlers: dict[str, Handler] = field(default_factory=dict)

    @property
    def messages(self) -> list[str]:
        return list(self.handlers)

    @property
    def exclusive(self) -> bool:
        """Polls of one store run one at a time: two overlapping windows handled at once would
        both emit what neither has marked as confirmed yet."""
        return self.schedule is not None


ConfigLoader = Callable[[], Mapping[str, Any]]
SettingsCheck = Callable[[], Sequence[str]]


def nothing_to_check() -> Sequence[str]:
    return ()


@dataclass
class Integration:
    name: str
    display: str
    description: str
    # Parameters from the environment (``DOTCOM_API_KEY`` ...), used when a message carries none:
    # scheduled polls rely on it.
    config: ConfigLoader = dict
    # Checks the integration's own settings when a process starts (``load``): raises
    # ConfigurationError naming an invalid variable, and returns the required variables that are
    # unset (``["DOTCOM_API_URL"]``), in which case the integration is not configured: it is not
    # polled, and its handlers refuse its messages as hard errors naming them.
    check: SettingsCheck = nothing_to_check
    services: dict[str, Service] = field(default_factory=dict)
    inbound: Webhook | None = None  # the provider's webhook, if it has one
    # At most this many of its messages handled at once across every worker process
    # (``<NAME>_MAX_CONCURRENCY``, read by ``load``; None: no limit but the threads).
    max_concurrency: int | None = None

    @property
    def max_concurrency_variable(self) -> str:
        return f"{self.name.upper()}_MAX_CONCURRENCY"

    def service(
        self,
        name: str,
        *,
        message: str,
        payload: type[BaseModel],
        description: str = "",
        requires: tuple[Requirement, ...] | list[Requirement] = (),
        schedule: Schedule | None = None,
    ) -> Callable[[Callable[[Job[Any]], Answer]], Callable[[Job[Any]], Answer]]:
        def register(handle: Callable[[Job[Any]], Answer]) -> Callable[[Job[Any]], Answer]:
            if self.handler(message) is not None:
                raise ValueError(f"{self.name}: message {message!r} is already handled")
            svc = self.services.setdefault(
                name, Service(name, description or (handle.__doc__ or "").strip(), (), schedule)
            )
            svc.requires = tuple(dict.fromkeys((*svc.requires, *requires)))
            svc.schedule = svc.schedule or schedule
            svc.handlers[message] = Handler(self.name, name, message, payload, handle)
            return handle

        return register

    def webhook(
        self,
        *,
        message: str,
        payload: type[BaseModel],
        verify: Verifier,
        key: EventKey,
        secret: WebhookSecret | None = None,
    ) -> Callable[[Callable[[Job[Any]], Answer]], Callable[[Job[Any]], Answer]]:
        """Declare the provider's webhook: ``POST /webhooks/<integration>`` checks ``verify``,
        validates ``payload``, names the event with ``key`` and hands it to the decorated
        handler as ``message``. ``secret`` is the secret ``verify`` checks signatures with, for
        ``shiphub check`` to say whether it is set."""
        register_handler = self.service(WEBHOOK_SERVICE, message=message, payload=payload)

        def register(handle: Callable[[Job[Any]], Answer]) -> Callable[[Job[Any]], Answer]:
            self.inbound = Webhook(self.name, message, payload, verify, key, secret)
            return register_handler(handle)

        return register

    def hub_services(self) -> dict[str, Service]:
        """The services the hub posts to (the webhook's is the provider's, not the hub's)."""
        return {name: svc for name, svc in self.services.items() if name != WEBHOOK_SERVICE}

    def handler(self, message: str) -> Handler | None:
        for svc in self.services.values():
            if message in svc.handlers:
                return svc.handlers[message]
        return None

    def handlers(self) -> list[Handler]:
        return [h for svc in self.services.values() for h in svc.handlers.values()]

    def configured(self, service: Service) -> bool:
        """Whether the integration's required settings are set and the environment holds every
        parameter the service needs, apart from cursors the service keeps itself; such services
        are polled on schedule by default."""
        if self.check():
            return False
        config = self.config()
        return all(config.get(r.name) not in (None, "") for r in service.requires if not r.cursor)

    def endpoint_json(self) -> dict[str, Any]:
        """Classic discovery document."""
        return {
            "name": self.name,
            "display": self.display,
            "description": self.description,
            "services": [_service_json(svc) for svc in self.hub_services().values()],
        }


def _service_json(svc: Service) -> dict[str, Any]:
    recommends: dict[str, Any] = {"messages": svc.messages}
    if svc.schedule:
        recommends["schedule"] = {"count": svc.schedule.count, "interval": svc.schedule.interval}
    return {
        "name": svc.name,
        "path": f"/{svc.name}",
        "description": svc.description,
        "requires": {
            "parameters": [
                {"name": r.name, "description": r.description, "data_type": r.data_type}
                for r in svc.requires
            ]
        },
        "recommends": recommends,
    }


_registry: dict[str, Integration] = {}


def register(integration: Integration) -> Integration:
    _registry[integration.name] = integration
    return integration


_told_unconfigured: set[str] = set()


def load(extra_modules: str = "") -> dict[str, Integration]:
    """Import the built-in integrations and any extra modules (comma separated); each module
    registers its integration on import. Then check every integration's settings: every process
    (web, worker, beat) loads them when it starts, so an invalid value stops it there, naming
    the variable, instead of failing each message later."""
    for module in BUILTIN_MODULES:
        importlib.import_module(module)
    for module in (m.strip() for m in extra_modules.split(",") if m.strip()):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            refuse_to_start(f"SHIPHUB_INTEGRATION_MODULES: cannot import {module}: {exc}")
    for integration in _registry.values():
        _check(integration)
    return _registry


def _check(integration: Integration) -> None:
    """Run an integration's settings check: an invalid value is printed and ends the process
    (ConfigurationError); unset required ones are said once, as a warning."""
    try:
        missing = integration.check()
        integration.max_concurrency = max_concurrency(integration.max_concurrency_variable)
    except ConfigurationError as exc:
        refuse_to_start(str(exc))
    if missing and integration.name not in _told_unconfigured:
        _told_unconfigured.add(integration.name)
        log.warning(
            "%s is not configured (%s not set): it is not polled and its messages are refused",
            integration.name,
            ", ".join(missing),
        )


def max_concurrency(variable: str, environ: Mapping[str, str] = os.environ) -> int | None:
    """``<NAME>_MAX_CONCURRENCY``: a whole number of at least 1, or unset (or empty): no limit."""
    raw = environ.get(variable, "").strip()
    if not raw:
        return None
    if not raw.isascii() or not raw.isdigit() or int(raw) < 1:
        raise ConfigurationError(
            f"{variable} must be a whole number of at least 1 (messages of the integration "
            f"handled at once across every worker), or unset for no limit; got {raw!r}"
        )
    return int(raw)


def integrations() -> dict[str, Integration]:
    return _registry


def handler_for(integration: str, message: str | None) -> Handler | None:
    """The handler of a recorded message (None for an integration or message no longer served)."""
    found = _registry.get(integration)
    return found.handler(message) if found and message else None


def route_for(integration: str, message: str | None) -> Handler | Route | None:
    """Where a recorded message's task goes: its handler in this process, or (an integration or
    message type this process does not run) its route to the workers that do. None only for
    a record without a message type (gone)."""
    if not message:
        return None
    return handler_for(integration, message) or Route(integration, message)


def queues() -> list[str]:
    return [*_registry, HUB_QUEUE]
