"""Intake against its floors, in interleaved rounds: the receiver rows of ``benchmarks.floors``
measured round after round, each round running (b) one round trip, (c) the naive floor and
(d) shiphub's intake of new messages one after the other, so that a machine whose load drifts
during the run moves every row alike. It prints each round's ratios and their medians.

    python -m benchmarks.intake [--rounds 5] [--seconds 10] [--connections 50] [--replica]

Every row gets the hub's own ``shipment:ready`` message, its parameters included
(``benchmarks.hub_messages``: the account's api_key, password and shipping lookup, which the
intake seals), and the run ends with what sealing them costs per message, measured alone.

The target (issues 11 and 23): new messages at >= 0.8 of one round trip, p99 no worse than the
naive floor's. With ``--replica`` Redis gets a replica and each round also runs (w), shiphub
answering only once the replica has the record (``REDIS_MIN_REPLICAS_ACKED=1``): what that
setting costs.
Every app is served by the Procfile's own ``web`` line; wrk drives it with
``benchmarks/wrk/messages.lua`` (a unique message id and shipment number per request).
"""

from __future__ import annotations

import argparse
import os
import statistics
from dataclasses import dataclass

from benchmarks.floors import (
    DOTCOM_ENV,
    PATH,
    Load,
    load_line,
    machine,
    require_wrk,
    sealing_line,
    template_file,
    warm_and_measure,
    web,
)
from tests.sentinel.nodes import RedisNode
from tests.support.stack import RedisServer, Stack, wait_until

Row = tuple[str, str]
ROWS: tuple[Row, ...] = (
    ("(b) one round trip", "benchmarks.floor_apps:one_round_trip"),
    ("(c) naive floor", "benchmarks.floor_apps:naive"),
    ("(d) shiphub, new messages", "endpoint.wsgi:app"),
)


WAITING_ROW = ("(w) shiphub, WAIT for 1 replica", "endpoint.wsgi:app")


@dataclass(frozen=True)
class Round:
    b: Load
    c: Load
    d: Load
    w: Load | None = None  # with --replica: (d) answering only once the replica has the record

    def line(self, number: int) -> str:
        b, c, d, w = self.b, self.c, self.d, self.w
        return (
            f"round {number}: (d) {d.rate:6.0f} req/s   (d)/(b) {d.rate / b.rate:.2f}   "
            f"(d)/(c) {d.rate / c.rate:.2f}   p99 (d) {d.p99_ms:.1f} ms vs (c) {c.p99_ms:.1f} ms"
            f"   CPU/request (b) {b.cpu_us:.0f} (d) {d.cpu_us:.0f} us"
            + (f"   (w)/(d) {w.rate / d.rate:.2f}, p99 (w) {w.p99_ms:.1f} ms" if w else "")
        )


def measured(stack: Stack, server: RedisServer, args: argparse.Namespace, row: Row) -> Load:
    name, spec = row
    url, template = f"{stack.url}{PATH}", template_file()
    with web(stack, spec, name.split()[0].strip("()")) as service:
        load = warm_and_measure(service, server.client(), url, template, args)
    print(load_line(name, load), flush=True)
    return load


def measure(
    rounds: int = 5,
    seconds: float = 10,
    warmup: float = 3,
    connections: int = 50,
    replica: bool = False,
) -> list[Round]:
    """``rounds`` rounds of (b), (c) and (d) (and (w) with ``replica``), each line printed as
    it comes."""
    require_wrk()
    args = argparse.Namespace(seconds=seconds, warmup=warmup, connections=connections)
    server = RedisServer().start()
    node = RedisNode("--replicaof", "127.0.0.1", str(server.port)).start() if replica else None
    env = {**DOTCOM_ENV, "DOTCOM_API_URL": "http://127.0.0.1:9/unused"}
    stack = Stack(server, env)
    waiting = Stack(server, {**env, "REDIS_MIN_REPLICAS_ACKED": "1"}) if node else None
    found: list[Round] = []
    try:
        if node is not None:
            wait_until(lambda: node.client().info("replication")["master_link_status"] == "up")
        print(machine(server) + (", one replica" if node else ""), flush=True)
        for number in range(1, rounds + 1):
            found.append(one_round(stack, waiting, server, args))
            print(found[-1].line(number), flush=True)
            server.client().flushall()  # each round starts from an empty Redis
    finally:
        for running in (stack, waiting, node, server):
            if running is not None:
                running.stop()
    return found


def ratio(rounds: list[Round]) -> float:
    """The median of (d)/(b) over the rounds: new messages as a fraction of one round trip."""
    return statistics.median(r.d.rate / r.b.rate for r in rounds)


def cpu_ratio(rounds: list[Round]) -> float:
    """The median of (b)/(d)'s receiver CPU per request: the ratio a receiver bound by its own
    CPU reaches."""
    return statistics.median((r.b.cpu_us or 0) / (r.d.cpu_us or 1) for r in rounds)


def one_round(
    stack: Stack, waiting: Stack | None, server: RedisServer, args: argparse.Namespace
) -> Round:
    loads = [measured(stack, server, args, row) for row in ROWS]
    if waiting is not None:
        loads.append(measured(waiting, server, args, WAITING_ROW))
    return Round(*loads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument(
        "--replica",
        action="store_true",
        help="Redis gets a replica, and each round also runs (w): (d) with "
        "REDIS_MIN_REPLICAS_ACKED=1 (a 200 only once the replica has the record)",
    )
    args = parser.parse_args()
    rounds = measure(args.rounds, args.seconds, args.warmup, args.connections, args.replica)
    replica = args.replica
    median = statistics.median
    print("\n" + "=" * 100)
    for number, found in enumerate(rounds, start=1):
        print(found.line(number))
    print(
        f"medians over {len(rounds)} rounds: (b) {median(r.b.rate for r in rounds):.0f}  "
        f"(c) {median(r.c.rate for r in rounds):.0f}  (d) {median(r.d.rate for r in rounds):.0f}"
        f" req/s;  (d)/(b) {median(r.d.rate / r.b.rate for r in rounds):.2f}  "
        f"(d)/(c) {median(r.d.rate / r.c.rate for r in rounds):.2f};  p99 (d) "
        f"{median(r.d.p99_ms for r in rounds):.1f} ms, (c) {median(r.c.p99_ms for r in rounds):.1f}"
        f" ms, (b) {median(r.b.p99_ms for r in rounds):.1f} ms;  receiver CPU per request (b) "
        f"{median(r.b.cpu_us or 0 for r in rounds):.0f} us, (d) "
        f"{median(r.d.cpu_us or 0 for r in rounds):.0f} us"
    )
    # On a machine other work keeps busy, a row's rate is the share of the cores it was given;
    # the CPU a request costs the receiver moves far less: the rate a receiver bound by its own
    # CPU reaches, against (b)'s, is the ratio of their CPU per request.
    print(
        f"receiver CPU per request (b)/(d), the ratio a receiver bound by its CPU reaches: "
        f"{median((r.b.cpu_us or 0) / (r.d.cpu_us or 1) for r in rounds):.2f} (rounds: "
        + ", ".join(f"{(r.b.cpu_us or 0) / (r.d.cpu_us or 1):.2f}" for r in rounds)
        + f");  load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    d_cpu = median(r.d.cpu_us or 0 for r in rounds)
    print(sealing_line(Load(0, 1, 0, 0, {}, [], d_cpu)))
    if replica:
        print(
            f"with WAIT for 1 replica: (w) {median(r.w.rate for r in rounds if r.w):.0f} req/s;  "
            f"(w)/(d) {median(r.w.rate / r.d.rate for r in rounds if r.w):.2f};  p99 (w) "
            f"{median(r.w.p99_ms for r in rounds if r.w):.1f} ms"
        )


if __name__ == "__main__":
    main()
