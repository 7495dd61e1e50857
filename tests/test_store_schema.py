"""The store's one schema: every Lua script is filled from it (a name it does not declare stops
the load), names no record field or status of its own, and a replay deletes exactly what a run's
outcome and its delivery (the outbox) write."""

from __future__ import annotations

import re

import pytest

from tests.support.records import accept
from worker.store import scripts
from worker.store.bundle import Store
from worker.store.schema import (
    BATCH_OUTCOME_RETRY,
    DELIVERY_FIELDS,
    FINISHED,
    OUTCOME_FIELDS,
    BatchState,
    BucketField,
    DeliveryStatus,
    Enqueued,
    MessageStatus,
    RecordField,
    record_key,
)

OUTBOX_SCRIPTS = ("claim", "take", "part_delivered", "delivered", "failed", "redeliver")
# The commands that write a hash field, with the field names that follow them.
WRITES = re.compile(r"'(HSET|HSETNX|HINCRBY|HDEL)',\s*[^,]+,\s*(.*?)\)\s*$", re.M | re.S)


def raw(name: str) -> str:
    return (scripts.LUA / f"{name}.lua").read_text()


@pytest.mark.parametrize("name", sorted(scripts.SOURCES))
def test_every_script_is_filled_and_says_its_keys_and_arguments(name: str) -> None:
    text = scripts.source(name)
    assert "{{" not in text and "}}" not in text
    for part in scripts.SOURCES[name]:
        head = raw(part).splitlines()[0]
        assert head.startswith(f"-- {part}"), f"{part}.lua starts by naming itself"
    if name != "listing":
        own = raw(scripts.SOURCES[name][-1])
        assert "-- KEYS:" in own and ("-- ARGV" in own), f"{name}.lua names its KEYS and ARGV"


def test_no_store_runs_lua_of_its_own() -> None:
    """Every script is a file of ``lua/``, filled from the schema and run through ``Scripts``:
    no store evaluates Lua text of its own."""
    for path in sorted(scripts.LUA.parent.glob("*.py")):
        text = path.read_text()
        assert ".eval(" not in text and "redis.call(" not in text, f"{path.name} runs inline Lua"


def test_a_name_the_schema_does_not_declare_stops_the_load() -> None:
    with pytest.raises(scripts.UnknownPlaceholder, match=r"field\.statuss"):
        scripts.fill("redis.call('HGET', KEYS[1], {{field.statuss}})", "typo.lua")


def test_the_finished_set_is_the_schemas() -> None:
    filled = scripts.fill("{{FINISHED}}")
    assert sorted(re.findall(r"\['(\w+)'\]", filled)) == sorted(FINISHED)


def test_no_script_spells_a_field_or_a_status_itself() -> None:
    named = {f.value for f in RecordField} | {s.value for s in MessageStatus}
    named |= {d.value for d in DeliveryStatus} | {b.value for b in BucketField}
    named |= {b.value for b in BatchState} | {e.value for e in Enqueued} | {BATCH_OUTCOME_RETRY}
    for path in sorted(scripts.LUA.glob("*.lua")):
        code = "\n".join(
            line.split("--")[0] for line in path.read_text().splitlines()
        )  # comments may name them
        spelled = set(re.findall(r"'([a-z_]+)'", code)) & named
        assert not spelled, f"{path.name} spells {spelled} instead of naming the schema's"


def outbox_writes() -> set[str]:
    """The record fields the outbox's scripts write (and ``finish`` sets pending)."""
    written: set[str] = set()
    for name in OUTBOX_SCRIPTS:
        for _, args in WRITES.findall(raw(name)):
            written |= set(re.findall(r"\{\{field\.(\w+)\}\}", args))
    return written


def test_the_outbox_writes_only_delivery_fields() -> None:
    written = outbox_writes()
    assert len(written) > 5, "the pattern finds the outbox's writes"
    assert written <= {f.value for f in DELIVERY_FIELDS}


def test_a_replay_deletes_what_the_run_and_its_delivery_wrote(db: Store) -> None:
    fields = {"integration": "acme", "message_id": "m", "message": "order:ready", "body": "{}"}
    accept(db, "acme", "m", "digest", fields)
    key = record_key("acme", "m")
    written = {*OUTCOME_FIELDS, *outbox_writes(), RecordField.DELIVERY}
    db.redis.hset(key, mapping=dict.fromkeys(written, "x"))
    db.redis.hset(key, RecordField.STATUS, MessageStatus.FAILED)
    assert db.messages.requeue("acme", "m") is not None
    left = db.redis.hgetall(key)
    assert not set(left) & written
    assert left[RecordField.STATUS] == MessageStatus.QUEUED
    assert left[RecordField.EARLIER_ERROR] == "x"  # the run's error is history, not lost
    assert {"fingerprint", "body", "message"} <= set(left)
