"""The Shipping Order API's configuration: the ``SHIPPING_ORDERS_*`` environment."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from worker.integrations.kit import CreatingProviderSettings
from worker.secret_settings import webhook_secret_problem

PROVIDER = "Shipping Order API"
CURSOR = "last_polling_datetime"
API_URL_VARIABLE = "SHIPPING_ORDERS_API_URL"
WEBHOOK_SECRET_VARIABLE = "SHIPPING_ORDERS_WEBHOOK_SECRET"


class ShippingOrdersSettings(CreatingProviderSettings):
    """``SHIPPING_ORDERS_*``, checked when a process starts and read when a message is handled.
    An empty variable is an unset one."""

    model_config = SettingsConfigDict(
        env_prefix="SHIPPING_ORDERS_", extra="ignore", env_ignore_empty=True
    )

    provider: ClassVar[str] = PROVIDER

    # No default: a forgotten setting must not send real orders anywhere unnoticed (bin/run and
    # the tests point it at the simulator).
    api_key: SecretStr | None = None
    tenant_id: str | None = None
    location_external_id: str | None = None
    # The secret the provider signs webhooks with (X-DS-Signature); without it webhooks are
    # refused. One that is unfit (``webhook_secret_problem``: blank, too short...) stops the
    # process at start-up.
    webhook_secret: SecretStr | None = None
    # The initial cursor, until a poll has stored one.
    last_polling_datetime: str | None = None
    # Without a cursor the first poll reads this far back (the API's own default is 24 h).
    first_poll_lookback_hours: float = Field(24.0, gt=0)
    # Each poll re-reads this much before the cursor, for orders the list shows late;
    # statuses already reported are not reported again, so the overlap is harmless.
    poll_overlap_seconds: float = Field(300.0, ge=0)
    # Orders per list page (the API's maximum is 1000).
    page_size: int = Field(1000, ge=1, le=1000)

    @field_validator("webhook_secret")
    @classmethod
    def _fit_to_verify(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and (problem := webhook_secret_problem(value.get_secret_value())):
            raise ValueError(problem)
        return value


def shipping_orders_settings() -> ShippingOrdersSettings:
    return ShippingOrdersSettings.current()


def webhook_secret() -> SecretStr | None:
    return shipping_orders_settings().webhook_secret


def load_config() -> dict[str, Any]:
    """Parameters from the environment, as the hub names them, for scheduled polls and for
    messages that carry none."""
    s = shipping_orders_settings()
    values = {
        "api_key": s.api_key if s.api_key and s.api_key.get_secret_value() else None,
        "tenant_id": s.tenant_id,
        "location_external_id": s.location_external_id,
        CURSOR: s.last_polling_datetime,
    }
    return {name: value for name, value in values.items() if value not in (None, "")}
