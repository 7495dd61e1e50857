"""The Shipping Order API's configuration: the ``SHIPPING_ORDERS_*`` environment."""

from __future__ import annotations

from functools import cached_property
from typing import Any, ClassVar

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import SettingsConfigDict

from worker.basics.secret_settings import webhook_secret_problem
from worker.integrations.kit import CreatingProviderSettings
from worker.integrations.webhooks import StoreSecrets, parse_store_secrets

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
    api_key: SecretStr | None = Field(
        None,
        description=(
            "the account's key (`x-api-key`); with `SHIPPING_ORDERS_TENANT_ID` set too, "
            "`POLLS=auto` polls `tracking` every 15 minutes"
        ),
    )
    tenant_id: str | None = Field(
        None,
        description="the account's tenant (`tenantId`)",
    )
    location_external_id: str | None = Field(
        None,
        description=(
            "the location shipments leave from (its orchestration rules choose the provider)"
        ),
    )
    # The secrets the provider signs webhooks with (X-DS-Signature): each store's own, as a JSON
    # object of store -> secret (one provider account per store); and HUB_STORE's, when that
    # object does not name it. An event posted for a store without a secret is refused. One
    # that is unfit (``webhook_secret_problem``: blank, too short...) stops the process.
    webhook_secret: SecretStr | None = Field(
        None,
        description=(
            "the secret of `HUB_STORE`'s webhooks (`X-DS-Signature`), when "
            "`SHIPPING_ORDERS_WEBHOOK_SECRETS` does not name it; a store without a secret has its "
            "webhooks refused (401), and with neither set `shiphub check` says so. A blank, "
            "padded or short secret stops the processes at start-up"
        ),
    )
    webhook_secrets: SecretStr | None = Field(
        None,
        description=(
            "each store's webhook secret, a JSON object of store → secret (one account per "
            "store), each at least 12 characters; an event is taken only for the store whose "
            "secret signed it (docs/http.md, a webhook from each store)"
        ),
    )
    # The initial cursor, until a poll has stored one.
    last_polling_datetime: str | None = Field(
        None,
        description="the first cursor (ISO 8601, a date, or epoch ms), until a poll stores one",
    )
    # Without a cursor the first poll reads this far back (the API's own default is 24 h).
    first_poll_lookback_hours: float = Field(
        24.0,
        gt=0,
        description="where the first poll starts without a cursor",
    )
    # Each poll re-reads this much before the cursor, for orders the list shows late;
    # statuses already reported are not reported again, so the overlap is harmless.
    poll_overlap_seconds: float = Field(
        300.0,
        ge=0,
        description=(
            "each poll re-reads this much before the cursor, for orders the list shows late"
        ),
    )
    # Orders per list page (the API's maximum is 1000).
    page_size: int = Field(
        1000,
        ge=1,
        le=1000,
        description="orders per list page (the API's maximum)",
    )

    @field_validator("webhook_secret")
    @classmethod
    def _fit_to_verify(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and (problem := webhook_secret_problem(value.get_secret_value())):
            raise ValueError(problem)
        return value

    @field_validator("webhook_secrets")
    @classmethod
    def _one_secret_per_store(
        cls, value: SecretStr | None, info: ValidationInfo
    ) -> SecretStr | None:
        if value is None:
            return None
        per_store = parse_store_secrets(value.get_secret_value())
        single = info.data.get("webhook_secret")
        for store, secret in per_store.items():
            if single is not None and secret.get_secret_value() == single.get_secret_value():
                raise ValueError(
                    f"store {store!r}'s secret is also {WEBHOOK_SECRET_VARIABLE} (HUB_STORE's): "
                    "give each store's secret once"
                )
        return value

    @cached_property
    def store_secrets(self) -> StoreSecrets:
        text = self.webhook_secrets.get_secret_value() if self.webhook_secrets else "{}"
        return StoreSecrets(parse_store_secrets(text), self.webhook_secret, WEBHOOK_SECRET_VARIABLE)


def shipping_orders_settings() -> ShippingOrdersSettings:
    return ShippingOrdersSettings.current()


def webhook_secrets() -> StoreSecrets:
    return shipping_orders_settings().store_secrets


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
