"""ecomdash burst benchmark: N confirmations of one account posted at once, coalesced into few
``submitTrackingInfo`` calls within ecomdash's limits.

    python -m benchmarks.ecomdash_burst [--messages 500] [--batch-size 100] [--window 0.5]
                                        [--threads 120] [--call-seconds 0.05]

Runs the real pieces on loopback (redis-server, gunicorn, one Celery worker of ``--threads``
threads, the ecomdash simulator), posts every confirmation concurrently without waiting for
answers, waits until each message is answered, and reports the calls made, the records per
call, the time taken and the most calls at once the simulator saw. A batch gathers in Redis,
not in waiting threads, so ``--threads`` does not bound it (``python -m benchmarks.waiting``
measures it with the default 16 threads).
"""

from __future__ import annotations

import argparse
import re
import time

from tests.ecomdash.conftest import (
    EcomdashSimulator,
    confirm_message,
    ecomdash_env,
    ecomdash_stack,
    post_all,
    wait_finished,
)
from tests.pipeline.conftest import HUB_STORE, HUB_TOKEN
from tests.support.servers import HubServer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--window", type=float, default=0.5)
    parser.add_argument("--threads", type=int, default=120)
    parser.add_argument("--call-seconds", type=float, default=0.05)
    args = parser.parse_args()

    sim, hub = EcomdashSimulator(), HubServer(HUB_TOKEN, HUB_STORE)
    try:
        sim.configure(call_seconds=args.call_seconds)
        env = ecomdash_env(
            sim,
            hub,
            ECOMDASH_BATCH_SIZE=str(args.batch_size),
            ECOMDASH_BATCH_WINDOW_SECONDS=str(args.window),
        )
        with ecomdash_stack(env, threads=args.threads) as stack:
            first = 900000
            sim.add_shipments(first, args.messages)
            bodies = [confirm_message(first + i) for i in range(args.messages)]
            started = time.monotonic()
            post_all(stack, bodies)
            posted = time.monotonic() - started
            found = wait_finished(stack, [b["message_id"] for b in bodies], timeout=600)
            took = time.monotonic() - started
            stats = sim.stats()
            sizes = re.findall(r"one call for (\d+) records", stack.services["worker"].output())
    finally:
        sim.stop()
        hub.close()
    succeeded = sum(1 for s in found.values() if s == "succeeded")
    print(f"messages           {args.messages} ({succeeded} succeeded)")
    print(f"posted in          {posted:.1f} s")
    print(f"all answered in    {took:.1f} s")
    print(f"calls              {stats['calls']} (by status {stats['answered']})")
    print(f"records per call   {', '.join(sizes)}")
    print(f"max concurrency    {stats['max_concurrency']}")
    print(f"records held       {stats['records']}")


if __name__ == "__main__":
    main()
