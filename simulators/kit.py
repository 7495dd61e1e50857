"""What every provider simulator shares: a fault queue, the ``/_sim/`` control routes, JSON
bodies of control requests and the command line.

A simulator built on the kit is an object with ``faults`` (a :class:`FaultQueue`) and three
methods, ``reset()``, ``config_report()`` and ``update_config(payload)`` (see :class:`Simulator`);
:func:`register_control_routes` gives it::

    GET  /_sim/health           {"ok": true}
    POST /_sim/reset            {"ok": true}            (the simulator's reset, faults included)
    GET  /_sim/faults           {"faults": [fault, ...]}
    POST /_sim/faults           {"kind": ..., "route": ..., "count": 1, "delay_seconds": ...}
                                -> 201 fault
    GET  /_sim/config           the simulator's settings
    POST /_sim/config           {setting: value, ...} -> the settings after the change

A bad control request (unknown fault kind, malformed setting, body not a JSON object) answers
400 ``{"error": "..."}``: raise :class:`InvalidRequest` anywhere in a control handler.
"""

from __future__ import annotations

import argparse
import io
import itertools
import threading
import traceback
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from flask import Flask, Response, jsonify, request
from werkzeug.serving import WSGIRequestHandler, run_simple

# Keys of a fault request every simulator understands; anything else is an "extra" field.
_FAULT_KEYS = frozenset({"kind", "route", "count", "delay_seconds"})


class InvalidRequest(ValueError):
    """A control request the simulator cannot act on (HTTP 400 ``{"error": ...}``)."""


# --------------------------------------------------------------------------------------------
# Faults


@dataclass
class Fault:
    """One queued fault: ``kind`` for the next ``remaining`` requests to ``route`` (None: any)."""

    kind: str
    route: str | None
    remaining: int = 1
    delay_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "route": self.route,
            "count": self.remaining,
            "delay_seconds": self.delay_seconds,
            **self.extra,
        }


class FaultQueue:
    """Faults queued per route and taken one per request, first queued first; thread-safe.

    ``routes`` and ``kinds`` bound what may be queued; ``default_delays`` gives a kind's delay
    when the request names none; ``extra_fields`` are the further keys kept on a fault (others
    are ignored); ``check`` may refuse a fault (raise InvalidRequest) for simulator rules such as
    "this kind only on that route". With ``route_required`` a fault must name its route,
    otherwise a fault without one applies to whichever route asks first.
    """

    def __init__(
        self,
        routes: Collection[str],
        kinds: Collection[str],
        *,
        route_required: bool = False,
        default_delays: Mapping[str, float] | None = None,
        extra_fields: Collection[str] = (),
        check: Callable[[Fault], None] | None = None,
    ) -> None:
        self.routes = frozenset(routes)
        self.kinds = frozenset(kinds)
        self.route_required = route_required
        self.default_delays = dict(default_delays or {})
        self.extra_fields = frozenset(extra_fields)
        self._check = check
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def parse(self, payload: Mapping[str, Any]) -> Fault:
        """The fault a ``POST /_sim/faults`` body asks for; InvalidRequest when it is wrong."""
        kind = payload.get("kind")
        if kind not in self.kinds:
            raise InvalidRequest(f"kind must be one of {sorted(self.kinds)}")
        route = payload.get("route")
        if route is None and self.route_required:
            raise InvalidRequest(f"route must be one of {sorted(self.routes)}")
        if route is not None and route not in self.routes:
            suffix = "" if self.route_required else " or null"
            raise InvalidRequest(f"route must be one of {sorted(self.routes)}{suffix}")
        count = payload.get("count", 1)
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise InvalidRequest("count must be an integer >= 1")
        delay = (
            non_negative_number(payload, "delay_seconds")
            if "delay_seconds" in payload
            else self.default_delays.get(kind, 0.0)
        )
        extra = {key: payload[key] for key in self.extra_fields if key in payload}
        fault = Fault(kind=kind, route=route, remaining=count, delay_seconds=delay, extra=extra)
        if self._check is not None:
            self._check(fault)
        return fault

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def take(self, route: str) -> Fault | None:
        """The fault for one request to ``route`` (its count goes down by one), or None."""
        with self._lock:
            for fault in self._faults:
                if fault.route in (None, route):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def pending(self) -> list[dict[str, Any]]:
        with self._lock:
            return [fault.to_json() for fault in self._faults]

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()


# --------------------------------------------------------------------------------------------
# Control routes


class Simulator(Protocol):
    """What :func:`register_control_routes` needs from a simulator."""

    faults: FaultQueue

    def reset(self) -> None: ...

    def config_report(self) -> dict[str, Any]: ...

    def update_config(self, payload: Mapping[str, Any]) -> dict[str, Any]: ...


def json_body() -> Mapping[str, Any]:
    """The current request's JSON object; an empty body is ``{}``; InvalidRequest otherwise."""
    payload = request.get_json(silent=True)
    if payload is None and not request.get_data():
        return {}
    if not isinstance(payload, Mapping):
        raise InvalidRequest("the body must be a JSON object")
    return payload


def non_negative_number(payload: Mapping[str, Any], key: str) -> float:
    value = payload[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise InvalidRequest(f"{key} must be a number >= 0")
    return float(value)


def register_control_routes(app: Flask, sim: Simulator) -> None:
    """The ``/_sim/`` routes every simulator has, and the 400 answer for bad control requests."""

    @app.errorhandler(InvalidRequest)
    def bad_control_request(error: InvalidRequest) -> tuple[Response, int]:
        return jsonify({"error": str(error)}), 400

    @app.get("/_sim/health")
    def sim_health() -> Response:
        return jsonify({"ok": True})

    @app.post("/_sim/reset")
    def sim_reset() -> Response:
        sim.reset()
        return jsonify({"ok": True})

    @app.get("/_sim/faults")
    def sim_faults() -> Response:
        return jsonify({"faults": sim.faults.pending()})

    @app.post("/_sim/faults")
    def sim_queue_fault() -> tuple[Response, int]:
        fault = sim.faults.add(sim.faults.parse(json_body()))
        return jsonify(fault.to_json()), 201

    @app.get("/_sim/config")
    def sim_config() -> Response:
        return jsonify(sim.config_report())

    @app.post("/_sim/config")
    def sim_update_config() -> Response:
        return jsonify(sim.update_config(json_body()))


# --------------------------------------------------------------------------------------------
# Command line


def run_cli(
    description: str,
    default_port: int,
    make_app: Callable[[], Flask],
    argv: Sequence[str] | None = None,
) -> None:
    """``--host``/``--port`` from ``argv``, then serve ``make_app()`` (threaded, connections kept
    alive as the real services keep them) until killed."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=default_port)
    args = parser.parse_args(argv)
    run_simple(
        args.host,
        args.port,
        make_app(),
        threaded=True,
        request_handler=KeepAliveHandler,
    )


# --------------------------------------------------------------------------------------------
# Keep-alive: werkzeug's server closes every connection (after a response it reads whatever the
# client sent next, to discard an unread body). A simulator reads each request's body whole
# before its app runs and writes each answer framed (its length, or chunked), so the next
# request on the connection starts where this one ended, as with the real services.


class KeepAliveHandler(WSGIRequestHandler):
    """Werkzeug's handler, keeping HTTP/1.1 connections alive (a chunked request, rare from a
    client, is left to werkzeug, which closes its connection)."""

    def run_wsgi(self) -> None:
        if (
            self.request_version != "HTTP/1.1"
            or "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        ):
            self.close_connection = True
            super().run_wsgi()
            return
        if self.headers.get("Expect", "").lower().strip() == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        environ = self.make_environ()
        length = int(self.headers.get("Content-Length") or 0)
        environ["wsgi.input"] = io.BytesIO(self.rfile.read(length) if length > 0 else b"")
        started: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]], *_: Any) -> Any:
            started[:] = [status, headers]
            return self.wfile.write

        self.headers_sent = False
        try:
            body = self.server.app(environ, start_response)  # type: ignore[attr-defined]
            try:
                self._answer(environ, started, body)
            finally:
                if hasattr(body, "close"):
                    body.close()
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception:
            self.close_connection = True
            if self.headers_sent:
                raise
            self.send_error(500)
            self.server.log("error", "Error on request:\n%s", traceback.format_exc())  # type: ignore[attr-defined]
        self.wfile.flush()

    def _answer(self, environ: dict[str, Any], started: list[Any], body: Any) -> None:
        """Status and headers once the app gave its first chunk, then each chunk: as they are
        when the app said their length, else chunked."""
        chunks = iter(body)
        first = next(chunks, b"")  # the app has called start_response by now
        status, headers = started
        code, _, reason = status.partition(" ")
        framed = any(key.lower() == "content-length" for key, _ in headers)
        framed = framed or int(code) in (204, 304) or environ["REQUEST_METHOD"] == "HEAD"
        self.send_response(int(code), reason)
        for key, value in headers:
            self.send_header(key, value)
        if not framed:
            self.send_header("Transfer-Encoding", "chunked")
        if self.close_connection:  # the client asked to close
            self.send_header("Connection", "close")
        self.end_headers()
        self.headers_sent = True
        for chunk in itertools.chain((first,), chunks):
            if chunk and framed:
                self.wfile.write(chunk)
            elif chunk:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        if not framed:
            self.wfile.write(b"0\r\n\r\n")
