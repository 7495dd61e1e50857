"""Big polls: a Dotcom poll of many shipped releases and a Duoplane poll of many shipments,
each through the real pieces (redis-server, the receiver, one Celery worker, the provider's
simulator, a hub receiving the pushed answer), measured for wall time, the worker's memory and
Redis memory.

    python -m benchmarks.polls [--releases 100000] [--shipments 10000] [--skip dotcom duoplane]

The worker's memory growth is its peak RSS (``VmHWM``) at the end less its RSS before the poll:
a poll streamed end to end (the provider's document read as a stream, the answer stored ahead
in batches and pushed in parts) grows by about one batch, whatever the poll's size.
``benchmarks.floors`` runs the same rows as its phase 5.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from tests.support.servers import HubServer, _HubHandler
from tests.support.simulators import SimulatorProcess
from tests.support.stack import ROOT, RedisServer, Stack, wait_until
from worker.store.schema import OUTBOX

HUB_TOKEN, HUB_STORE = "polls-hub-token", "polls-store"
DOTCOM_ENV = {
    "SHIPHUB_INTEGRATION_MODULES": "",
    "DOTCOM_API_KEY": "demo-api-key",
    "DOTCOM_PASSWORD": "demo-password",
    "DOTCOM_SHIPPING_LOOKUP": '[{"Standard": "03"}]',
    "DOTCOM_POLL_LAG_SECONDS": "1",
}
DUOPLANE_KEY, DUOPLANE_PASSWORD = "bench-dp-key", "bench-dp-password"
# A poll of this size takes minutes: the time limit of a production deployment that runs them.
TIME_LIMIT = {"TASK_TIME_LIMIT_SECONDS": "1800", "BROKER_VISIBILITY_TIMEOUT_SECONDS": "3600"}
MIB = 1024


@dataclass(frozen=True)
class PollFigures:
    name: str
    count: int
    prepared_seconds: float
    status: str
    handled_seconds: float
    pushed_seconds: float
    parts: int
    largest_part: int
    rss_before_kib: int
    rss_peak_kib: int
    redis_bytes: int

    def rows(self) -> list[str]:
        growth = (self.rss_peak_kib - self.rss_before_kib) / MIB
        return [
            f"{self.name + ', wall time':<34} {self.handled_seconds:8.1f} s   status {self.status}"
            f"   pushed by {self.pushed_seconds:.1f} s in {self.parts} part(s) of up to "
            f"{self.largest_part // 1024} KiB   (prepared in {self.prepared_seconds:.0f} s)",
            f"{'  worker RSS':<34} {self.rss_before_kib / MIB:8.0f} MiB before   peak "
            f"{self.rss_peak_kib / MIB:.0f} MiB   growth {growth:.0f} MiB (bound: 100)",
            f"{'  Redis per confirmation':<34} {self.redis_bytes / self.count:8.0f} bytes "
            "(what it keeps, and the answer in the record until its TTL)",
        ]


class _KeepAliveHubHandler(_HubHandler):
    protocol_version = "HTTP/1.1"  # every reply has a Content-Length: connections are kept
    # http.server writes a reply's headers and its body in two sends: on a kept connection,
    # Nagle's algorithm holds the body until the client's delayed ACK (40 ms on Linux).
    disable_nagle_algorithm = True


def keep_alive(hub: HubServer) -> HubServer:
    """The test hub, keeping its connections open as a real hub (behind any web server) does:
    the HTTP/1.0 default would make every push open a TCP connection, a cost of the test hub."""
    hub.httpd.RequestHandlerClass = _KeepAliveHubHandler
    return hub


def rss_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in KiB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = int(value.split()[0])
    return found


def measure_poll(
    name: str,
    count: int,
    sim: SimulatorProcess,
    env: dict[str, str],
    prepare: Callable[[], None],
    message: dict[str, Any],
    path: str,
    integration: str,
) -> PollFigures:
    """Prepare the provider, then post one poll to a fresh stack with one worker and measure
    it until its answer has reached the hub."""
    server = RedisServer().start()
    hub = keep_alive(HubServer(HUB_TOKEN, HUB_STORE))
    stack = Stack(
        server,
        {
            **env,
            **TIME_LIMIT,
            "HUB_PUSH_URL": f"{hub.url}/push",
            "HUB_ACCESS_TOKEN": HUB_TOKEN,
            "HUB_STORE": HUB_STORE,
        },
    )
    client = server.client()
    started = time.monotonic()
    prepare()
    prepared = time.monotonic() - started
    try:
        stack.start_web()
        worker = stack.start_worker(f"worker-{integration}", "threads", 16)
        time.sleep(2)
        before = rss_kib(worker.process.pid)
        memory_before = int(client.info("memory")["used_memory"])
        started = time.monotonic()
        stack.post(path, message).raise_for_status()
        record = stack.wait_status(
            integration, message["message_id"], "succeeded", "failed", "dead", timeout=3600
        )
        handled = time.monotonic() - started
        wait_until(lambda: client.zcard(OUTBOX) == 0, timeout=1200, every=0.1)
        pushed = time.monotonic() - started
        after = rss_kib(worker.process.pid)
        memory_after = int(client.info("memory")["used_memory"])
    finally:
        stack.stop()
        hub.close()
        server.stop()
    return PollFigures(
        name=name,
        count=count,
        prepared_seconds=prepared,
        status=record["status"],
        handled_seconds=handled,
        pushed_seconds=pushed,
        parts=len(hub.pushes),
        largest_part=max((p["size"] for p in hub.pushes), default=0),
        rss_before_kib=before["VmRSS"],
        rss_peak_kib=after["VmHWM"],
        redis_bytes=memory_after - memory_before,
    )


# --------------------------------------------------------------------------------------------
# Dotcom: one XML document of every release shipped in the window


def inject_releases(sim: SimulatorProcess, count: int, shipped_at: datetime) -> None:
    """``count`` shipped releases (one item each) into the simulator, 8 clients at a time."""
    session = requests.Session()
    session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=8))
    run = uuid.uuid4().hex[:4].upper()

    def inject(i: int) -> None:
        release = {
            "client_order_number": f"P{run}{i:07d}",
            "release": "01",
            "ship_datetime": shipped_at.isoformat(),
            "items": [{"sku": "9011CC", "quantity_shipped": 1}],
        }
        response = session.post(f"{sim.url}/_sim/shipments", json=release, timeout=30)
        response.raise_for_status()

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(inject, range(count)))


def dotcom_poll(count: int) -> PollFigures:
    sim = SimulatorProcess("simulators.dotcom", {})
    now = datetime.now(UTC)
    body = json.loads((ROOT / "tests/fixtures/dotcom/shipment_results_poll.json").read_text())
    body["message_id"] = f"poll-{uuid.uuid4().hex[:12]}"
    cursor = (now - timedelta(hours=3)).strftime("%Y-%m-%d %H:%M:%S +0000")
    body["payload"]["parameters"] = [{"name": "dotcom.last_polling_datetime", "value": cursor}]
    try:
        return measure_poll(
            f"Dotcom poll of {count} releases",
            count,
            sim,
            {**DOTCOM_ENV, "DOTCOM_API_URL": f"{sim.url}/dcd_api_test/DCDAPIService.svc"},
            lambda: inject_releases(sim, count, now - timedelta(hours=1)),
            body,
            "/dotcom/tracking",
            "dotcom",
        )
    finally:
        sim.stop()


# --------------------------------------------------------------------------------------------
# Duoplane: pages of 250 shipments, paced by its leaky bucket (40 requests, 2 a second)


def duoplane_poll(count: int) -> PollFigures:
    sim = SimulatorProcess(
        "simulators.duoplane", {"DUOPLANE_SIM_ACCOUNTS": f"{DUOPLANE_KEY}:{DUOPLANE_PASSWORD}"}
    )
    updated = datetime.now(UTC) - timedelta(hours=1)
    body = {
        "message_id": f"poll-{uuid.uuid4().hex[:12]}",
        "message": "duoplane:shipment_results:poll",
        "payload": {
            "parameters": [
                {
                    "name": "duoplane.last_polling_datetime",
                    "value": (updated - timedelta(hours=1)).isoformat(),
                }
            ]
        },
    }

    def prepare() -> None:
        for first in range(0, count, 10_000):
            sim.control(
                "POST",
                "shipments",
                {"count": min(10_000, count - first), "updated_at": updated.isoformat()},
            )

    try:
        return measure_poll(
            f"Duoplane poll of {count} shipments",
            count,
            sim,
            {
                "SHIPHUB_INTEGRATION_MODULES": "",
                "DUOPLANE_API_URL": sim.url,
                "DUOPLANE_API_KEY": DUOPLANE_KEY,
                "DUOPLANE_PASSWORD": DUOPLANE_PASSWORD,
            },
            prepare,
            body,
            "/duoplane/tracking",
            "duoplane",
        )
    finally:
        sim.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--releases", type=int, default=100_000, help="Dotcom (100000)")
    parser.add_argument("--shipments", type=int, default=10_000, help="Duoplane (10000)")
    parser.add_argument("--skip", nargs="*", default=[], choices=("dotcom", "duoplane"))
    args = parser.parse_args()
    rows: list[str] = []
    if "dotcom" not in args.skip:
        rows += dotcom_poll(args.releases).rows()
        print("\n".join(rows), flush=True)
    if "duoplane" not in args.skip:
        found = duoplane_poll(args.shipments).rows()
        print("\n".join(found), flush=True)
        rows += found
    print("\n" + "=" * 100 + "\n" + "\n".join(rows))


if __name__ == "__main__":
    main()
