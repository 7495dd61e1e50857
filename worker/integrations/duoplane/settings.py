"""Duoplane's configuration: the ``DUOPLANE_*`` environment, checked at start-up."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from worker.integrations.kit import CreatingProviderSettings

PROVIDER = "Duoplane"
CURSOR = "last_polling_datetime"
API_URL_VARIABLE = "DUOPLANE_API_URL"
MAX_PAGE_SIZE = 250  # the API's default and maximum per_page


class DuoplaneSettings(CreatingProviderSettings):
    """``DUOPLANE_*``, checked when a process starts and read when a message is handled. An
    empty variable is an unset one."""

    model_config = SettingsConfigDict(env_prefix="DUOPLANE_", extra="ignore", env_ignore_empty=True)

    provider: ClassVar[str] = PROVIDER
    api_url_hint: ClassVar[str] = "set it to https://app.duoplane.com"

    # No default: a forgotten setting must not send tracking anywhere unnoticed (the real API is
    # https://app.duoplane.com; bin/run and the tests point it at the simulator).
    api_key: str | None = Field(  # HTTP Basic user
        None,
        description=(
            "the API user (HTTP Basic user); with `DUOPLANE_PASSWORD` set too, `POLLS=auto` polls "
            "`tracking` every hour"
        ),
    )
    password: SecretStr | None = Field(  # HTTP Basic password (the API password)
        None,
        description="the API user's password (HTTP Basic password)",
    )
    # The initial cursor, until a poll has stored one.
    last_polling_datetime: str | None = Field(
        None,
        description="the first cursor (ISO 8601; UTC without an offset), until a poll stores one",
    )
    # Without a cursor the first poll reads this far back.
    first_poll_lookback_hours: float = Field(
        24.0,
        gt=0,
        description="where the first poll starts without a cursor",
    )
    # Each poll re-reads this much before the cursor (shipments saved with an earlier
    # updated_at than the moment they became visible); already confirmed ones are skipped.
    poll_overlap_seconds: float = Field(
        300.0,
        ge=0,
        description=(
            "each poll re-reads this much before the cursor; shipments already confirmed are "
            "skipped"
        ),
    )
    page_size: int = Field(
        MAX_PAGE_SIZE,
        ge=1,
        le=MAX_PAGE_SIZE,
        description="`per_page` (Duoplane's default and maximum)",
    )
    # Duoplane's leaky bucket per API user: 40 requests, draining 2 per second.
    rate_capacity: float = Field(
        40.0,
        ge=1,
        description=(
            "the size of the leaky bucket requests are paced by (Duoplane's: 40 requests per API "
            "user)"
        ),
    )
    rate_per_second: float = Field(
        2.0,
        gt=0,
        description="how fast that bucket drains (Duoplane's: 2 per second)",
    )
    # Added to every Duoplane-Retry-After-Seconds we honour (public clients add a margin).
    retry_after_margin_seconds: float = Field(
        0.25,
        ge=0,
        description="added to a 429's `Duoplane-Retry-After-Seconds`",
    )
    # A read answered 429 is waited out and sent again this many times within the attempt
    # before the attempt gives up (TransientError); a create answered 429 is never resent here.
    rate_limited_retries: int = Field(
        3,
        ge=0,
        le=10,
        description=(
            "reads answered 429 sent again within one attempt (a create answered 429 is never "
            "resent within it)"
        ),
    )


def duoplane_settings() -> DuoplaneSettings:
    return DuoplaneSettings.current()


def load_config() -> dict[str, Any]:
    """Parameters from the environment, as the hub names them, for scheduled polls and for
    messages that carry none."""
    s = duoplane_settings()
    password = s.password if s.password and s.password.get_secret_value() else None
    values = {"api_key": s.api_key, "password": password, CURSOR: s.last_polling_datetime}
    return {name: value for name, value in values.items() if value not in (None, "")}
