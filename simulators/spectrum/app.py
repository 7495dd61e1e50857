"""The Spectrum simulator over HTTP: the API route, control routes, app and CLI.

Werkzeug's development server drops every header whose name has an underscore (as nginx and
gunicorn do by default), so ``SPECTRUM_API_TOKEN`` would never reach the app, and a dashed
``SPECTRUM-API-TOKEN`` would look the same in the WSGI environ (``HTTP_SPECTRUM_API_TOKEN``).
The server here keeps the raw header lines in the environ (``RAW_HEADERS``) and the simulator
reads the token only from there, by its exact name.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.serving import WSGIRequestHandler, run_simple

from simulators.kit import json_body, register_control_routes
from simulators.spectrum.config import SimulatorConfig, config_from_env
from simulators.spectrum.simulator import ROUTE, Reply, SpectrumSimulator

EXTENSION = "spectrum_simulator"
DEFAULT_PORT = 8104
RAW_HEADERS = "spectrum_simulator.raw_headers"
PATH = "/api/order/ship-notification"
LOST_ANSWER_PAGE = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"
)


class RawHeadersRequestHandler(WSGIRequestHandler):
    """Werkzeug's handler, with the request's header lines as sent (names unchanged)."""

    def make_environ(self) -> dict[str, Any]:
        environ = super().make_environ()
        environ[RAW_HEADERS] = list(self.headers.items())
        return environ


def reply(answer: Reply) -> Response:
    response = jsonify(answer.body)
    response.status_code = answer.status
    return response


def request_body() -> Any:
    """The JSON body (any JSON value); None when it is empty or does not parse."""
    return request.get_json(silent=True, force=True)


def ship_notification(sim: SpectrumSimulator) -> Response:
    """Throttle and authenticate, apply a queued fault, then take the notification.

    Faults act on admitted requests: ``http_500`` answers the seed's 500 without updating;
    ``forbidden`` answers 403 as throttling would; ``slow`` sleeps then processes;
    ``lost_answer`` processes (the update is made) and answers a 502 HTML page."""
    refused = sim.admit(request.environ.get(RAW_HEADERS))
    if refused is not None:
        return reply(refused)
    body = request_body()
    fault = sim.faults.take(ROUTE)
    if fault is not None:
        if fault.kind == "http_500":
            po = body.get("purchaseOrderNumber") if isinstance(body, dict) else None
            return reply(sim.internal_error(po))
        if fault.kind == "forbidden":
            return reply(sim.throttled_by_fault())
        if fault.kind == "slow":
            time.sleep(fault.delay_seconds)
    answer = sim.ship_notification(body)
    if fault is not None and fault.kind == "lost_answer":
        return Response(LOST_ANSWER_PAGE, status=502, mimetype="text/html")
    return reply(answer)


def register_api_routes(app: Flask, sim: SpectrumSimulator) -> None:
    @app.post(PATH)
    @app.post(f"{PATH}/")  # the real API takes a trailing slash too
    def post_ship_notification() -> Response:
        return ship_notification(sim)


def register_spectrum_control_routes(app: Flask, sim: SpectrumSimulator) -> None:
    """The kit's ``/_sim/`` routes plus orders, notifications and request counts."""
    register_control_routes(app, sim)

    @app.get("/_sim/orders")
    def sim_orders() -> Response:
        return jsonify(sim.orders_report())

    @app.post("/_sim/orders")
    def sim_add_order() -> tuple[Response, int]:
        return jsonify(sim.add_order(json_body())), 201

    @app.get("/_sim/notifications")
    def sim_notifications() -> Response:
        return jsonify(sim.notifications_report(request.args.get("purchaseOrderNumber")))

    @app.get("/_sim/requests")
    def sim_requests() -> Response:
        return jsonify(sim.requests_report())


def create_app(config: SimulatorConfig | None = None) -> Flask:
    """The simulator as a Flask app; ``app.extensions["spectrum_simulator"]`` is its state."""
    sim = SpectrumSimulator(config)
    app = Flask(__name__)
    app.json.sort_keys = False  # type: ignore[attr-defined]  # keep the documents' field order
    app.extensions[EXTENSION] = sim
    register_api_routes(app, sim)
    register_spectrum_control_routes(app, sim)
    return app


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m simulators.spectrum [--host 127.0.0.1] [--port 8104]``: the kit's command
    line, served with the handler that keeps raw header names."""
    parser = argparse.ArgumentParser(description="Spectrum simulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args(argv)
    app = create_app(config_from_env(os.environ))
    run_simple(args.host, args.port, app, threaded=True, request_handler=RawHeadersRequestHandler)
