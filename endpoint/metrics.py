"""``GET /metrics``: what an operator pages on, in Prometheus's text format."""

from __future__ import annotations

from endpoint import replies
from worker.records import Records


def render(records: Records) -> str:
    return replies.prometheus(records.stats(), records.sizes())
