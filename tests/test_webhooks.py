"""Webhook secrets per store, and the ids reserved for events (pure; the receiver's answers are
in tests/shipping_orders/test_webhooks_pipeline.py)."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from pydantic import SecretStr

from worker.basics.errors import HardError
from worker.integrations.shipping_orders.settings import ShippingOrdersSettings
from worker.integrations.webhooks import (
    StoreSecrets,
    hex_hmac_sha256,
    parse_store_secrets,
    reserved_id_problem,
)

SECRETS = StoreSecrets(
    {"shop-a": SecretStr("secret-a"), "shop-b": SecretStr("secret-b")},
    SecretStr("secret-main-0123"),
    "ACME_WEBHOOK_SECRET",
)
BODY = b'{"orderExternalId": "H1"}'


def signed(secret: str) -> dict[str, str]:
    return {"X-Sig": hmac.new(secret.encode(), BODY, hashlib.sha256).hexdigest()}


@pytest.mark.parametrize(
    ("store", "secret"),
    [("shop-a", "secret-a"), ("shop-b", "secret-b"), ("main", "secret-main-0123")],
)
def test_each_store_is_verified_with_its_own_secret_only(store: str, secret: str) -> None:
    verify = hex_hmac_sha256("X-Sig", lambda: SECRETS)

    assert verify(signed(secret), BODY, store, "main") is None
    for elsewhere in {"shop-a", "shop-b", "main"} - {store}:
        problem = verify(signed(secret), BODY, elsewhere, "main")
        assert problem is not None and f"store {elsewhere!r}" in problem
        assert secret not in problem


def test_a_store_without_a_secret_is_refused_naming_the_variables() -> None:
    verify = hex_hmac_sha256("X-Sig", lambda: StoreSecrets({}, None, "ACME_WEBHOOK_SECRET"))

    problem = verify(signed("anything"), BODY, "main", "main")

    assert problem is not None
    assert "No webhook secret for store 'main'" in problem
    assert "ACME_WEBHOOK_SECRETS" in problem and "ACME_WEBHOOK_SECRET (HUB_STORE's)" in problem


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"a": "secret-x-0123"', "is not a JSON object of store -> secret: Expecting ','"),
        ('["x"]', "is not a JSON object of store -> secret, but a list"),
        ('{"a": 5}', "store 'a''s secret is not text"),
        ('{"a": ""}', "store 'a''s secret is blank"),
        ('{"a": " secret-x-0123"}', "store 'a''s secret has leading or trailing whitespace"),
        ('{"shop:eu": "secret-x-0123"}', "store 'shop:eu' has a ':'"),
        ('{"": "secret-x-0123"}', "store '' is empty"),
        ('{"a": "secret-x-0123", "b": "secret-x-0123"}', "stores 'a' and 'b' have the same secret"),
        ('{"a": "x"}', "store 'a''s secret is shorter than 12 characters"),
    ],
)
def test_webhook_secrets_that_cannot_verify_a_store_are_refused(text: str, problem: str) -> None:
    with pytest.raises(ValueError) as refused:
        parse_store_secrets(text)

    assert problem in str(refused.value)


def test_webhook_secrets_are_checked_with_the_integrations_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SHIPPING_ORDERS_WEBHOOK_SECRET", "secret-main-0123")
    monkeypatch.setenv("SHIPPING_ORDERS_WEBHOOK_SECRETS", '{"shop-a": "secret-main-0123"}')

    with pytest.raises(HardError) as refused:
        ShippingOrdersSettings.current()

    (reason,) = refused.value.reasons
    assert reason.startswith("SHIPPING_ORDERS_WEBHOOK_SECRETS: ")
    assert "store 'shop-a''s secret is also SHIPPING_ORDERS_WEBHOOK_SECRET" in reason
    assert "secret-main-0123" not in reason


def test_the_integrations_settings_give_each_store_its_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SHIPPING_ORDERS_WEBHOOK_SECRET", "secret-main-0123")
    monkeypatch.setenv("SHIPPING_ORDERS_WEBHOOK_SECRETS", '{"shop-a": "secret-a-012345"}')

    secrets = ShippingOrdersSettings.current().store_secrets

    assert secrets.of("shop-a", "main") == SecretStr("secret-a-012345")
    assert secrets.of("main", "main") == SecretStr("secret-main-0123")
    assert secrets.of("shop-b", "main") is None


@pytest.mark.parametrize("message_id", ["webhook:H1:ORDER_DELIVERED:2026", "webhook:"])
def test_event_ids_are_reserved(message_id: str) -> None:
    assert "reserved" in (reserved_id_problem(message_id) or "")


@pytest.mark.parametrize("message_id", ["webhooks:1", "hook:1", "a-webhook:1", "Webhook-1"])
def test_other_ids_are_not(message_id: str) -> None:
    assert reserved_id_problem(message_id) is None
