"""``shiphub check``: the configuration this host's processes would start with, and whether what
they need answers.

It runs the same validation web, worker and beat run when they start (``worker.basics.settings``,
each integration's start-up check, ``POLLS``), but reports every finding instead of stopping at the
first, then pings Redis and asks the receiver's ``/healthz``. A secret is only ever said to be
"set" or "not set"; a URL is shown without its user, password and query.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
from pydantic import ValidationError

from shiphub_cli.receiver import Receiver, Unreachable
from worker.basics.errors import ConfigurationError, HardError
from worker.basics.settings import Settings
from worker.integrations import registry
from worker.integrations.webhooks import WebhookSecret
from worker.pipeline.polling import ScheduleError, configured_polls
from worker.pipeline.runtime import redis_client


class Level(StrEnum):
    """How a check came out: ``problem`` fails the check, ``note`` is worth knowing, ``ok`` is
    fine."""

    OK = "ok"
    NOTE = "note"
    PROBLEM = "problem"


REDIS_TIMEOUT_SECONDS = 3.0


@dataclass(frozen=True)
class Check:
    """One finding, at its level."""

    subject: str
    level: Level
    detail: str

    def as_json(self) -> dict[str, str]:
        return asdict(self)


def run_checks(receiver: Receiver, token_set: bool) -> list[Check]:
    settings: Settings | None
    try:
        settings = Settings()
    except ValidationError as exc:
        settings = None
        found = [
            Check(_variable(e), Level.PROBLEM, e["msg"].removeprefix("Value error, "))
            for e in exc.errors(include_input=False)
        ]
    else:
        found = [Check("settings", Level.OK, "every variable of worker.basics.settings is valid")]
        found += list(_access(settings))
    modules = (
        settings.shiphub_integration_modules if settings else _env("SHIPHUB_INTEGRATION_MODULES")
    )
    hub_store = settings.hub_store if settings else _env("HUB_STORE") or "default"
    found += list(_integrations(modules, hub_store))
    found += list(_polls(settings.polls if settings else _env("POLLS") or "auto"))
    found.append(
        _redis(
            settings.redis_url if settings else _env("REDIS_URL") or _default_redis(),
            settings.redis_sentinel_master
            if settings
            else _env("REDIS_SENTINEL_MASTER") or "mymaster",
        )
    )
    found += list(_receiver(receiver, token_set))
    return found


def shown_url(url: str) -> str:
    """A URL as it may be printed: without user, password and query (any may hold a secret)."""
    try:
        parts = urlsplit(url)
        netloc = parts.hostname or ""
        if parts.port:
            netloc = f"{netloc}:{parts.port}"
    except ValueError:
        return "(not a URL)"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _access(settings: Settings) -> Iterator[Check]:
    """The secrets the service runs with, as set / not set, and what their absence means."""
    insecure = settings.shiphub_insecure_dev
    if settings.endpoint_key is not None:
        yield Check("ENDPOINT_KEY", Level.OK, "set")
    elif insecure:
        yield Check(
            "ENDPOINT_KEY",
            Level.NOTE,
            "not set: SHIPHUB_INSECURE_DEV lets every request in (local development only)",
        )
    else:
        yield Check(
            "ENDPOINT_KEY", Level.PROBLEM, "not set: the receiver refuses to start without it"
        )
    if settings.shiphub_secret_key is not None:
        yield Check("SHIPHUB_SECRET_KEY", Level.OK, "set")
    elif insecure:
        yield Check(
            "SHIPHUB_SECRET_KEY",
            Level.NOTE,
            "not set: SHIPHUB_INSECURE_DEV stores message parameters unsealed",
        )
    else:
        yield Check(
            "SHIPHUB_SECRET_KEY", Level.PROBLEM, "not set: the receiver refuses to start without it"
        )
    if settings.hub_push_url:
        yield Check(
            "HUB_PUSH_URL",
            Level.OK,
            f"{shown_url(settings.hub_push_url)} (HUB_ACCESS_TOKEN set), store "
            f"{settings.hub_store!r}",
        )
    else:
        yield Check(
            "HUB_PUSH_URL",
            Level.NOTE,
            "not set: answers are not pushed; waiting requests and GET /messages/... return them",
        )
    if keys := settings.push_signing_keys:
        count = f"{len(keys)} secret" + ("s: a rotation" if len(keys) > 1 else "")
        said = f"set: pushes carry a Standard Webhooks webhook-signature ({count})"
        yield Check("HUB_PUSH_SECRET", Level.OK, said)
    elif settings.hub_push_url:
        yield Check(
            "HUB_PUSH_SECRET",
            Level.NOTE,
            "not set: pushes carry webhook-id and webhook-timestamp but no webhook-signature "
            "(hubs verify X-Hub-Signature)",
        )


def _integrations(extra_modules: str, hub_store: str) -> Iterator[Check]:
    """Each integration's start-up check (an invalid ``<NAME>_*`` value stops every process),
    whether it is configured, and which parameters its environment provides."""

    extra = [m.strip() for m in extra_modules.split(",") if m.strip()]
    for module in [*registry.BUILTIN_MODULES, *extra]:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            yield Check(
                "SHIPHUB_INTEGRATION_MODULES", Level.PROBLEM, f"cannot import {module}: {exc}"
            )
    for integration in registry.integrations().values():
        try:
            missing = integration.check()
        except ConfigurationError as exc:
            yield Check(integration.name, Level.PROBLEM, f"{exc}; every process refuses to start")
            continue
        if missing:
            yield Check(
                integration.name,
                Level.NOTE,
                f"not configured ({', '.join(missing)} not set): not polled, its messages are "
                "refused",
            )
        else:
            yield Check(integration.name, Level.OK, _parameters(integration))
        if integration.inbound is not None and integration.inbound.secret is not None:
            yield _webhook(integration.inbound.secret, integration.name, not missing, hub_store)


def _webhook(secret: WebhookSecret, integration: str, configured: bool, hub_store: str) -> Check:
    """Whether an integration's webhook events can be verified. Without its secret every event
    is refused (401): a problem when the integration is configured (every event its provider
    sends is lost, only the poll finds what they said), a note when it is not."""
    subject = f"webhooks/{integration}"
    if problem := secret.problem():
        said = f"{problem} (every event at /{subject} is refused 401)"
        return Check(subject, Level.PROBLEM if configured else Level.NOTE, said)
    stores = ", ".join(secret.stores(hub_store))
    return Check(subject, Level.OK, f"events are verified for store(s) {stores}")


def _parameters(integration: registry.Integration) -> str:
    """Which parameters the environment gives (a message may carry the others), set or not."""
    try:
        config = integration.config()
    except HardError as exc:
        return f"configured; its parameters cannot be read: {exc}"
    names = dict.fromkeys(
        r.name for svc in integration.services.values() for r in svc.requires if not r.cursor
    )
    said = [f"{n} {'set' if config.get(n) not in (None, '') else 'not set'}" for n in names]
    return "configured" + (f"; from the environment: {', '.join(said)}" if said else "")


def _polls(spec: str) -> Iterator[Check]:
    try:
        polls = configured_polls(spec, registry.integrations())
    except ScheduleError as exc:
        yield Check("POLLS", Level.PROBLEM, f"{exc}; beat refuses to start")
        return
    except ConfigurationError:
        return  # an integration's invalid setting, reported above
    listed = ", ".join(f"{p.integration}.{p.service} every {p.every_seconds} s" for p in polls)
    yield Check("POLLS", Level.OK, f"{spec!r}: {listed or 'nothing is polled'}")


def _redis(url: str, master: str) -> Check:
    """Redis as the service reaches it (a ``sentinel://`` URL through its sentinels)."""
    try:
        client = redis_client(url, socket_timeout=REDIS_TIMEOUT_SECONDS, master=master)
        client.ping()
    except ValueError:
        return Check(
            "REDIS_URL",
            Level.PROBLEM,
            "not a Redis URL (redis://host:port/db, or sentinel://host:port;sentinel://...)",
        )
    except redis.RedisError as exc:
        return Check(
            "REDIS_URL",
            Level.PROBLEM,
            f"{shown_url(url)} does not answer ({exc.__class__.__name__}): records and the "
            "broker live there",
        )
    return Check("REDIS_URL", Level.OK, f"{shown_url(url)} answers")


def _receiver(receiver: Receiver, token_set: bool) -> Iterator[Check]:
    """The receiver at SHIPHUB_URL, if it can be reached: its health, and whether it takes the
    token this host would send."""
    where = shown_url(receiver.url)
    try:
        health = receiver.get("/healthz")
    except Unreachable:
        yield Check("receiver", Level.NOTE, f"not reachable at {where}: not checked")
        return
    checks = health.body.get("checks", {})
    said = ", ".join(f"{name} {state}" for name, state in checks.items()) or health.reason
    yield Check(
        "receiver", Level.OK if health.status == 200 else Level.PROBLEM, f"{where}/healthz: {said}"
    )
    auth = receiver.get("/auth")
    if auth.status == 200:
        yield Check(
            "token", Level.OK, f"{where} takes {'it' if token_set else 'requests without one'}"
        )
    elif auth.status == 401:
        yield Check(
            "token",
            Level.PROBLEM,
            f"{where} refuses {'it' if token_set else 'requests without one'}: check "
            "ENDPOINT_KEY or --token-file",
        )
    else:
        yield Check("token", Level.PROBLEM, f"{where}/auth answered HTTP {auth.status}")


def _variable(error: Any) -> str:
    """A pydantic error's location as the variable it came from (``HUB_PUSH_URL``)."""
    return ".".join(str(part) for part in error["loc"]).upper() or "settings"


def _env(name: str) -> str:
    return os.environ.get(name, "")


def _default_redis() -> str:
    return str(Settings.model_fields["redis_url"].default)
