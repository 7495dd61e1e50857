"""What the benchmarks send and how they drive the stack: the hub's Dotcom message as the hub
sends it (its parameters included), a backlog of them posted through the receiver, the
Procfile's command lines as production runs them. Shared by ``benchmarks.floors``,
``benchmarks.intake`` and ``benchmarks.flower``."""

from __future__ import annotations

import json
import re
import shlex
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

from tests.support.stack import ROOT, Stack

SAMPLE = json.loads((ROOT / "tests" / "fixtures" / "dotcom" / "shipment_ready.json").read_text())
# What the hub sends with every Dotcom message: the account's configuration as parameters,
# prefixed (docs/http.md#parameters, docs/integrations/dotcom.md), sealed at intake: the
# simulator's demo account and a shipping lookup of six methods.
HUB_PARAMETERS = [
    {"name": "dotcom.api_key", "value": "demo-api-key"},
    {"name": "dotcom.password", "value": "demo-password"},
    {
        "name": "dotcom.shipping_lookup",
        "value": [
            {"Standard": "03"},
            {"UPS Ground (USD)": "03"},
            {"UPS 2nd Day Air (USD)": "02"},
            {"UPS Next Day Air (USD)": "01"},
            {"USPS Priority Mail (USD)": "P1"},
            {"FedEx Ground (USD)": "F1"},
        ],
    },
]
PATH = "/dotcom/send_shipment"
HUB_TOKEN, HUB_STORE = "floors-hub-token", "floors-store"
DOTCOM_ENV = {
    "SHIPHUB_INTEGRATION_MODULES": "",
    "DOTCOM_API_KEY": "demo-api-key",
    "DOTCOM_PASSWORD": "demo-password",
    "DOTCOM_SHIPPING_LOOKUP": '[{"Standard": "03"}]',
    "TASK_TIME_LIMIT_SECONDS": "60",
    "BROKER_VISIBILITY_TIMEOUT_SECONDS": "300",
    "RETRY_MAX_SECONDS": "5",
    "HUB_PUSH_RETRY_MAX_SECONDS": "5",
}


def hub_body() -> dict[str, Any]:
    """The seed's shipment:ready sample as the hub sends it: with its parameters."""
    body = json.loads(json.dumps(SAMPLE))
    body["payload"]["parameters"] = json.loads(json.dumps(HUB_PARAMETERS))
    return body


def message(number: str) -> str:
    body = hub_body()
    body["message_id"] = uuid.uuid4().hex[:24]
    body["payload"]["shipment"]["number"] = number
    return json.dumps(body)


def post_backlog(stack: Stack, count: int) -> list[str]:
    """``count`` new messages through the receiver (8 clients); a 503 is retried after a second,
    as the hub retries it, and what each 503 said is returned (the caller shows it)."""
    session = requests.Session()
    session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=8))
    run = uuid.uuid4().hex[:6].upper()
    headers = {**stack.headers(), "Content-Type": "application/json"}
    refused: list[str] = []

    def post(i: int) -> None:
        body = message(f"H{run}{i:06d}")
        for _ in range(10):
            response = session.post(f"{stack.url}{PATH}", data=body, headers=headers, timeout=30)
            if response.status_code != 503:
                break
            refused.append(response.text)
            time.sleep(1)
        if not response.ok:
            raise RuntimeError(f"the receiver answered {response.status_code}: {response.text}")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(post, range(count)))
    return refused


def refusals_line(refused: list[str]) -> str | None:
    if not refused:
        return None
    return f"  !!!!! the receiver answered 503 {len(refused)} time(s), retried; first: {refused[0]}"


def unfinished(stack: Stack) -> int:
    metrics = requests.get(f"{stack.url}/metrics", timeout=10).text
    line = next(x for x in metrics.splitlines() if x.startswith("shiphub_unfinished_messages "))
    return int(float(line.split()[1]))


def procfile_words(name: str, env: dict[str, str]) -> list[str]:
    """The Procfile's ``name`` line, its ``${NAME:-default}`` expanded from ``env`` as the shell
    expands it, split into words."""
    line = next(
        x.split(":", 1)[1]
        for x in (ROOT / "Procfile").read_text().splitlines()
        if x.split(":", 1)[0] == name
    )
    expanded = re.sub(
        r"\$\{(\w+):-([^}]*)\}", lambda m: env.get(m.group(1)) or m.group(2), line.strip()
    )
    return shlex.split(expanded)


def timed(stack: Stack, family: str) -> tuple[float, int]:
    """A duration histogram's (sum, count) across its labels, from the receiver's ``/metrics``
    (the workers' own timings, kept in Redis): e.g. ``shiphub_handler_duration_seconds``."""
    metrics = requests.get(f"{stack.url}/metrics", timeout=10).text
    total, count = 0.0, 0
    for line in metrics.splitlines():
        name, _, value = line.rpartition(" ")
        if name.startswith(f"{family}_sum"):
            total += float(value)
        elif name.startswith(f"{family}_count"):
            count += int(float(value))
    return total, count
