"""Task routing: one queue per integration, so a slow provider cannot starve the others."""

from __future__ import annotations

from typing import Any

from worker.integrations import registry


def route(name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **kw: Any) -> dict:
    prefix = name.partition(".")[0]
    return {"queue": prefix if prefix in registry.integrations() else registry.HUB_QUEUE}
