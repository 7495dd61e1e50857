"""Service configuration: environment variables, typed and checked once at start-up.

Every variable is listed in the README's configuration table. Provider credentials live in each
integration's own settings class (``DOTCOM_API_KEY``...), next to its code.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    port: int = 8000
    redis_url: str = "redis://127.0.0.1:6379/0"

    # The hub's token for requests to us; required unless insecure development mode is on.
    endpoint_key: SecretStr | None = None
    shiphub_insecure_dev: bool = False

    # Waiting for the worker (X-Hub-Wait overrides per request; the classic hub waited <= 180 s).
    hub_wait_seconds: float = Field(0.0, ge=0, le=180)
    max_body_bytes: int = Field(1024 * 1024, gt=0)

    # Answers pushed back to the hub.
    hub_push_url: str | None = None
    hub_store: str = "default"
    hub_access_token: SecretStr | None = None
    hub_sign_access_token: bool = False  # X-Hub-Access-Token as HMAC-SHA1, like the classic hub
    hub_push_timeout_seconds: float = Field(10.0, gt=0)
    hub_push_max_attempts: int = Field(15, ge=1)
    hub_push_retry_max_seconds: float = Field(60.0, gt=0)

    # Handling messages: bounded, jittered exponential back-off; all well below the visibility
    # timeout so that a waiting retry is never redelivered beside itself.
    task_max_attempts: int = Field(6, ge=1)
    retry_base_seconds: float = Field(2.0, gt=0)
    retry_max_seconds: float = Field(120.0, gt=0)
    task_time_limit_seconds: float = Field(300.0, gt=0)
    broker_visibility_timeout_seconds: float = Field(900.0, gt=0)
    worker_concurrency: int = Field(16, ge=1)

    # Records (and with them the de-duplication window) are kept this long after they finish.
    record_ttl_seconds: int = Field(7 * 24 * 3600, gt=0)

    # Scheduled polls: "auto" polls every scheduled service of every integration whose
    # credentials are configured; or a comma list "dotcom.tracking=3600,ecomdash.x" (seconds,
    # default the service's own schedule); "off" disables polling.
    polls: str = "auto"

    # Extra integration modules to load (a plugin hook; the tests use it for a test integration).
    shiphub_integration_modules: str = ""

    @model_validator(mode="after")
    def _timing_is_consistent(self) -> Settings:
        limit = self.broker_visibility_timeout_seconds
        for name in ("retry_max_seconds", "task_time_limit_seconds", "hub_push_retry_max_seconds"):
            if getattr(self, name) >= limit:
                raise ValueError(
                    f"{name.upper()} must be below BROKER_VISIBILITY_TIMEOUT_SECONDS ({limit:g}): "
                    "a task waiting or running longer than the visibility timeout is redelivered "
                    "and runs twice"
                )
        if self.hub_push_url and self.hub_access_token is None:
            raise ValueError("HUB_PUSH_URL is set but HUB_ACCESS_TOKEN is not: pushes are signed")
        return self

    def require_endpoint_key(self) -> None:
        """Refuse to serve without a hub token, unless insecure development mode is explicit."""
        if self.endpoint_key is None and not self.shiphub_insecure_dev:
            raise SystemExit(
                "ENDPOINT_KEY is not set: refusing to accept unauthenticated hub messages. "
                "Set ENDPOINT_KEY, or SHIPHUB_INSECURE_DEV=1 for local development only."
            )


@lru_cache(maxsize=1)
def settings() -> Settings:
    return Settings()
