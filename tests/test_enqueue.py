"""The intake's broker message is the one ``send_task`` would have pushed.

Celery publishes through kombu's Redis transport onto a real redis-server; the intake's accept
script pushes the message ``worker.tasks.enqueue`` built onto the same list. Decoded, the two are
the same but for what is new for every message (task id, root id, correlation id, delivery tag)."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.stack import RedisServer
from worker.integrations import registry
from worker.integrations.registry import Handler
from worker.pipeline import runtime
from worker.store.bundle import Store
from worker.tasks.enqueue import Envelopes
from worker.tasks.enqueue import _number as enqueue_number
from worker.tasks.enqueue import _string as enqueue_string
from worker.tasks.enqueue import uuid as enqueue_uuid

FRESH_HEADERS = ("id", "root_id")
FRESH_PROPERTIES = ("correlation_id", "delivery_tag")


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def broker(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A redis-server the service's Celery app publishes to, as records and broker share one."""
    from worker.tasks.app import app as celery_app

    before = celery_app.conf.broker_url
    celery_app.conf.broker_url = redis_server.url
    try:
        yield runtime.redis_client(redis_server.url)
    finally:
        celery_app.pool.force_close_all()
        celery_app.conf.broker_url = before


def handlers() -> list[Handler]:
    """Every message task of the built-in integrations (each with its own queue)."""
    registry.load()
    return [h for i in registry.integrations().values() for h in i.handlers()]


def decoded(raw: str) -> dict[str, Any]:
    """A broker message as a worker reads it, without what is fresh for every message."""
    message = json.loads(raw)
    for name in FRESH_HEADERS:
        message["headers"].pop(name)
    for name in FRESH_PROPERTIES:
        message["properties"].pop(name)
    message["body"] = json.loads(base64.b64decode(message["body"]))
    return message


def sent_by_celery(client: redis.Redis, handler: Handler, message_id: str, at: float) -> str:
    from worker.tasks.app import publish

    publish(handler, message_id, at)
    raw = client.rpop(handler.queue)
    assert raw is not None and client.llen(handler.queue) == 0
    return raw


def pushed_by_intake(
    client: redis.Redis, envelopes: Envelopes, handler: Handler, message_id: str, at: float
) -> str:
    envelope = envelopes.build(handler, message_id, at)
    fields = {"message": handler.message, "service": handler.service, "body": "{}"}
    received = Store.on(client).messages.receive(
        handler.integration, message_id, "digest", fields, envelope, at
    )
    assert received.outcome == "created"
    raw = client.rpop(handler.queue)
    assert raw is not None and client.llen(handler.queue) == 0
    return raw


@pytest.mark.parametrize("prefix", ["m-1", "ümlaut 'quoted' \"twice\"", "x" * 1100])
def test_the_pushed_message_is_what_send_task_pushes(broker: redis.Redis, prefix: str) -> None:
    """For every message task, with message ids plain, quoted and long (Celery shortens the
    ``argsrepr`` of long arguments)."""
    from worker.tasks.app import app as celery_app

    envelopes = Envelopes(celery_app)
    at = time.time()
    for handler in handlers():
        message_id = f"{prefix} {handler.message}"
        expected = decoded(sent_by_celery(broker, handler, message_id, at))
        found = decoded(pushed_by_intake(broker, envelopes, handler, message_id, at))

        assert found == expected, handler.task_name
        assert found["headers"]["task"] == handler.task_name
        assert found["headers"]["shiphub_message"] == f"{handler.integration}:{message_id}"
        assert found["headers"]["shiphub_queued_at"] == at
        assert found["properties"]["delivery_info"] == {
            "exchange": "",
            "routing_key": handler.queue,
        }
        assert found["body"][0] == [handler.integration, message_id]


def test_each_message_gets_its_own_task_id_and_delivery_tag() -> None:
    from worker.tasks.app import app as celery_app

    envelopes = Envelopes(celery_app)
    handler = handlers()[0]
    first, second = (json.loads(envelopes.build(handler, "m", 1.0).message) for _ in range(2))

    assert first["headers"]["id"] != second["headers"]["id"]
    assert first["headers"]["root_id"] == first["headers"]["id"]
    assert first["properties"]["correlation_id"] == first["headers"]["id"]
    assert first["properties"]["delivery_tag"] != second["properties"]["delivery_tag"]
    assert envelopes.build(handler, "m", 1.0).queue_key == handler.queue


def test_ids_are_random_uuids_as_kombu_writes_them() -> None:
    made = [enqueue_uuid() for _ in range(2000)]

    for text in made:
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant, str(parsed)) == (4, uuid.RFC_4122, text)
    assert len(set(made)) == len(made)
    # every digit that is not the version's or the variant's is drawn: each takes all 16 values
    free = [i for i in range(36) if i not in (8, 13, 14, 18, 19, 23)]
    assert all(len({text[i] for text in made}) == 16 for i in free)
    assert {text[19] for text in made} == set("89ab")


@settings(max_examples=500, deadline=None)
@given(text=st.text(), stamp=st.floats() | st.integers())
def test_strings_and_stamps_are_written_as_the_standard_encoder_writes_them(
    text: str, stamp: float
) -> None:
    """The envelope's strings and its time stamp are the very text ``json.dumps`` (kombu's)
    would write: any Unicode (escaped to ASCII), quotes, backslashes; floats, whole numbers,
    and the non-finite ones the encoder writes as NaN and Infinity."""
    assert enqueue_string(text) == json.dumps(text)
    assert enqueue_number(stamp) == json.dumps(stamp)
