"""Hub fields that must not reach a provider, refused by the real gunicorn receiver naming the
field, nothing recorded: a NUL, another control character or a bidirectional control in any
text of a payload (400); a provider id that is a boolean, or text other than ASCII digits
(422, as any field that fails its schema). Parameters are not free text: a credential with a
control character is refused where it is used, naming it."""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any

import pytest
import requests

from tests.support.stack import ROOT, Stack

SAMPLE = json.loads((ROOT / "tests" / "fixtures" / "dotcom" / "shipment_ready.json").read_text())


def shipment_ready(**changes: Any) -> dict[str, Any]:
    """The seed's shipment:ready, a fresh id, ``changes`` set by dotted path."""
    body = copy.deepcopy(SAMPLE)
    body["message_id"] = f"fields-{uuid.uuid4().hex[:12]}"
    for path, value in changes.items():
        *parents, last = path.split(".")
        node = body["payload"]
        for step in parents:
            node = node[int(step)] if isinstance(node, list) else node[step]
        node[int(last) if isinstance(node, list) else last] = value
    return body


def confirmation(integration: str, **shipment: Any) -> dict[str, Any]:
    ids = {
        "duoplane": {"duoplane_purchase_order_id": 987654},
        "ecomdash": {"ecomdash_shipment_id": 20405},
    }[integration]
    item = {"duoplane": {"duoplane_order_item_id": 5}, "ecomdash": {}}[integration]
    return {
        "message_id": f"fields-{uuid.uuid4().hex[:12]}",
        "message": "shipment:confirm",
        "payload": {
            "shipment": {
                "number": "H1",
                "tracking": "1Z999",
                "carrier": "UPS",
                "items": [{"sku": "A", "quantity": 1, **item}],
                **ids,
                **shipment,
            }
        },
    }


def post(stack: Stack, path: str, body: dict[str, Any] | bytes) -> requests.Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return requests.post(
        f"{stack.url}{path}",
        data=data,
        headers={**stack.headers(), "Content-Type": "application/json"},
        timeout=30,
    )


def recorded(stack: Stack, integration: str, message_id: str) -> bool:
    found = requests.get(
        f"{stack.url}/messages/{integration}/{message_id}", headers=stack.headers(), timeout=10
    )
    return found.status_code == 200


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (
            {"shipment.shipping_address.address1": "4 Elm\u0000 St"},
            "shipment.shipping_address.address1 has a control character U+0000",
        ),
        (
            {"shipment.items.0.name": "Mug \u202egpj.exe"},
            "shipment.items.0.name has a bidirectional control U+202E",
        ),
        (
            {"shipment.shipping_address.lastname": "Doe\u200f"},
            "shipment.shipping_address.lastname has a bidirectional",
        ),
        (
            {"shipment.email": "a\u001bb@example.com"},
            "shipment.email has a control character U+001B",
        ),
        (
            {"shipment.shipping_method": "UPS \u2066Ground"},
            "shipment.shipping_method has a bidirectional control U+2066",
        ),
    ],
)
def test_control_and_bidirectional_characters_are_refused_naming_the_field(
    stack: Stack, change: dict[str, Any], named: str
) -> None:
    body = shipment_ready(**change)

    for raw in (json.dumps(body).encode(), json.dumps(body, ensure_ascii=False).encode()):
        refused = post(stack, "/dotcom/send_shipment", raw)

        assert refused.status_code == 400, refused.text
        (note,) = refused.json()["notifications"]
        assert f"payload.{named}" in note["description"], note
        assert not recorded(stack, "dotcom", body["message_id"])


def test_a_list_of_text_is_looked_at_item_by_item(stack: Stack) -> None:
    body = confirmation("duoplane", carrier=None, carriers=["UPS", "Fed\u202eEx"])

    refused = post(stack, "/duoplane/send_tracking", body)

    assert refused.status_code == 400, refused.text
    (note,) = refused.json()["notifications"]
    assert "payload.shipment.carriers.1 has a bidirectional control U+202E" in note["description"]
    assert not recorded(stack, "duoplane", body["message_id"])


def test_keys_no_handler_reads_are_not_looked_at(stack: Stack) -> None:
    body = shipment_ready(**{"shipment.gift_note": "\u202e"})

    assert post(stack, "/dotcom/send_shipment", body).status_code == 200


def test_tabs_and_line_breaks_in_text_are_taken(stack: Stack) -> None:
    body = shipment_ready(**{"shipment.shipping_address.address2": "Suite 4\n\tBack door"})

    taken = post(stack, "/dotcom/send_shipment", body)

    assert taken.status_code == 200, taken.text
    assert taken.json()["status"] == "queued"


@pytest.mark.parametrize(
    ("integration", "field", "value"),
    [
        ("duoplane", "duoplane_purchase_order_id", True),
        ("duoplane", "duoplane_purchase_order_id", " 987654 "),
        ("ecomdash", "ecomdash_shipment_id", "\u0662\u0660\u0664\u0660\u0665"),  # Arabic-Indic
        ("ecomdash", "ecomdash_shipment_id", " 20405 "),
        ("ecomdash", "ecomdash_shipment_id", "1e5"),
        ("ecomdash", "ecomdash_shipment_id", True),
    ],
)
def test_a_provider_id_that_is_not_ascii_digits_is_refused_naming_it(
    stack: Stack, integration: str, field: str, value: Any
) -> None:
    body = confirmation(integration, **{field: value})

    refused = post(stack, f"/{integration}/send_tracking", body)

    assert refused.status_code == 422, refused.text
    descriptions = [n["description"] for n in refused.json()["notifications"]]
    assert any(d.startswith(f"payload.shipment.{field}: ") for d in descriptions), descriptions
    assert not recorded(stack, integration, body["message_id"])
