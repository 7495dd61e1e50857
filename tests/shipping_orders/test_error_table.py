"""Every row of the seed's error table, answered by the simulator over real HTTP, classified by
our client by type and severity (not by HTTP code), with the provider's own words kept; and the
vendor's HTTP 400 for the types the seed gives 422."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from tests.shipping_orders.conftest import (
    API_KEY,
    LOCATION,
    TENANT,
    ShippingOrdersSimulator,
    ready_message,
)
from worker.basics.errors import HardError, ProviderError, TransientError
from worker.hub.messages import ShipmentReady
from worker.integrations.shipping_orders.client import Account, ShippingOrdersClient
from worker.integrations.shipping_orders.mapping import create_body

T, H = "transient", "hard"
# (route, type, HTTP code, severity) exactly as the seed's tables list them.
TABLE = [
    ("create", "UNAUTHORIZED", 401, H),
    ("create", "INTERNAL_SERVER_ERROR", 500, T),
    ("create", "VALIDATION_ERROR", 400, H),
    ("create", "INVALID_DATA", 422, H),
    ("create", "DUPLICATE_ID", 422, H),
    ("create", "DUPLICATE_NAME", 422, H),
    ("create", "DUPLICATE_RESOURCE", 422, H),
    ("create", "NO_PROVIDER_ASSIGNED", 422, H),
    ("create", "NO_PROVIDER_MATCHED", 422, H),
    ("create", "PLACE_ORDER_FAILED", 422, T),
    ("create", "GEOCODING_FAILED", 422, H),
    ("create", "TOO_MANY_REQUESTS", 429, T),
    ("create", "UNMAPPED_ERROR", 422, T),
    ("list", "UNAUTHORIZED", 401, H),
    ("list", "INTERNAL_SERVER_ERROR", 500, T),
    ("list", "INVALID_DATA", 400, H),
    ("get", "UNAUTHORIZED", 401, H),
    ("get", "INTERNAL_SERVER_ERROR", 500, T),
    ("get", "INVALID_DATA", 422, H),
    ("get", "NOT_FOUND", 404, H),
    ("cancel", "UNAUTHORIZED", 401, H),
    ("cancel", "INTERNAL_SERVER_ERROR", 500, T),
    ("cancel", "NOT_FOUND", 404, H),
    ("cancel", "CANCELLATION_NOT_ALLOWED", 403, H),
    ("cancel", "ORDER_CANCELLATION_FAILED", 422, H),
    ("cancel", "ORDER_ALREADY_CANCELED", 409, H),
    ("cancel", "TOO_MANY_REQUESTS", 429, T),
    ("cancel", "UNMAPPED_ERROR", 422, T),
    ("edit", "UNAUTHORIZED", 401, H),
    ("edit", "INTERNAL_SERVER_ERROR", 500, T),
    ("edit", "INVALID_DATA", 400, H),
    ("edit", "VALIDATION_ERROR", 400, H),
    ("edit", "NOT_FOUND", 404, H),
    ("edit", "NO_PROVIDER_ASSIGNED", 422, H),
    ("edit", "NO_PROVIDER_MATCHED", 422, H),
    ("edit", "PLACE_ORDER_FAILED", 422, T),
    ("edit", "GEOCODING_FAILED", 422, H),
    ("edit", "TOO_MANY_REQUESTS", 429, T),
    ("edit", "UNMAPPED_ERROR", 422, T),
    ("history", "UNAUTHORIZED", 401, H),
    ("history", "INTERNAL_SERVER_ERROR", 500, T),
    ("retry", "UNAUTHORIZED", 401, H),
    ("retry", "INTERNAL_SERVER_ERROR", 500, T),
    ("retry", "NOT_FOUND", 404, H),
    ("retry", "INVALID_DATA", 422, H),
    ("retry", "INVALID_OPERATION", 409, H),
    ("retry", "NO_PROVIDER_ASSIGNED", 422, H),
    ("retry", "NO_PROVIDER_MATCHED", 422, H),
    ("retry", "PLACE_ORDER_FAILED", 422, T),
    ("retry", "TOO_MANY_REQUESTS", 429, T),
    ("retry", "UNMAPPED_ERROR", 422, T),
]
# The vendor's spellings of the same rows.
VENDOR = [
    ("create", "NO_DSP_MATCHED", 422, H),
    ("cancel", "ORDER_ALREADY_CANCELLED", 409, H),
]

CALLS: dict[str, Callable[[ShippingOrdersClient], Any]] = {
    "create": lambda c: c.create({"orderExternalId": "H1"}),
    "list": lambda c: list(c.orders({"limit": 10})),
    "get": lambda c: c.get("H1"),
    "edit": lambda c: c.edit("H1", {"orderValue": 1}),
    "cancel": lambda c: c.cancel("H1"),
    "history": lambda c: c.history("H1"),
    "retry": lambda c: c.retry("H1"),
}


# The vendor answers these with HTTP 400 (the seed's table: 422); hard either way, by type.
VENDOR_400 = [
    ("create", "INVALID_DATA"),
    ("get", "INVALID_DATA"),
    ("retry", "INVALID_DATA"),
    ("cancel", "ORDER_CANCELLATION_FAILED"),
]


@pytest.fixture(autouse=True)
def seed_shaped(simulator_process: ShippingOrdersSimulator) -> None:
    """The seed's table: whatever shape an earlier test left the shared simulator in."""
    simulator_process.configure(shape="seed", error_spelling="seed")


@pytest.fixture
def vendor_shaped(simulator_process: ShippingOrdersSimulator) -> Iterator[ShippingOrdersSimulator]:
    simulator_process.configure(shape="vendor", error_spelling="vendor")
    yield simulator_process
    simulator_process.configure(shape="seed", error_spelling="seed")


@pytest.fixture(scope="module")
def client(simulator_process: ShippingOrdersSimulator) -> ShippingOrdersClient:
    return ShippingOrdersClient(
        simulator_process.url, Account(SecretStr(API_KEY), TENANT), (2.0, 5.0)
    )


@pytest.mark.parametrize(("route", "kind", "status", "severity"), TABLE + VENDOR)
def test_each_row_is_classified_by_its_type_and_severity(
    simulator_process: ShippingOrdersSimulator,
    client: ShippingOrdersClient,
    route: str,
    kind: str,
    status: int,
    severity: str,
) -> None:
    sim = simulator_process
    sim.control("POST", "reset")
    sim.fault(route, "error", type=kind)
    with pytest.raises(ProviderError) as caught:
        CALLS[route](client)
    error = caught.value
    assert isinstance(error, TransientError if severity == T else HardError), error
    assert (error.status, error.code) == (status, kind)
    assert error.reasons and error.reasons != [error.subject]  # the provider's own words


def test_a_wrong_key_and_a_missing_key_are_the_two_auth_failures(
    simulator_process: ShippingOrdersSimulator,
) -> None:
    wrong = ShippingOrdersClient(
        simulator_process.url, Account(SecretStr("not-the-key"), TENANT), (2.0, 5.0)
    )
    with pytest.raises(HardError) as caught:
        wrong.get("H1")
    assert (caught.value.status, caught.value.code) == (401, "UNAUTHORIZED")
    assert "Invalid Api Key!" in str(caught.value)
    assert "not-the-key" not in str(caught.value)

    missing = ShippingOrdersClient(
        simulator_process.url, Account(SecretStr(""), TENANT), (2.0, 5.0)
    )
    with pytest.raises(HardError) as caught:
        missing.get("H1")
    assert (caught.value.status, caught.value.code) == (403, "FORBIDDEN")
    assert "check api_key and tenant_id" in str(caught.value)


def test_a_delivery_providers_refusal_keeps_its_name_and_words(
    simulator_process: ShippingOrdersSimulator, client: ShippingOrdersClient
) -> None:
    """Cancelling an order on its way: the API's 422 carries the courier's own refusal."""
    simulator_process.control("POST", "reset")
    body = create_body(ShipmentReady.model_validate(ready_message()["payload"]), LOCATION)
    number = client.create(body)["orderExternalId"]
    simulator_process.advance(number, "IN_TRANSIT")
    with pytest.raises(HardError) as caught:
        client.cancel(number)
    assert caught.value.code == "ORDER_CANCELLATION_FAILED"
    text = str(caught.value)
    assert "NON_CANCELABLE_DELIVERY" in text and ": " in text


@pytest.mark.parametrize(("route", "kind"), VENDOR_400)
def test_the_vendors_400s_are_hard_errors_by_their_type(
    vendor_shaped: ShippingOrdersSimulator, client: ShippingOrdersClient, route: str, kind: str
) -> None:
    vendor_shaped.control("POST", "reset")
    vendor_shaped.fault(route, "error", type=kind)
    with pytest.raises(HardError) as caught:
        CALLS[route](client)
    assert (caught.value.status, caught.value.code) == (400, kind)
    assert caught.value.reasons


def test_the_vendors_cancellation_refusal_keeps_the_providers_words(
    vendor_shaped: ShippingOrdersSimulator, client: ShippingOrdersClient
) -> None:
    vendor_shaped.control("POST", "reset")
    body = create_body(ShipmentReady.model_validate(ready_message()["payload"]), LOCATION)
    number = client.create(body)["orderExternalId"]
    vendor_shaped.advance(number, "IN_TRANSIT")
    with pytest.raises(HardError) as caught:
        client.cancel(number)
    assert (caught.value.status, caught.value.code) == (400, "ORDER_CANCELLATION_FAILED")
    assert "DSP failed to cancel order" in str(caught.value)
    assert "NON_CANCELABLE_DELIVERY" in str(caught.value)
