"""Lua scripts, registered and loaded together per concern.

All of a concern's scripts are loaded on first use, so EVALSHA never meets NOSCRIPT on the fakeredis
TCP server (``bin/run``'s fallback), which answers NOSCRIPT by hanging up. After a real Redis
restart, redis-py reloads a script by itself.

Some scripts touch record keys derived from a member name rather than passed in KEYS: fine on
the single Redis this service runs on, not on Redis Cluster.
"""

from __future__ import annotations

from typing import Any

import redis


class Scripts:
    def __init__(self, client: redis.Redis, **sources: str) -> None:
        self.client = client
        self._scripts = {name: client.register_script(source) for name, source in sources.items()}
        self._loaded = False

    def run(self, name: str, keys: list[str], args: list[Any]) -> Any:
        self._load()
        return self._scripts[name](keys=keys, args=args)

    def _load(self) -> None:
        if not self._loaded:
            with self.client.pipeline(transaction=False) as pipe:
                for script in self._scripts.values():
                    pipe.script_load(script.script)
                pipe.execute()
            self._loaded = True
