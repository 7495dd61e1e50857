"""Real HTTP servers the pipeline tests run in-process: a provider that counts its effects, and a
hub that receives pushed answers and checks their signatures."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlparse

from standardwebhooks import Webhook, WebhookVerificationError

from tests.support.stack import Stack


class _Server:
    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.httpd.owner = self  # type: ignore[attr-defined]
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    @property
    def owner(self) -> Any:
        return self.server.owner  # type: ignore[attr-defined]

    def body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def reply(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


class ProviderServer(_Server):
    """Acme, the test provider. ``effects`` counts orders created (one per idempotency key, as a
    provider with idempotency keys does; another key for a number it holds is a 409 "already
    exists"); ``requests`` counts every POST received."""

    API_KEY = "acme-test-key"

    def __init__(self) -> None:
        self.effects: dict[str, dict[str, Any]] = {}
        self.requests: Counter[str] = Counter()
        self.scripts: dict[str, list[dict[str, Any]]] = {}
        self.shipments: list[dict[str, Any]] = []
        self.polled_since: list[int] = []
        self.held = threading.Event()  # set when a "hold" request arrived
        self.release = threading.Event()
        super().__init__(_ProviderHandler)

    def script(self, number: str, *actions: dict[str, Any]) -> None:
        """Answers for the next requests about one order: {"status": 500}, {"hold": True},
        {"delay": 8, "status": 503} (answer after 8 s), {"status": 503, "until": epoch} (the same
        answer to every request until then)..."""
        with self.lock:
            self.scripts[number] = list(actions)

    def next_action(self, number: str) -> dict[str, Any]:
        with self.lock:
            actions = self.scripts.get(number)
            if not actions:
                return {}
            if "until" in actions[0] and time.time() < actions[0]["until"]:
                return actions[0]
            if "until" in actions[0]:
                actions.pop(0)
                return actions.pop(0) if actions else {}
            return actions.pop(0)

    def effects_for(self, number: str) -> int:
        return sum(1 for order in self.effects.values() if order["number"] == number)


class _ProviderHandler(_Handler):
    def do_POST(self) -> None:
        owner: ProviderServer = self.owner
        if self.headers.get("X-Api-Key") != ProviderServer.API_KEY:
            return self.reply(401, {"errors": ["Invalid API key"]})
        order = json.loads(self.body())
        number = order["number"]
        key = self.headers.get("Idempotency-Key", "")
        with owner.lock:
            owner.requests[number] += 1
        action = owner.next_action(number)
        if action.get("delay"):
            time.sleep(action["delay"])
        if "status" in action and action["status"] >= 300:
            headers = {"Retry-After": str(action["retry_after"])} if "retry_after" in action else {}
            return self.reply(
                action["status"], {"errors": action.get("errors", ["failure"])}, headers
            )
        with owner.lock:
            clash = any(o["number"] == number for k, o in owner.effects.items() if k != key)
            if not clash:
                created = owner.effects.setdefault(
                    key, {"id": f"A{len(owner.effects) + 1}", **order}
                )
        if clash:  # one order per number, as a provider's order number is unique
            return self.reply(409, {"errors": [f"Order {number} already exists"]})
        if action.get("hold"):
            owner.held.set()
            owner.release.wait(60)  # the test kills the client meanwhile
        return self.reply(201, created)

    def do_GET(self) -> None:
        owner: ProviderServer = self.owner
        if self.headers.get("X-Api-Key") != ProviderServer.API_KEY:
            return self.reply(401, {"errors": ["Invalid API key"]})
        since = int(parse_qs(urlparse(self.path).query).get("since", ["0"])[0])
        with owner.lock:
            owner.polled_since.append(since)
            found = [s for s in owner.shipments if s["id"] > since]
        return self.reply(200, found)


class HubServer(_Server):
    """The hub, receiving pushed answers. Every push's signatures are checked, the classic
    ``X-Hub-Signature`` and (with ``push_secrets``, the stack's ``HUB_PUSH_SECRET`` by default)
    Standard Webhooks' with the reference library, once per secret the hub knows; a bad one is a
    401 and is recorded in ``bad_signatures``, which fails the test (``tests/conftest.py``).
    ``seen`` keeps the headers of every push, refused ones included; ``pushes`` what each
    accepted push said of itself (store, delivery id, part, size, webhook headers). ``delay``
    makes the hub answer slowly (after it has taken the push, as a slow hub does),
    ``redirect_to`` makes it answer 302, ``script`` gives the next answers to one message's
    pushes (410, 429 with a Retry-After...)."""

    running: ClassVar[list[HubServer]] = []  # whose bad signatures fail the test

    def __init__(
        self, token: str, store: str, push_secrets: tuple[str, ...] = (Stack.PUSH_SECRET,)
    ) -> None:
        self.token = token
        self.store = store  # HUB_STORE: what a message without its own store is pushed with
        self.push_secrets = push_secrets  # none: pushes must carry no webhook-signature
        self.answers: list[dict[str, Any]] = []
        self.pushes: list[dict[str, Any]] = []
        self.seen: list[dict[str, Any]] = []
        self.bad_signatures: list[str] = []
        self.attempts = 0
        self.attempts_by_id: Counter[str] = Counter()
        self.scripts: dict[str, list[tuple[int, dict[str, str]]]] = {}
        self.down = False
        self.delay = 0.0
        self.redirect_to: str | None = None
        super().__init__(_HubHandler)
        HubServer.running.append(self)

    def close(self) -> None:
        super().close()
        HubServer.running.remove(self)

    def script(self, message_id: str, *answers: tuple[int, dict[str, str]]) -> None:
        """Answer the next pushes of ``message_id`` with these (status, headers), in order."""
        with self.lock:
            self.scripts[message_id] = list(answers)

    def seen_of(self, message_id: str) -> list[dict[str, Any]]:
        """Every push of ``message_id`` that reached the hub, taken or not, in order."""
        with self.lock:
            return [p for p in self.seen if p["message_id"] == message_id]

    def received(self, message_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [a for a in self.answers if a.get("message_id") == message_id]

    def pushes_of(self, message_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [p for p in self.pushes if p["message_id"] == message_id]

    def wait_for(self, message_id: str, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if found := self.received(message_id):
                return found[0]
            time.sleep(0.05)
        raise AssertionError(f"no answer for {message_id} reached the hub in {timeout}s")

    def check(self, body: bytes, headers: Any) -> str | None:
        return self._check_classic(body, headers) or self._check_standard(body, headers)

    def _check_standard(self, body: bytes, headers: Any) -> str | None:
        """Standard Webhooks, verified by the reference library with each secret the hub
        knows; without one, the push must carry the id and timestamp and no signature."""
        given = {name.lower(): value for name, value in headers.items()}
        if not given.get("webhook-id") or not given.get("webhook-timestamp"):
            return "no webhook-id or webhook-timestamp"
        if given.get("webhook-timestamp") != given.get("x-hub-timestamp"):
            return "webhook-timestamp is not X-Hub-Timestamp"
        if not self.push_secrets:
            return "a webhook-signature with no secret" if "webhook-signature" in given else None
        for number, secret in enumerate(self.push_secrets, start=1):
            try:
                Webhook(secret).verify(body, given, json_parse=False)
            except WebhookVerificationError as exc:
                return f"webhook-signature does not verify with secret {number}: {exc}"
        return None

    def _check_classic(self, body: bytes, headers: Any) -> str | None:
        ts = headers.get("X-Hub-Timestamp", "")
        expected = (
            "sha256="
            + hmac.new(self.token.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
        )
        if not hmac.compare_digest(headers.get("X-Hub-Signature", ""), expected):
            return "bad X-Hub-Signature"
        if not headers.get("X-Hub-Store"):
            return "no X-Hub-Store"
        if abs(time.time() - int(ts)) > 300:
            return "stale X-Hub-Timestamp"
        return None


class _HubHandler(_Handler):
    def do_POST(self) -> None:
        owner: HubServer = self.owner
        body = self.body()
        message_id = _message_id(body)
        problem = owner.check(body, self.headers)  # every push, whatever the hub answers
        said = {
            "message_id": message_id,
            "store": self.headers.get("X-Hub-Store"),
            "delivery_id": self.headers.get("X-Hub-Delivery-Id"),
            "part": self.headers.get("X-Hub-Delivery-Part"),
            "size": len(body),
            "webhook_id": self.headers.get("webhook-id"),
            "webhook_timestamp": self.headers.get("webhook-timestamp"),
            "webhook_signature": self.headers.get("webhook-signature"),
            "at": time.time(),
        }
        with owner.lock:
            owner.attempts += 1
            owner.attempts_by_id[message_id] += 1
            owner.seen.append(said)
            if problem:
                owner.bad_signatures.append(problem)
                return self.reply(401, {"error": problem})
            scripted = owner.scripts.get(message_id)
            if scripted:
                status, headers = scripted.pop(0)
                return self.reply(status, {"error": f"scripted {status}"}, headers)
            if owner.down:
                return self.reply(503, {"error": "hub is down"})
            if owner.redirect_to:
                return self.reply(302, {"moved": True}, {"Location": owner.redirect_to})
        answer = json.loads(body)
        with owner.lock:
            owner.answers.append(answer)
            owner.pushes.append({**said, "message_id": answer.get("message_id")})
            delay = owner.delay
        time.sleep(delay)
        return self.reply(200, {"ok": True})


def _message_id(body: bytes) -> str:
    try:
        return str(json.loads(body).get("message_id"))
    except (ValueError, AttributeError):
        return ""


class RecordingServer(_Server):
    """Any HTTP service (a provider's real API, a receiver that fails): answers every request
    ``status`` with a JSON ``body`` and records each as ``(method, path)``."""

    def __init__(self, status: int = 200, body: Any = None) -> None:
        self.status = status
        self.answer = {} if body is None else body
        self.requests: list[tuple[str, str]] = []
        super().__init__(_RecordingHandler)

    def seen(self) -> list[tuple[str, str]]:
        with self.lock:
            return list(self.requests)


class _RecordingHandler(_Handler):
    def _any(self) -> None:
        owner: RecordingServer = self.owner
        self.body()
        with owner.lock:
            owner.requests.append((self.command, self.path))
        self.reply(owner.status, owner.answer)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any
