"""Spectrum's configuration: the ``SPECTRUM_*`` environment."""

from __future__ import annotations

from typing import Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from worker.errors import HardError
from worker.integrations.kit import http_url, read_settings, start_up_check

PROVIDER = "Spectrum"
API_URL_VARIABLE = "SPECTRUM_API_URL"
API_TOKEN_VARIABLE = "SPECTRUM_API_TOKEN"
NOT_CONFIGURED = "Spectrum is not configured"


class SpectrumSettings(BaseSettings):
    """``SPECTRUM_*``, checked when a process starts and read when a message is handled. An
    empty variable is an unset one."""

    model_config = SettingsConfigDict(env_prefix="SPECTRUM_", extra="ignore", env_ignore_empty=True)

    # No default: Spectrum has one host per environment (api., staging., dev., demo.), and a
    # forgotten setting must not send tracking to the wrong one unnoticed.
    api_url: str | None = None
    # The SPECTRUM_API_TOKEN header's value, when a message carries no api_token parameter.
    api_token: SecretStr | None = None
    # Spectrum answers 403 past ~100 requests per 60 s per endpoint: we stay under it, across
    # every worker process (worker.pacing.Bucket), at this rate and with this burst.
    rate_per_minute: float = Field(90.0, gt=0)
    burst: float = Field(10.0, ge=1)
    # A 403 is throttling or a bad token, Spectrum does not say which: it is retried this many
    # times (counted per message), then it is a hard error saying both.
    forbidden_retries: int = Field(3, ge=0)
    # After a 403 no call to the environment is made for this long (the window to drain).
    forbidden_pause_seconds: float = Field(30.0, ge=0)
    connect_timeout_seconds: float = Field(5.0, gt=0)
    read_timeout_seconds: float = Field(30.0, gt=0)

    @field_validator("api_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return http_url(value)

    @property
    def base_url(self) -> str:
        if self.api_url is None:
            raise HardError(NOT_CONFIGURED, [f"{API_URL_VARIABLE} is not set"])
        return self.api_url

    @property
    def timeout(self) -> tuple[float, float]:
        return (self.connect_timeout_seconds, self.read_timeout_seconds)

    @property
    def per_second(self) -> float:
        return self.rate_per_minute / 60.0


def spectrum_settings() -> SpectrumSettings:
    return read_settings(SpectrumSettings, PROVIDER)


def check_settings() -> list[str]:
    return start_up_check(
        spectrum_settings, lambda s: [API_URL_VARIABLE] if s.api_url is None else []
    )


def load_config() -> dict[str, Any]:
    """Parameters from the environment, as the hub names them, for messages that carry none."""
    s = spectrum_settings()
    token = s.api_token if s.api_token and s.api_token.get_secret_value() else None
    return {"api_token": token} if token else {}
