"""``shiphub failed``: failed and dead (and retrying) messages by state, integration and store, a
page at a time, as the console script against the real stack and the Dotcom simulator."""

from __future__ import annotations

import shlex
from pathlib import Path

from tests.cli.conftest import Shiphub
from tests.cli.test_messages import message_file
from tests.dotcom.conftest import DotcomSimulator, shipment_message


def send(shiphub: Shiphub, tmp_path: Path, store: str, **shipment: str) -> str:
    body = shipment_message(**shipment)
    path = message_file(tmp_path, body, f"{body['message_id']}.json")
    sent = shiphub("send", str(path), "--to", "dotcom", "--store", store, "--wait", "60")
    assert sent.code == 1, sent  # every message here fails
    return body["message_id"]


def test_failed_and_dead_messages_of_a_store_are_listed_page_by_page(
    shiphub: Shiphub, sim: DotcomSimulator, store: str, tmp_path: Path
) -> None:
    refused = [send(shiphub, tmp_path, store, shipping_method="Teleport") for _ in range(2)]
    sim.fault("http_500", "order", count=3)  # every attempt (TASK_MAX_ATTEMPTS=3) fails
    dead = send(shiphub, tmp_path, store, shipping_method="Standard")
    sim.reset()

    listed = shiphub("failed", "--store", store)

    assert listed.code == 0, listed
    lines = listed.out.splitlines()
    rows = [line for line in lines if not line.startswith(" ")]
    assert [row.split("  ")[:3] for row in rows] == [
        ["dead", "dotcom", dead],
        ["failed", "dotcom", refused[1]],
        ["failed", "dotcom", refused[0]],
    ]
    assert f"store {store}" in rows[0] and "attempts 3" in rows[0]
    dead_error = lines[lines.index(rows[0]) + 1]
    assert dead_error.startswith("    last error: ") and "HTTP 500" in dead_error
    refused_error = lines[lines.index(rows[1]) + 1]
    assert "Teleport" in refused_error

    only_failed = shiphub("failed", "--store", store, "--status", "failed", "--json")
    first = shiphub("failed", "--store", store, "--limit", "2", "--integration", "dotcom")

    assert only_failed.code == 0, only_failed
    answer = only_failed.json()
    assert [row["message_id"] for row in answer["messages"]] == [refused[1], refused[0]]
    assert answer["next_cursor"] is None
    assert first.code == 0, first
    *shown, more = first.out.splitlines()
    assert more.startswith("more: shiphub failed ")
    assert [row.split("  ")[2] for row in shown if not row.startswith(" ")] == [dead, refused[1]]
    following = shiphub(*shlex.split(more.removeprefix("more: shiphub ")))
    assert following.code == 0, following
    assert [row.split("  ")[2] for row in following.out.splitlines() if row[:1] != " "] == [
        refused[0]
    ]

    # Replayed, a message is no longer among what failed.
    assert shiphub("replay", "dotcom", dead).code == 0
    assert dead not in shiphub("failed", "--store", store).out


def test_nothing_failed_and_wrong_filters(shiphub: Shiphub, store: str) -> None:
    empty = shiphub("failed", "--store", store, "--status", "retrying")
    unknown = shiphub("failed", "--integration", "nope")
    bad_store = shiphub("failed", "--store", "a:b")
    bad_status = shiphub("failed", "--status", "lost")

    assert (empty.code, empty.out) == (0, f"no retrying messages in store {store}\n")
    assert unknown.code == 1 and "No integration 'nope'" in unknown.err, unknown
    assert bad_store.code == 2 and "--store" in bad_store.err, bad_store
    assert bad_status.code == 2 and "--status" in bad_status.err, bad_status
