"""Flower's memory after many messages: Flower as the Procfile's ``flower`` line runs it (its
``--max_tasks`` from ``FLOWER_MAX_TASKS``), watching a worker take ``--messages`` hub messages
(Dotcom's ``shipment:ready`` with its parameters, through the receiver) and push their answers.

    python -m benchmarks.flower [--messages 20000] [--unbounded]

Flower keeps every task it hears of (about two per message: its handling and its push) up to
``--max_tasks``; its resident memory is read from ``/proc`` before the messages, then once every
task event has reached it after half the messages and after all of them. With ``--unbounded``,
a second Flower watches the same events with ``--max_tasks=100000`` (Flower's own default, what
the Procfile ran before it set a bound), to compare. The real pieces on loopback: redis-server,
gunicorn, one Celery worker (threads, 16), the Dotcom simulator and a hub that takes the
pushes. Also phase ``flower`` of ``benchmarks.floors``.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass

import requests

from benchmarks.hub_messages import (
    DOTCOM_ENV,
    HUB_STORE,
    HUB_TOKEN,
    post_backlog,
    procfile_words,
    refusals_line,
    unfinished,
)
from benchmarks.polls import keep_alive, rss_kib
from tests.support.servers import HubServer
from tests.support.simulators import SimulatorProcess
from tests.support.stack import RedisServer, Service, Stack, free_port, wait_until
from worker.store.schema import OUTBOX

# Flower's own default for --max_tasks: what the Procfile's flower line kept before it set one.
FLOWER_DEFAULT_MAX_TASKS = 100_000


@dataclass(frozen=True)
class FlowerMemory:
    name: str
    max_tasks: int
    before_mib: float
    half_mib: float  # after the first half of the messages
    after_mib: float
    peak_mib: float
    events: int  # task events Flower counted (its /metrics)

    def row(self, messages: int) -> str:
        return (
            f"{self.name:<34} RSS {self.before_mib:4.0f} MiB before, {self.half_mib:4.0f} after "
            f"{messages // 2}, {self.after_mib:4.0f} after {messages} messages (peak "
            f"{self.peak_mib:.0f}); --max_tasks={self.max_tasks}, {self.events} task events seen"
        )


class Flower:
    """One Flower process started from the Procfile's ``flower`` line."""

    def __init__(self, stack: Stack, name: str, max_tasks: int | None) -> None:
        self.name, self.port = name, free_port()
        env = {**stack.env, "FLOWER_ADDRESS": "127.0.0.1", "FLOWER_PORT": str(self.port)}
        if max_tasks is not None:
            env["FLOWER_MAX_TASKS"] = str(max_tasks)
        words = procfile_words("flower", env)
        assert words[0] == "celery", words
        self.max_tasks = int(next(w for w in words if w.startswith("--max_tasks=")).split("=")[1])
        self.service = Service(name, [sys.executable, "-m", *words], env, stack.log_dir)
        stack.services[name] = self.service
        wait_until(lambda: self.service.running() and self._up(), timeout=60)

    def _up(self) -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{self.port}/healthcheck", timeout=2).ok
        except requests.ConnectionError:
            return False

    def events(self) -> int:
        """Task events Flower has taken in so far (``flower_events_total``, summed)."""
        text = requests.get(f"http://127.0.0.1:{self.port}/metrics", timeout=30).text
        return int(
            sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("flower_events_total{") and 'type="task-' in line
            )
        )

    def memory(self) -> tuple[float, float]:
        """(RSS, peak RSS) in MiB."""
        found = rss_kib(self.service.process.pid)
        return found["VmRSS"] / 1024, found["VmHWM"] / 1024


def settled(flowers: list[Flower], timeout: float = 300) -> list[int]:
    """Wait until no Flower's event count moves for 3 s (every event has reached them)."""
    last: list[int] = []
    steady_since = time.monotonic()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = [f.events() for f in flowers]
        if now != last:
            last, steady_since = now, time.monotonic()
        elif time.monotonic() - steady_since >= 3:
            break
        time.sleep(0.5)
    return last


def measure(messages: int, unbounded: bool = False) -> list[str]:
    """Rows: each Flower's memory before and after ``messages`` messages."""
    flowers, notes = observe(messages, unbounded)
    return [f.row(messages) for f in flowers] + notes


def observe(
    messages: int, unbounded: bool = False, max_tasks: int | None = None
) -> tuple[list[FlowerMemory], list[str]]:
    """Each Flower's memory before and after ``messages`` messages, and notes on the run. The
    Procfile's Flower keeps ``max_tasks`` (``FLOWER_MAX_TASKS``; None: the Procfile's default)."""
    server = RedisServer().start()
    sim = SimulatorProcess("simulators.dotcom", {})
    hub = keep_alive(HubServer(HUB_TOKEN, HUB_STORE))
    stack = Stack(
        server,
        {
            **DOTCOM_ENV,
            "DOTCOM_API_URL": f"{sim.url}/dcd_api_test/DCDAPIService.svc",
            "HUB_PUSH_URL": f"{hub.url}/push",
            "HUB_ACCESS_TOKEN": HUB_TOKEN,
            "HUB_STORE": HUB_STORE,
        },
    )
    try:
        stack.start_web()
        flowers = [Flower(stack, "flower (the Procfile's line)", max_tasks)]
        if unbounded:
            flowers.append(
                Flower(stack, "flower, Flower's default bound", FLOWER_DEFAULT_MAX_TASKS)
            )
        stack.start_worker("worker", "threads", 16)
        settled(flowers)
        before = [f.memory()[0] for f in flowers]
        started = time.monotonic()
        outbox = server.client()
        refused: list[str] = []
        half: list[float] = []
        for count in (messages // 2, messages - messages // 2):
            refused += post_backlog(stack, count)
            wait_until(
                lambda: unfinished(stack) == 0 and outbox.zcard(OUTBOX) == 0,
                timeout=3600,
                every=1,
            )
            events = settled(flowers)
            half = half or [f.memory()[0] for f in flowers]
        took = time.monotonic() - started
        found = []
        for flower, rss, middle, seen in zip(flowers, before, half, events, strict=True):
            after, peak = flower.memory()
            found.append(
                FlowerMemory(flower.name, flower.max_tasks, rss, middle, after, peak, seen)
            )
        notes = [
            f"  ({messages} messages handled and {len(hub.pushes)} answers pushed in {took:.0f} s)"
        ]
        if line := refusals_line(refused):
            notes.append(line)
        return found, notes
    finally:
        stack.stop()
        sim.stop()
        hub.close()
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument(
        "--unbounded",
        action="store_true",
        help=f"a second Flower with --max_tasks={FLOWER_DEFAULT_MAX_TASKS} (Flower's default)",
    )
    args = parser.parse_args()
    for row in measure(args.messages, args.unbounded):
        print(row, flush=True)


if __name__ == "__main__":
    main()
