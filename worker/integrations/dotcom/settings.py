"""Dotcom Distribution's configuration: the ``DOTCOM_*`` environment, checked at start-up."""

from __future__ import annotations

import logging
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from worker.integrations.kit import CreatingProviderSettings

log = logging.getLogger(__name__)

PROVIDER = "Dotcom Distribution"
CURSOR = "last_polling_datetime"
API_URL_VARIABLE = "DOTCOM_API_URL"
API_URL_HINT = "set it to Dotcom's API base URL (its test service and the live one differ)"


# ---------------------------------------------------------------------------------------------
# Configuration


class DotcomSettings(CreatingProviderSettings):
    """``DOTCOM_*`` environment configuration, checked when a process starts
    (``handlers.check_settings``) and read when a message is handled. An empty variable is an
    unset one."""

    model_config = SettingsConfigDict(env_prefix="DOTCOM_", extra="ignore", env_ignore_empty=True)

    provider: ClassVar[str] = PROVIDER
    api_url_hint: ClassVar[str] = API_URL_HINT

    # Only configuration chooses where requests (and their signatures) go; never a hub message.
    # No default: a production install that forgot it must not send real orders to Dotcom's
    # test service unnoticed (``bin/run`` and the tests set it to the simulator).
    api_key: str | None = Field(
        None,
        description=(
            "the account's API key (the user of every request's signature); with "
            "`DOTCOM_PASSWORD` (and `DOTCOM_API_URL`) set, `POLLS=auto` polls `tracking` on its "
            "hourly schedule"
        ),
    )
    password: SecretStr | None = Field(
        None,
        description="the account's password (the key of every request's HMAC-MD5 signature)",
    )
    # JSON: the hub's list of one-key hashes, or one mapping (as the parameter).
    shipping_lookup: str | None = Field(
        None,
        description=(
            'JSON, as the parameter: `[{"UPS Ground (USD)": "03"}, ...]` or one mapping; parsed '
            "at start-up (not JSON, or a code that is not 1 to 3 ASCII characters, stops every "
            "process naming it)"
        ),
    )
    # The initial cursor, until a poll has stored one.
    last_polling_datetime: str | None = Field(
        None,
        description="the first cursor, until a poll stores one",
    )
    # Dotcom shows shipments late: a window ends this long before now.
    poll_lag_seconds: float = Field(
        900.0,
        ge=0,
        description=(
            "a window ends this long before now (Dotcom shows shipments late); `bin/run`: 20"
        ),
    )
    # Each window also re-reads this much before the cursor, for shipments that showed up later
    # than the lag; already confirmed releases are skipped, so the overlap is harmless.
    poll_overlap_seconds: float = Field(
        3600.0,
        ge=0,
        description=(
            "each query also re-reads this much before the cursor, for shipments shown later than "
            "the lag; confirmed releases are never emitted twice"
        ),
    )
    # The window start when there is no cursor at all.
    first_poll_lookback_hours: float = Field(
        24.0,
        gt=0,
        description="where the first window starts when there is no cursor at all",
    )
    # Dotcom is in New Jersey: cursors, query dates, order dates and ship dates use this zone.
    timezone: str = Field(
        "America/New_York",
        description="the warehouse's zone: cursors, query dates, order dates, ship dates",
    )
    read_timeout_seconds: float = Field(60.0, gt=0)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def dotcom_settings() -> DotcomSettings:
    """The current ``DOTCOM_*`` settings; a bad value is a hard error naming the variable."""
    return DotcomSettings.current()


def load_config() -> dict[str, Any]:
    """Parameters from the environment, named as the hub names them, so that a scheduled poll
    needs no hub message. Empty values are left out."""
    s = dotcom_settings()
    password = s.password if s.password and s.password.get_secret_value() else None
    values = {
        "api_key": s.api_key,
        "password": password,
        "shipping_lookup": s.shipping_lookup,
        CURSOR: s.last_polling_datetime,
    }
    return {name: value for name, value in values.items() if value not in (None, "")}
