"""What every provider package shares: reading its ``<NAME>_*`` settings and checking them at
start-up, and the credentials a message may carry.

A provider package has four modules: ``settings`` (a pydantic ``BaseSettings`` read with
``read_settings``), ``client`` (transport only, on ``worker.integrations.http``), ``mapping`` (pure
functions, hub objects to the provider's format and back) and ``handlers`` (its services,
registered on an ``Integration``). Adding one touches its package, its simulator, its tests,
its page under ``docs/integrations/`` and one line of
``worker.integrations.registry.BUILTIN_MODULES``. Every setting has a ``description``: it is the
setting's line in ``docs/configuration.md``.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from itertools import islice
from typing import Annotated, Any, ClassVar, Self, TypeVar

from pydantic import BeforeValidator, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings

from worker.basics.errors import ConfigurationError, HardError
from worker.basics.secret_settings import SecretsChecked
from worker.basics.settings import http_url_problem
from worker.integrations.job import Job

S = TypeVar("S", bound=BaseSettings)
T = TypeVar("T")


def read_settings(cls: type[S], provider: str) -> S:
    """The provider's settings from the environment; a bad value is a HardError naming the
    variable (its value is not repeated: it could be a secret).

    Read again only when one of the class's variables changed: reading them costs a
    millisecond or more (pydantic-settings looks at every variable), twice per message."""
    prefix = str(cls.model_config.get("env_prefix", "")).upper()
    variables = tuple(sorted((k, v) for k, v in os.environ.items() if k.upper().startswith(prefix)))
    return _read_settings(cls, provider, variables)


@lru_cache(maxsize=64)
def _read_settings(cls: type[S], provider: str, variables: tuple[tuple[str, str], ...]) -> S:
    del variables  # the cache's key: what the environment held for this class
    try:
        return cls()
    except ValidationError as exc:
        prefix = str(cls.model_config.get("env_prefix", ""))
        raise HardError(
            f"{provider} configuration is invalid",
            [
                f"{prefix}{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}"
                for e in exc.errors(include_url=False, include_input=False)
            ],
        ) from None


def start_up_check(read: Callable[[], S], required: Callable[[S], Sequence[str]]) -> list[str]:
    """An ``Integration.check``: an invalid value stops the process naming the variable; the
    unset required variables (``required``) are returned."""
    try:
        s = read()
    except HardError as exc:
        raise ConfigurationError(f"{exc.subject}: {'; '.join(exc.reasons)}") from None
    return list(required(s))


def parsed_at_start(
    provider: str, variable: str, raw: str | None, parse: Callable[[str], object]
) -> None:
    """A structured setting (a JSON lookup, a cursor) parsed when a process starts, with the
    parser a message's parameter meets: what it refuses (a HardError's reasons, a ValueError's
    text) stops the process, naming the variable, instead of failing every message later."""
    if raw is None or raw == "":
        return
    try:
        parse(raw)
    except HardError as exc:
        reasons = exc.reasons
    except ValueError as exc:
        reasons = [str(exc)]
    else:
        return
    raise ConfigurationError(
        f"{provider} configuration is invalid: {variable}: {'; '.join(reasons)}"
    )


def http_url(value: str | None) -> str | None:
    """A settings validator: an http(s) base URL (``http_url_problem``), without its trailing
    '/'."""
    if value is None:
        return None
    if problem := http_url_problem(value):
        raise ValueError(problem)
    return value.rstrip("/")


class ProviderSettings(SecretsChecked):
    """What every provider's ``<NAME>_*`` settings share: the API's base URL, with no default
    (a forgotten setting must not send anything anywhere unnoticed: ``bin/run`` and the tests
    point it at the simulator), and the timeouts of one request. A provider subclasses it with
    its ``env_prefix``, its name and its own settings. Every secret among them must be one
    (``SecretsChecked``: not blank, no whitespace around it, no control character)."""

    provider: ClassVar[str] = ""
    api_url_hint: ClassVar[str] = ""  # what to set the URL to, said when it is unset

    api_url: str | None = Field(
        None,
        description=(
            "the API's base URL; only configuration chooses it, never a hub message. Unset, the "
            "integration is not configured: its messages are hard errors naming the variable, "
            "and it is not polled. `bin/run` points it at its simulator"
        ),
    )
    connect_timeout_seconds: float = Field(
        5.0,
        gt=0,
        description="connect timeout of one request",
    )
    read_timeout_seconds: float = Field(
        30.0,
        gt=0,
        description="read timeout of one request",
    )

    @field_validator("api_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return http_url(value)

    @classmethod
    def api_url_variable(cls) -> str:
        return f"{cls.model_config.get('env_prefix', '')}API_URL"

    @property
    def base_url(self) -> str:
        """Where requests go; a HardError naming the variable when it is not set."""
        if self.api_url is None:
            hint = f": {self.api_url_hint}" if self.api_url_hint else ""
            raise HardError(
                f"{self.provider} is not configured",
                [f"{self.api_url_variable()} is not set{hint}"],
            )
        return self.api_url

    @property
    def timeout(self) -> tuple[float, float]:
        return (self.connect_timeout_seconds, self.read_timeout_seconds)

    @classmethod
    def current(cls) -> Self:
        """The settings now; a bad value is a HardError naming the variable."""
        return read_settings(cls, cls.provider)

    @classmethod
    def check(cls) -> list[str]:
        """The start-up check (``Integration.check``): without the URL, not configured."""
        return start_up_check(
            cls.current, lambda s: [cls.api_url_variable()] if s.api_url is None else []
        )


class CreatingProviderSettings(ProviderSettings):
    """The settings of a provider whose creates take no idempotency key (Dotcom's orders,
    Duoplane's shipments): how long a create whose outcome is unknown may still land.

    Our side gives up on a call after its connect and read timeouts; the provider may go on
    working on it after that (a request behind a router that timed out, a server that does
    not notice the client left). ``late_landing_seconds`` is how much longer it is assumed to
    take at most: no provider documents it. Only after ``lands_within`` is an unknown create
    looked up (``worker.integrations.job.LookFirst``) and, if it is not there, made again."""

    late_landing_seconds: float = Field(
        60.0,
        ge=0,
        description=(
            "how long after our side gave up on a create (connect + read timeout) it is assumed "
            "to still possibly land at the provider; a create whose outcome is unknown is looked "
            "up, and made again only if it is not there, after that"
        ),
    )

    @property
    def lands_within(self) -> float:
        return self.connect_timeout_seconds + self.read_timeout_seconds + self.late_landing_seconds


def credential(job: Job[Any], name: str, variable: str) -> str:
    """A credential parameter as text; one with control characters (a pasted line break) is a
    HardError naming it and where it may come from, never its value (never retried: the same
    value fails every time)."""
    value = job.param(name)
    text = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
    if any(unicodedata.category(c) == "Cc" for c in text):
        raise invalid_credential(name, variable, "has control characters (a line break, a tab...)")
    return text


def invalid_credential(name: str, variable: str, why: str) -> HardError:
    return HardError(
        f"Invalid {name}",
        [f"{name} {why}: check the {name} parameter (or {variable}); its value is not shown"],
    )


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Items in lists of ``size`` (the last shorter), read lazily: Python 3.12's
    ``itertools.batched``, for 3.11."""
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch


def listing(names: Sequence[str], limit: int = 50) -> str:
    """Names for a notification: the first ``limit``, and how many more."""
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"


# Providers' ids (ecomdash's, Duoplane's) are 64-bit integers: at most this, and 19 digits.
MAX_PROVIDER_ID = 2**63 - 1
PROVIDER_ID_DIGITS = len(str(MAX_PROVIDER_ID))
# An id written as text: ASCII digits, and a zero fraction for ids typed as decimals ("20405.0").
ID_TEXT = re.compile(r"([0-9]+)(?:\.0+)?")
# Past this a JSON fraction (20405.0) no longer holds every whole number exactly.
EXACT_FRACTION = 2**53


def whole_number(value: Any) -> Any:
    """A provider's id as the hub may write it, as an int: a JSON integer; a whole JSON fraction
    (20405.0: ecomdash's schema types ids as decimals) small enough to be exact; or text of ASCII
    digits ("20405", "20405.0"). A boolean, a fraction, and text with anything else (spaces, a
    sign, an exponent, other scripts' digits) are refused; other types are left for pydantic to
    refuse."""
    if isinstance(value, bool):
        raise ValueError("must be a whole number, not a boolean")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("must be a whole number")
        if abs(value) > EXACT_FRACTION:
            raise ValueError("must be written as an integer: as a fraction it is not exact")
        return int(value)
    if isinstance(value, str):
        digits = ID_TEXT.fullmatch(value)
        if digits is None:
            raise ValueError(
                "must be a whole number in ASCII digits (no spaces, sign, exponent or other digits)"
            )
        if len(digits[1]) > PROVIDER_ID_DIGITS:  # before int(): it refuses over 4,300 digits
            raise ValueError(f"must be a whole number of at most {PROVIDER_ID_DIGITS} digits")
        return int(digits[1])
    return value


# The bound before the validator: pydantic then writes it as JSON Schema's exclusiveMinimum
# (after it, as a non-standard "gt" that clients and the OpenAPI document's fuzzer ignore).
ProviderId = Annotated[int, Field(gt=0, le=MAX_PROVIDER_ID), BeforeValidator(whole_number)]


# A polling cursor's range. Past it, a poll's arithmetic (the overlap taken off the cursor, its
# time in the provider's zone) leaves datetime's years 1 to 9999 and raises OverflowError.
EARLIEST_CURSOR = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_CURSOR = datetime(9999, 1, 1, tzinfo=UTC)
CURSOR_RANGE = "from 1970-01-01 to 9999-01-01 UTC"


def cursor_in_range(moment: datetime) -> datetime:
    """``moment`` (aware) when a poll can start from it; ValueError when it is out of range,
    which a handler's ``cursor_of`` makes a HardError naming the parameter."""
    if not EARLIEST_CURSOR <= moment <= LATEST_CURSOR:
        raise ValueError(f"{moment.isoformat()} is out of range ({CURSOR_RANGE})")
    return moment
