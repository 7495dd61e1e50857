"""The Shipping Order API simulator over HTTP: API routes, control routes, app and CLI."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from flask import Flask, Response, jsonify, request

from simulators.kit import InvalidRequest, json_body, register_control_routes, run_cli
from simulators.shipping_orders.config import SimulatorConfig, config_from_env
from simulators.shipping_orders.errors import ApiError, internal_error, table_error
from simulators.shipping_orders.shapes import VENDOR_HTTP_STATUS
from simulators.shipping_orders.simulator import OrderNotFound, ShippingOrdersSimulator, oddly

EXTENSION = "shipping_orders_simulator"
DEFAULT_PORT = 8102
# What a client sees when the gateway loses the service's answer (``lost_answer`` fault).
LOST_ANSWER_PAGE = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"
)

Handler = Callable[[str], tuple[int, Any]]


def error_response(error: ApiError, shape: str = "seed") -> Response:
    """The error's body and HTTP code; the vendor answers INVALID_DATA and
    ORDER_CANCELLATION_FAILED with 400 where the seed's table says 422."""
    response = jsonify(error.body())
    response.status_code = error.status
    if shape == "vendor":
        response.status_code = VENDOR_HTTP_STATUS.get(error.type, error.status)
    return response


def request_body() -> Any:
    """The JSON body (any JSON value); ``{}`` when empty, None when it does not parse."""
    if not request.get_data():
        return {}
    return request.get_json(silent=True, force=True)


def api_call(
    sim: ShippingOrdersSimulator, route: str, handler: Handler, order_id: str = ""
) -> Response:
    """Count and rate-limit, authenticate, apply a queued fault, then answer.

    Faults act on authenticated requests only (the gateway answers 403/401/429 before any
    backend runs): ``http_500`` and ``error`` answer without processing; ``slow`` sleeps then
    processes; ``lost_answer`` processes (the change is made) and answers a 502 HTML page;
    ``odd_answer`` processes and answers with the fault's fields written into the order(s).
    """
    shape = sim.config.shape
    api_key = request.headers.get("x-api-key")
    refused = sim.admit(route, api_key)
    if refused is not None:
        return error_response(refused)
    try:
        tenant = sim.authenticate(api_key, request.headers.get("tenantId"))
    except ApiError as error:
        return error_response(error)
    fault = sim.faults.take(route)
    if fault is not None:
        if fault.kind == "http_500":
            return error_response(internal_error())
        if fault.kind == "error":
            message = fault.extra.get("message")
            error = table_error(route, str(fault.extra["type"]), order_id, message)
            return error_response(error, shape)
        if fault.kind == "slow":
            time.sleep(fault.delay_seconds)
    try:
        status, payload = handler(tenant)
        if fault is not None and fault.kind == "odd_answer":
            payload = oddly(route, payload, fault)
        response = jsonify(payload)
        response.status_code = status
    except ApiError as error:
        response = error_response(error, shape)
    if fault is not None and fault.kind == "lost_answer":
        return Response(LOST_ANSWER_PAGE, status=502, mimetype="text/html")
    return response


def register_api_routes(app: Flask, sim: ShippingOrdersSimulator) -> None:
    base = sim.config.base_path.rstrip("/")

    @app.post(f"{base}/shipments")
    def create_shipment() -> Response:
        return api_call(sim, "create", lambda tenant: (201, sim.create(tenant, request_body())))

    @app.post(f"{base}/shipments/list")
    def list_shipments() -> Response:
        return api_call(sim, "list", lambda tenant: (200, sim.list_orders(tenant, request_body())))

    @app.get(f"{base}/shipments/<path:order_id>")
    def get_shipment(order_id: str) -> Response:
        return api_call(sim, "get", lambda tenant: (200, sim.get(tenant, order_id)), order_id)

    @app.put(f"{base}/shipments/<path:order_id>")
    def edit_shipment(order_id: str) -> Response:
        return api_call(
            sim, "edit", lambda tenant: (200, sim.edit(tenant, order_id, request_body())), order_id
        )

    @app.delete(f"{base}/shipments/<path:order_id>")
    def cancel_shipment(order_id: str) -> Response:
        return api_call(sim, "cancel", lambda tenant: (200, sim.cancel(tenant, order_id)), order_id)

    @app.get(f"{base}/shipments/<path:order_id>/status-history")
    def shipment_history(order_id: str) -> Response:
        return api_call(
            sim, "history", lambda tenant: (200, sim.status_history(tenant, order_id)), order_id
        )

    @app.post(f"{base}/shipments/<path:order_id>/retry")
    def retry_shipment(order_id: str) -> Response:
        return api_call(sim, "retry", lambda tenant: (201, sim.retry(tenant, order_id)), order_id)


def register_shipping_orders_control_routes(app: Flask, sim: ShippingOrdersSimulator) -> None:
    """The kit's ``/_sim/`` routes plus orders, lifecycle steps, webhooks, locations, counts."""
    register_control_routes(app, sim)

    @app.errorhandler(OrderNotFound)
    def unknown_order(error: OrderNotFound) -> tuple[Response, int]:
        return jsonify({"error": str(error)}), 404

    @app.get("/_sim/orders")
    def sim_orders() -> Response:
        return jsonify(sim.orders_report(request.args.get("tenantId")))

    @app.get("/_sim/orders/<path:order_id>")
    def sim_order(order_id: str) -> Response:
        return jsonify(sim.order_report(order_id, request.args.get("tenantId")))

    @app.post("/_sim/orders/<path:order_id>/advance")
    def sim_advance(order_id: str) -> Response:
        payload = json_body()
        to, force = payload.get("to"), payload.get("force", False)
        tenant = payload.get("tenantId") or request.args.get("tenantId")
        if to is not None and not isinstance(to, str):
            raise InvalidRequest("to must be a status name")
        if not isinstance(force, bool):
            raise InvalidRequest("force must be true or false")
        return jsonify(sim.advance(order_id, tenant, to, force))

    @app.get("/_sim/webhooks")
    def sim_webhooks() -> Response:
        return jsonify(sim.webhooks.report())

    @app.get("/_sim/locations")
    def sim_locations() -> Response:
        return jsonify(sim.locations_report())

    @app.post("/_sim/locations")
    def sim_update_location() -> Response:
        return jsonify(sim.update_location(json_body()))

    @app.get("/_sim/requests")
    def sim_requests() -> Response:
        return jsonify(sim.requests_report())


def create_app(config: SimulatorConfig | None = None, *, start: bool = True) -> Flask:
    """The simulator as a Flask app; ``app.extensions["shipping_orders_simulator"]`` is its
    state. ``start`` starts the lifecycle clock and the webhook sender (stop them with
    ``app.extensions["shipping_orders_simulator"].stop()``)."""
    sim = ShippingOrdersSimulator((config or SimulatorConfig()).copy())
    app = Flask(__name__)
    app.json.sort_keys = False  # type: ignore[attr-defined]  # keep the documents' field order
    app.extensions[EXTENSION] = sim
    register_api_routes(app, sim)
    register_shipping_orders_control_routes(app, sim)
    if start:
        sim.start()
    return app


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m simulators.shipping_orders [--host 127.0.0.1] [--port 8102]``."""
    run_cli(
        "Shipping Order API simulator",
        DEFAULT_PORT,
        lambda: create_app(config_from_env(os.environ)),
        argv,
    )
