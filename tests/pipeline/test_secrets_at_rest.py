"""Credentials a message carries are never in Redis, nor in its append-only file, in clear; they
are kept sealed while the message may still run (a retry, a replay) and gone once it succeeded
(real processes)."""

from __future__ import annotations

from pathlib import Path

import requests

from tests.pipeline.conftest import stack_env
from tests.pipeline.test_pipeline import order_message
from tests.support.servers import HubServer, ProviderServer
from tests.support.stack import RedisServer, serving, wait_until

SECRET = ProviderServer.API_KEY  # the only copy the worker gets is the one in the message


def with_key(body: dict, key: str) -> dict:
    body["payload"]["parameters"] = [{"name": "acme.api_key", "value": key}]
    return body


def everything_in(redis_server: RedisServer) -> str:
    """Every value in Redis (read by type: DUMP may compress), and every append-only file."""
    client = redis_server.client()
    readers = {
        "string": client.get,
        "hash": lambda key: client.hgetall(key),
        "list": lambda key: client.lrange(key, 0, -1),
        "set": client.smembers,
        "zset": lambda key: client.zrange(key, 0, -1, withscores=True),
    }
    values = [
        repr(readers[kind](key))
        for key in client.scan_iter("*")
        if (kind := client.type(key)) in readers
    ]
    files = [
        path.read_bytes().decode("latin-1")
        for path in Path(redis_server.dir).rglob("*")
        if path.is_file()
    ]
    return "\n".join(values + files)


def test_credentials_in_a_message_are_sealed_while_stored_and_gone_once_it_succeeds(
    provider: ProviderServer, hub: HubServer
) -> None:
    body = with_key(order_message(), SECRET)
    number = body["payload"]["order"]["number"]
    provider.held.clear()
    provider.release.clear()
    provider.script(number, {"hold": True})
    with serving(None, {**stack_env(provider, hub), "ACME_API_KEY": None}) as stack:
        assert stack.post("/acme/send_order", body).status_code == 200
        assert provider.held.wait(20)  # the handler has read it and is using it right now

        assert SECRET not in everything_in(stack.redis)

        provider.release.set()
        stack.wait_status("acme", body["message_id"], "succeeded")
        assert SECRET not in everything_in(stack.redis)
        fields = stack.redis.client().hgetall(f"shiphub:msg:acme:{body['message_id']}")
        assert "parameters" not in fields  # nothing secret outlives the message
        assert "acme.api_key" not in fields["body"]


def test_a_failed_messages_credentials_stay_sealed_for_its_replay(
    provider: ProviderServer, hub: HubServer
) -> None:
    body = with_key(order_message(), SECRET)
    number = body["payload"]["order"]["number"]
    provider.script(number, {"status": 422, "errors": ["Out of stock"]})
    with serving(None, {**stack_env(provider, hub), "ACME_API_KEY": None}) as stack:
        assert stack.post("/acme/send_order", body, wait=20).status_code == 500
        fields = stack.redis.client().hgetall(f"shiphub:msg:acme:{body['message_id']}")
        assert fields["parameters"].startswith("aead:")  # kept for a replay, sealed
        assert SECRET not in everything_in(stack.redis)

        replay = requests.post(
            f"{stack.url}/messages/acme/{body['message_id']}/replay",
            headers=stack.headers(),
            timeout=10,
        )

        assert replay.status_code == 200
        record = wait_until(
            lambda: (r := stack.record("acme", body["message_id"]))["status"] == "succeeded" and r
        )
        assert record["replays"] == 1  # with the key it carried: the stack has none
        assert SECRET not in everything_in(stack.redis)
        fields = stack.redis.client().hgetall(f"shiphub:msg:acme:{body['message_id']}")
        assert "parameters" not in fields  # succeeded: nothing secret stays
