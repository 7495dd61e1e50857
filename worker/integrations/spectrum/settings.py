"""Spectrum's configuration: the ``SPECTRUM_*`` environment."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from worker.integrations.kit import ProviderSettings

PROVIDER = "Spectrum"
API_URL_VARIABLE = "SPECTRUM_API_URL"
API_TOKEN_VARIABLE = "SPECTRUM_API_TOKEN"


class SpectrumSettings(ProviderSettings):
    """``SPECTRUM_*``, checked when a process starts and read when a message is handled. An
    empty variable is an unset one."""

    model_config = SettingsConfigDict(env_prefix="SPECTRUM_", extra="ignore", env_ignore_empty=True)

    provider: ClassVar[str] = PROVIDER

    # No default: Spectrum has one host per environment (api., staging., dev., demo.), and a
    # forgotten setting must not send tracking to the wrong one unnoticed.
    # The SPECTRUM_API_TOKEN header's value, when a message carries no api_token parameter.
    api_token: SecretStr | None = Field(
        None,
        description=(
            "the token (sent in the `SPECTRUM_API_TOKEN` header), for messages without an "
            "`api_token` parameter"
        ),
    )
    # Spectrum answers 403 past ~100 requests per 60 s per endpoint: we stay under it, across
    # every worker process (worker.store.pacing.Bucket), at this rate and with this burst.
    rate_per_minute: float = Field(
        90.0,
        gt=0,
        description=(
            "the pace of calls per environment, under Spectrum's ~100 per 60 s, shared by every "
            "worker process"
        ),
    )
    burst: float = Field(
        10.0,
        ge=1,
        description="how many calls may go at once before the pace applies",
    )
    # A 403 is throttling or a bad token, Spectrum does not say which: it is retried this many
    # times (counted per message), then it is a hard error saying both.
    forbidden_retries: int = Field(
        3,
        ge=0,
        description=(
            "how many times a message's 403 is retried before it is a hard error (a 403 is "
            "throttling or a bad token: Spectrum does not say which)"
        ),
    )
    # After a 403 no call to the environment is made for this long (the window to drain).
    forbidden_pause_seconds: float = Field(
        30.0,
        ge=0,
        description="after a 403, no call to the environment for this long",
    )

    @property
    def per_second(self) -> float:
        return self.rate_per_minute / 60.0


def spectrum_settings() -> SpectrumSettings:
    return SpectrumSettings.current()


def check_settings() -> list[str]:
    return SpectrumSettings.check()


def load_config() -> dict[str, Any]:
    """Parameters from the environment, as the hub names them, for messages that carry none."""
    s = spectrum_settings()
    token = s.api_token if s.api_token and s.api_token.get_secret_value() else None
    return {"api_token": token} if token else {}
