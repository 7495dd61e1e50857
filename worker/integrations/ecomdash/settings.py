"""ecomdash's configuration: the ``ECOMDASH_*`` environment."""

from __future__ import annotations

from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from worker.integrations.kit import ProviderSettings

PROVIDER = "ecomdash"
API_URL_VARIABLE = "ECOMDASH_API_URL"


class EcomdashSettings(ProviderSettings):
    """``ECOMDASH_*``, checked when a process starts and read when a message is handled. An
    empty variable is an unset one."""

    model_config = SettingsConfigDict(env_prefix="ECOMDASH_", extra="ignore", env_ignore_empty=True)

    provider: ClassVar[str] = PROVIDER

    # No default: unset, ecomdash is not configured and its messages are refused (the real
    # gateway is https://ecomdash.azure-api.net/api; requests go to {url}/Shipments/...).
    # The gateway's key (Ocp-Apim-Subscription-Key) and the customer's (ecd-subscription-key).
    subscription_key: SecretStr | None = Field(
        None,
        description=(
            "the gateway's key (`Ocp-Apim-Subscription-Key`), when messages carry no "
            "`subscription_key`"
        ),
    )
    ecd_key: SecretStr | None = Field(
        None,
        description=(
            "the customer's key (`ecd-subscription-key`), when messages carry no `ecd_key`"
        ),
    )
    # Carrier name -> ecomdash CarrierId: JSON, one mapping or the hub's list of one-key hashes.
    carrier_lookup: str | None = Field(
        None,
        description=(
            "carrier name → CarrierId (JSON: one mapping or the hub's list of one-key hashes), "
            "when messages carry no `carrier_lookup`; parsed at start-up (not JSON, or a "
            "CarrierId that is not a whole number, stops every process naming it)"
        ),
    )
    # Confirmations of one account arriving within this long of each other go out in one
    # call, of at most batch_size records; the first waits at most batch_max_wait_seconds.
    batch_window_seconds: float = Field(
        1.0,
        ge=0,
        le=30,
        description="a batch goes once no confirmation of the account has come for this long",
    )
    batch_size: int = Field(
        100,
        ge=1,
        le=1000,
        description="records per call at most",
    )
    batch_max_wait_seconds: float = Field(
        5.0,
        ge=0,
        le=60,
        description="the first record of a batch waits at most this long",
    )
    # ecomdash's limits per account: 120 calls a minute, 3 at once per operation.
    calls_per_minute: int = Field(
        120,
        ge=1,
        description="ecomdash's rate limit per account",
    )
    concurrent_calls: int = Field(
        3,
        ge=1,
        description="ecomdash's limit of calls at once per account and operation",
    )
    # ecomdash writes dates without a zone: shipped_at is written as wall time in this zone.
    time_zone: str = Field(
        "UTC",
        description=(
            "the zone `ShippedDate` is written in (IANA name; ecomdash writes dates without a zone)"
        ),
    )
    # How long a batch's outcome for one message is kept for that message's retries.
    result_ttl_seconds: int = Field(
        24 * 3600,
        ge=60,
        description=(
            "how long a message's batch outcome (and the account's \"delivered\" mark) is kept"
        ),
    )

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone (e.g. America/Chicago)") from None
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)


def ecomdash_settings() -> EcomdashSettings:
    return EcomdashSettings.current()


def load_config() -> dict[str, Any]:
    """Parameters from the environment, as the hub names them, for messages that carry none."""
    s = ecomdash_settings()
    values = {
        "subscription_key": s.subscription_key,
        "ecd_key": s.ecd_key,
        "carrier_lookup": s.carrier_lookup,
    }
    return {
        name: value
        for name, value in values.items()
        if value is not None
        and (value.get_secret_value() if isinstance(value, SecretStr) else value) != ""
    }
