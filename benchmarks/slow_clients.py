"""The receiver under slow clients: how fast /healthz and a new post answer while connections
dawdle over half a request header and requests wait for their answers.

    python -m benchmarks.slow_clients [--dawdlers 1000] [--waiters 500] [--probes 20]

Runs gunicorn as the Procfile does (gevent) on a real redis-server, with no worker (so every
waiting request waits its whole wait), then probes /healthz and posts a new message.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import time

import requests

from tests.pipeline.test_pipeline import order_message
from tests.pipeline.test_slow_clients import connect, waiting_request
from tests.support.stack import RedisServer, Stack


def milliseconds(samples: list[float]) -> str:
    return f"p50 {statistics.median(samples) * 1000:6.1f} ms   max {max(samples) * 1000:6.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dawdlers", type=int, default=1000)
    parser.add_argument("--waiters", type=int, default=500)
    parser.add_argument("--probes", type=int, default=20)
    args = parser.parse_args()
    redis_server = RedisServer().start()
    stack = Stack(redis_server, {"HUB_WAIT_MAX_REQUESTS": str(args.waiters)})
    opened: list[socket.socket] = []
    try:
        stack.start_web()
        for _ in range(args.dawdlers):
            sock = connect(stack)
            sock.sendall(b"POST /acme/send_order HTTP/1.1\r\nHost: shiphub\r\nContent-Le")
            opened.append(sock)
        for _ in range(args.waiters):
            sock = connect(stack)
            sock.sendall(waiting_request(stack))
            opened.append(sock)
        time.sleep(3)
        health, posts = [], []
        for _ in range(args.probes):
            started = time.perf_counter()
            requests.get(f"{stack.url}/healthz", timeout=10).raise_for_status()
            health.append(time.perf_counter() - started)
            started = time.perf_counter()
            stack.post("/acme/send_order", order_message()).raise_for_status()
            posts.append(time.perf_counter() - started)
    finally:
        for sock in opened:
            sock.close()
        stack.stop()
        redis_server.stop()
    print(f"{args.dawdlers} dawdling connections, {args.waiters} waiting requests, gevent worker")
    print(f"GET /healthz           {milliseconds(health)}")
    print(f"POST a new message     {milliseconds(posts)}")


if __name__ == "__main__":
    main()
