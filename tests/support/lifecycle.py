"""A message through a record's whole life, straight on the store (no HTTP, no worker): what the
memory test and benchmark run many thousands of times."""

from __future__ import annotations

import time
import uuid

from tests.support.records import accept, mark_published
from worker.store.bundle import Store
from worker.store.schema import Keep


def live_once(db: Store, keep: list[Keep], store: str = "shop") -> str:
    """Accept, publish, begin and finish one message that keeps ``keep``; returns its id."""
    message_id = uuid.uuid4().hex
    fields = {"message": "shipment:ready", "store": store, "body": '{"payload": {}}'}
    accept(db, "dotcom", message_id, "digest", fields)
    mark_published(db, "dotcom", message_id, time.time())
    lease = uuid.uuid4().hex
    db.attempts.begin("dotcom", message_id, lease)
    db.attempts.finish(
        "dotcom",
        message_id,
        "succeeded",
        {"message_id": message_id, "notifications": [{"level": "info", "subject": "Sent"}]},
        error=None,
        cursor={"last_polling_datetime": "2026-11-23 03:15:21 -0500"},
        push=False,
        keep=keep,
        lease_token=lease,
    )
    return message_id
