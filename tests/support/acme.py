"""A test-only integration ("acme"), loaded by the tests through SHIPHUB_INTEGRATION_MODULES.

It talks over real HTTP to ``tests.support.servers.ProviderServer``, which counts effects. It
never ships in the product.
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import BaseModel, Field

from worker.basics.errors import HardError
from worker.hub.messages import Answer
from worker.integrations import http as provider_http
from worker.integrations import registry
from worker.integrations.job import Job
from worker.integrations.registry import Integration, Requirement, Schedule


class Order(BaseModel):
    number: str = Field(min_length=1, max_length=20)
    quantity: int = Field(1, ge=1)


class OrderReady(BaseModel):
    order: Order


class Empty(BaseModel):
    pass


def _config() -> dict[str, Any]:
    return {"api_key": os.environ.get("ACME_API_KEY"), "api_url": os.environ.get("ACME_API_URL")}


acme = registry.register(Integration("acme", "Acme (test)", "Test-only provider", config=_config))
REFUSED = "Acme refused the order"
_session = provider_http.pooled_session()


def _reasons(response: Any) -> list[str]:
    return [str(e) for e in response.json().get("errors", [])]


@acme.service(
    "send_order",
    message="order:ready",
    payload=OrderReady,
    requires=[Requirement("api_key", "Acme API key")],
)
def send_order(job: Job[OrderReady]) -> Answer:
    """Create an order at Acme."""
    order = job.payload.order
    sends = {"number": order.number, "quantity": order.quantity}

    def create(key: str) -> dict[str, Any]:
        try:
            response = provider_http.call(
                _session,
                "Acme",
                "POST",
                f"{job.param('api_url')}/orders",
                json=sends,
                headers={"Idempotency-Key": key, "X-Api-Key": job.param("api_key")},
                reasons=_reasons,
            )
        except HardError as exc:
            if exc.status != 409:
                raise
            return {"was_there": job.already_there("sent", order.number, sends, REFUSED)}
        return response.json()

    created = job.once("create_order", create, sends=sends)
    job.keep_sent("sent", order.number, sends)
    if created.get("was_there", "").startswith("already sent"):
        return job.answer().notify("info", "Order already sent to Acme", created["was_there"])
    return job.answer().notify("info", "Order sent to Acme", f"Acme order {created.get('id')}")


@acme.service(
    "tracking",
    message="acme:shipments:poll",
    payload=Empty,
    requires=[
        Requirement("api_key", "Acme API key"),
        Requirement("since", "Cursor: last shipment id seen", cursor=True),
    ],
    schedule=Schedule(1, "hours"),
)
def poll_shipments(job: Job[Empty]) -> Answer:
    """Poll shipped orders after the cursor."""
    since = int(job.parameters.get("since") or 0)
    response = provider_http.call(
        _session,
        "Acme",
        "GET",
        f"{job.param('api_url')}/shipments",
        params={"since": since},
        headers={"X-Api-Key": job.param("api_key")},
        reasons=_reasons,
    )
    answer = job.answer()
    shipments = response.json()
    for shipment in shipments:
        answer.add_message(
            "shipment:confirm",
            {"shipment": {"number": shipment["number"], "tracking": shipment["tracking"]}},
        )
    last = max([since, *(s["id"] for s in shipments)])
    answer.add_parameter("since", last)
    return answer.notify("info", "Polled Acme", f"{len(shipments)} shipment(s)")
