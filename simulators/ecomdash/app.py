"""The ecomdash simulator over HTTP: the API route, control routes, app and CLI."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

from flask import Flask, Response, jsonify, request

from simulators.ecomdash.simulator import (
    OOPS,
    ROUTE,
    TOO_MANY_AT_ONCE,
    EcomdashSimulator,
    Refusal,
    SimulatorConfig,
    config_from_env,
)
from simulators.kit import json_body, register_control_routes, run_cli

EXTENSION = "ecomdash_simulator"
DEFAULT_PORT = 8101
LOST_ANSWER_PAGE = "<html><body><h1>502 Bad Gateway</h1></body></html>"


def answer(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    response = jsonify(body)
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def submit_tracking(sim: EcomdashSimulator) -> Response:
    try:
        account_key = sim.admit(
            request.headers.get("Ocp-Apim-Subscription-Key"),
            request.headers.get("ecd-subscription-key"),
        )
    except Refusal as refused:
        if refused.status == 429:
            sim.count(429)
        return answer(refused.status, refused.body, refused.headers)
    status = 500
    try:
        status, response = _served(sim, account_key)
        return response
    finally:
        sim.finish(account_key, status)


def _served(sim: EcomdashSimulator, account_key: str) -> tuple[int, Response]:
    try:
        account = sim.account(account_key)
    except Refusal as refused:
        return refused.status, answer(refused.status, refused.body)
    fault = sim.faults.take(ROUTE)
    extra = sim.config.call_seconds
    if fault is not None:
        if fault.kind == "http_500":
            return 500, answer(500, {"Message": OOPS})
        if fault.kind == "rate_limited":
            wait = str(fault.extra.get("retry_after", 1))
            body = {
                "statusCode": 429,
                "message": f"Rate limit is exceeded. Try again in {wait} seconds.",
            }
            return 429, answer(429, body, {"Retry-After": wait})
        if fault.kind == "concurrency":
            return 429, answer(429, {"Message": TOO_MANY_AT_ONCE})
        if fault.kind == "slow":
            extra += fault.delay_seconds
    time.sleep(extra)
    body = request.get_json(silent=True, force=True)
    try:
        result = sim.submit(account, body)
    except Refusal as refused:
        return refused.status, answer(refused.status, refused.body)
    if fault is not None and fault.kind == "lost_answer":
        return 502, Response(LOST_ANSWER_PAGE, status=502, mimetype="text/html")
    return 200, answer(200, result)


def create_app(config: SimulatorConfig | None = None) -> Flask:
    sim = EcomdashSimulator((config or SimulatorConfig()).copy())
    app = Flask(__name__)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions[EXTENSION] = sim
    register_control_routes(app, sim)
    base = sim.config.base_path.rstrip("/").lower()

    @app.before_request
    def case_insensitive_api_path() -> Response | None:
        # APIM matches operation paths case-insensitively.
        if (
            request.method == "POST"
            and request.path.lower() == f"{base}/shipments/submittrackinginfo"
        ):
            return submit_tracking(sim)
        return None

    @app.post("/_sim/accounts")
    def sim_accounts() -> Response:
        return jsonify(sim.set_account(json_body()))

    @app.post("/_sim/shipments")
    def sim_shipments() -> Response:
        return jsonify(sim.add_shipments(json_body()))

    @app.get("/_sim/tracking")
    def sim_tracking() -> Response:
        shipment = request.args.get("shipment", type=int)
        return jsonify(sim.tracking_report(shipment))

    @app.get("/_sim/stats")
    def sim_stats() -> Response:
        return jsonify(sim.stats())

    return app


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m simulators.ecomdash [--host 127.0.0.1] [--port 8101]``."""
    run_cli(
        "ecomdash simulator", DEFAULT_PORT, lambda: create_app(config_from_env(os.environ)), argv
    )
