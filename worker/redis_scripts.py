"""Lua scripts, registered and loaded together per concern.

All of a concern's scripts are loaded on first use, so EVALSHA never meets NOSCRIPT on the fakeredis
TCP server (``bin/run``'s fallback), which answers NOSCRIPT by hanging up. After a real Redis
restart, redis-py reloads a script by itself.

Some scripts touch record keys derived from a member name rather than passed in KEYS: fine on
the single Redis this service runs on, not on Redis Cluster.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis
from redis.exceptions import NoScriptError


class Scripts:
    def __init__(self, client: redis.Redis, **sources: str) -> None:
        self.client = client
        self._scripts = {name: client.register_script(source) for name, source in sources.items()}
        self._loaded = False

    def run(self, name: str, keys: list[str], args: list[Any]) -> Any:
        self._load()
        return self._scripts[name](keys=keys, args=args)

    def run_all(self, name: str, calls: Sequence[tuple[list[str], list[Any]]]) -> list[Any]:
        """Run one script once per ``(keys, args)`` in one round trip (a pipeline, not a
        transaction: each run is atomic on its own), and return each run's reply in order.

        A Redis that lost its scripts (restarted) answers NOSCRIPT and runs nothing: the scripts
        are loaded again and the runs it refused sent once more."""
        if len(calls) == 1:  # a pipeline costs more than a call, for the same round trip
            return [self.run(name, *calls[0])]
        self._load()
        replies = self._send(name, calls)
        refused = [i for i, r in enumerate(replies) if isinstance(r, NoScriptError)]
        if refused:
            self._loaded = False
            self._load()
            again = self._send(name, [calls[i] for i in refused])
            for i, reply in zip(refused, again, strict=True):
                replies[i] = reply
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies

    def _send(self, name: str, calls: Sequence[tuple[list[str], list[Any]]]) -> list[Any]:
        sha = self._scripts[name].sha
        with self.client.pipeline(transaction=False) as pipe:
            for keys, args in calls:
                pipe.evalsha(sha, len(keys), *keys, *args)
            return pipe.execute(raise_on_error=False)

    def _load(self) -> None:
        if not self._loaded:
            with self.client.pipeline(transaction=False) as pipe:
                for script in self._scripts.values():
                    pipe.script_load(script.script)
                pipe.execute()
            self._loaded = True
