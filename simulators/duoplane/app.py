"""The Duoplane simulator over HTTP: API routes, control routes, app and CLI."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, jsonify, request

from simulators.duoplane.simulator import (
    ApiError,
    DuoplaneSimulator,
    config_from_env,
    retry_after_text,
)
from simulators.kit import InvalidRequest, json_body, register_control_routes, run_cli

DEFAULT_PORT = 8103
RETRY_AFTER_HEADER = "Duoplane-Retry-After-Seconds"
LOST_ANSWER_PAGE = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"
)

Work = Callable[[], Any]


def _answer(status: int, body: Any, headers: dict[str, str]) -> Response:
    if isinstance(body, str):
        response = Response(body, status=status, mimetype="text/plain")
    else:
        response = jsonify(body)
        response.status_code = status
    response.headers.update(headers)
    return response


def _body() -> Any:
    if not request.get_data():
        return {}
    return request.get_json(silent=True, force=True)


def api_call(sim: DuoplaneSimulator, route: str, work: Work) -> Response:
    """Authenticate (HTTP Basic), count the request in the user's bucket (429 when full), apply
    a queued fault, then do the work. Every answer past authentication carries
    ``Duoplane-Retry-After-Seconds``."""
    status, headers = 500, {}
    arrived = sim.arrive(route)
    try:
        auth = request.authorization
        user = sim.authenticate(auth.username if auth else None, auth.password if auth else None)
        wait = sim.admit(user)
        headers = {RETRY_AFTER_HEADER: retry_after_text(wait)}
        fault = sim.take_fault(route)
        if fault is not None and fault.kind == "http_500":
            status = 500
            return _answer(500, {"errors": ["We're sorry, but something went wrong."]}, headers)
        if fault is not None and fault.kind == "rate_limited":
            seconds = float(fault.extra.get("retry_after_seconds", 2))
            status, headers = 429, {RETRY_AFTER_HEADER: retry_after_text(seconds)}
            return _answer(429, {"errors": ["Rate limit exceeded."]}, headers)
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.delay_seconds)
        result = work()
        if fault is not None and fault.kind == "lost_answer":
            status = 502
            return _answer(502, LOST_ANSWER_PAGE, {})
        status = 200
        return _answer(200, result, headers)
    except ApiError as error:
        status = error.status
        return _answer(error.status, error.body, {**headers, **error.headers})
    finally:
        sim.record(route, status, arrived)


def register_api_routes(app: Flask, sim: DuoplaneSimulator) -> None:
    @app.get("/shipments.json")
    def list_shipments() -> Response:
        return api_call(sim, "list", lambda: sim.search(request.args))

    @app.post("/purchase_orders/<int:po_id>/shipments.json")
    def create_shipment(po_id: int) -> Response:
        return api_call(sim, "create", lambda: sim.create_shipment(po_id, _body()))

    @app.put("/shipments/<int:shipment_id>.json")
    def update_shipment(shipment_id: int) -> Response:
        return api_call(sim, "update", lambda: sim.update_shipment(shipment_id, _body()))


def register_duoplane_control_routes(app: Flask, sim: DuoplaneSimulator) -> None:
    @app.get("/_sim/shipments")
    def sim_shipments() -> Response:
        found = sim.listing(request.args.get("purchase_order_id"))
        return jsonify({"shipments": found, "count": len(found)})

    @app.post("/_sim/shipments")
    def sim_inject() -> tuple[Response, int]:
        return jsonify(sim.inject(json_body())), 201

    @app.get("/_sim/purchase_orders")
    def sim_purchase_orders() -> Response:
        with sim.lock:
            return jsonify({"purchase_orders": list(sim.purchase_orders.values())})

    @app.post("/_sim/purchase_orders")
    def sim_add_purchase_order() -> tuple[Response, int]:
        return jsonify(sim.add_purchase_order(json_body())), 201

    @app.get("/_sim/requests")
    def sim_requests() -> Response:
        since = request.args.get("since")
        try:
            moment = float(since) if since else None
        except ValueError:
            raise InvalidRequest("since must be epoch seconds") from None
        return jsonify(sim.request_report(moment))


def create_app(sim: DuoplaneSimulator | None = None) -> Flask:
    sim = sim or DuoplaneSimulator(config_from_env())
    app = Flask("duoplane_simulator")
    app.extensions["duoplane_simulator"] = sim
    register_control_routes(app, sim)
    register_api_routes(app, sim)
    register_duoplane_control_routes(app, sim)
    return app


def main() -> None:
    run_cli("Duoplane API simulator", DEFAULT_PORT, create_app)
