"""What the console script does when things go wrong, by exit status: a wrong token (1), the
receiver down or failing (3), files that are not hub messages (2), a message the receiver
refuses (1); each with a message that names the problem and no traceback."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.cli.conftest import FIXTURES, Shiphub, run_shiphub
from tests.dotcom.conftest import DotcomSimulator
from tests.support.stack import Stack, free_port

WRONG_TOKEN = "a-wrong-token-0123"


UNAVAILABLE = {
    "notifications": [
        {
            "level": "error",
            "subject": "Service unavailable",
            "description": "Redis is unavailable; retry later",
        }
    ]
}


class _Unavailable(BaseHTTPRequestHandler):
    """A receiver whose Redis is away: every request answers 503 with the receiver's body."""

    def answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        data = json.dumps(UNAVAILABLE).encode()
        self.send_response(503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Retry-After", "5")
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def failing_receiver() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Unavailable)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_wrong_token_is_refused_with_exit_1_and_never_printed(
    shiphub: Shiphub, tmp_path: Path
) -> None:
    wrong = shiphub("dead", env={"ENDPOINT_KEY": WRONG_TOKEN})

    assert wrong.code == 1, wrong
    assert wrong.err.strip() == (
        "Error: listing dead messages: the receiver answered HTTP 401: Unauthorized: Missing or "
        "wrong X-Hub-Token header (the token comes from ENDPOINT_KEY or --token-file)"
    )
    assert WRONG_TOKEN not in wrong.out + wrong.err

    right_file = tmp_path / "token"
    right_file.write_text(Stack.ENDPOINT_KEY + "\n")
    wrong_file = tmp_path / "wrong-token"
    wrong_file.write_text(WRONG_TOKEN)
    from_file = shiphub("--token-file", str(right_file), "dead", env={"ENDPOINT_KEY": WRONG_TOKEN})
    wrong_from_file = shiphub("--token-file", str(wrong_file), "dead", "--json")

    assert from_file.code == 0, from_file  # the file wins over ENDPOINT_KEY
    assert from_file.out.startswith("dead messages: ")
    assert wrong_from_file.code == 1, wrong_from_file
    assert wrong_from_file.out == ""
    assert "HTTP 401" in wrong_from_file.err
    assert WRONG_TOKEN not in wrong_from_file.out + wrong_from_file.err


def test_a_token_an_http_header_cannot_carry_is_a_usage_error_that_does_not_show_it(
    shiphub: Shiphub,
) -> None:
    run = shiphub("dead", env={"ENDPOINT_KEY": f"{WRONG_TOKEN}\nX-Injected: 1"})

    assert run.code == 2, run
    assert "ENDPOINT_KEY has characters an HTTP header cannot carry" in run.err
    assert WRONG_TOKEN not in run.out + run.err


def test_the_receiver_down_is_exit_3(shiphub: Shiphub) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    fixture = str(FIXTURES / "shipment_ready.json")

    for args in (
        ("dead",),
        ("show", "dotcom", "x"),
        ("send", fixture, "--to", "dotcom"),
        ("send", fixture, "--to", "dotcom/send_shipment"),
        ("replay", "--all-dead", "dotcom"),
        ("poll", "dotcom"),
    ):
        run = shiphub(*args, env={"SHIPHUB_URL": down})

        assert run.code == 3, (args, run)
        assert f"Error: cannot reach the receiver at {down}" in run.err
        assert "Traceback" not in run.err


def test_a_receiver_answering_503_is_exit_3(shiphub: Shiphub, failing_receiver: str) -> None:
    fixture = str(FIXTURES / "shipment_ready.json")

    dead = shiphub("dead", env={"SHIPHUB_URL": failing_receiver})
    sent = shiphub(
        "send",
        fixture,
        "--to",
        "dotcom/send_shipment",
        "--json",
        env={"SHIPHUB_URL": failing_receiver},
    )

    assert dead.code == 3, dead
    assert dead.err.strip() == (
        "Error: listing dead messages: the receiver answered HTTP 503: Service unavailable: "
        "Redis is unavailable; retry later"
    )
    assert sent.code == 3, sent
    assert json.loads(sent.out)["notifications"][0]["subject"] == "Service unavailable"


def test_files_that_are_not_hub_messages_are_usage_errors_naming_the_problem(
    shiphub: Shiphub, tmp_path: Path
) -> None:
    verbatim = FIXTURES / "shipment_ready.verbatim.json"  # the seed as printed: a stray ']'
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    untyped = tmp_path / "untyped.json"
    untyped.write_text('{"message_id": "x", "payload": {}}')
    empty = tmp_path / "empty.json"
    empty.write_text("\n")
    cases = {
        str(verbatim): f"{verbatim} is not JSON: Expecting ',' delimiter at line 55 column 7",
        str(listed): f"{listed} holds a JSON list, not a hub message",
        str(untyped): f'{untyped} has no "message" (the message type',
        str(empty): f"{empty} is empty",
        str(tmp_path / "missing.json"): "No such file or directory",
    }

    for path, problem in cases.items():
        run = shiphub("send", path, "--to", "dotcom")

        assert run.code == 2, (path, run)
        assert problem in run.err, (path, run.err)
        assert "Traceback" not in run.err
        assert run.out == ""


def test_blank_names_and_malformed_options_are_usage_errors(shiphub: Shiphub) -> None:
    fixture = str(FIXTURES / "shipment_ready.json")
    cases = {
        ("show", "dotcom", " "): "Invalid value for 'MESSAGE_ID': is empty",
        ("replay", "", "--all-dead"): "Invalid value for 'INTEGRATION': is empty",
        ("send", fixture, "--to", "dotcom/"): "'dotcom/' is not INTEGRATION/SERVICE",
        ("send", fixture, "--to", "dotcom", "--store", "a:b"): "'--store': has a ':'",
        ("replay", "dotcom", "x", "--all-dead"): "give MESSAGE_ID, or --all-dead",
        ("--url", "localhost:8000", "dead"): "'--url': must be an http(s) URL",
    }

    for args, problem in cases.items():
        run = shiphub(*args)

        assert run.code == 2, (args, run)
        assert problem in run.err, (args, run.err)


def test_a_message_the_receiver_refuses_is_exit_1_with_every_reason(
    shiphub: Shiphub, sim: DotcomSimulator
) -> None:
    body = {"message_id": "cli-refused", "message": "shipment:ready", "payload": {"shipment": {}}}

    run = shiphub("send", "-", "--to", "dotcom", input=json.dumps(body))

    assert run.code == 1, run
    lines = run.err.splitlines()
    assert lines[0] == ("Error: sending to dotcom/send_shipment: the receiver answered HTTP 422:")
    assert "  Invalid payload.shipment.number: payload.shipment.number: Field required" in lines
    assert "  Invalid payload.shipment.items: payload.shipment.items: Field required" in lines

    unknown = shiphub("show", "dotcom", "no-such-message")
    assert unknown.code == 1, unknown
    assert "HTTP 404: Unknown message: No message 'no-such-message' for 'dotcom'" in unknown.err


@pytest.mark.pipeline  # starts a process of its own
def test_help_documents_every_command_and_the_exit_statuses() -> None:
    run = run_shiphub("--help")

    assert run.code == 0, run
    for command in ("send", "show", "dead", "replay", "poll", "check"):
        assert f"\n  {command} " in run.out
    for status in ("0  done", "1  the service answered no", "2  usage error", "3  the receiver"):
        assert status in run.out
    assert "ENDPOINT_KEY" in run.out and "SHIPHUB_URL" in run.out
