"""The Dotcom simulator over HTTP: API routes, control routes, ``create_app`` and the CLI."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence

from flask import Flask, Response, jsonify, request

from simulators.dotcom.auth import request_url_as_sent
from simulators.dotcom.documents import (
    XML_MIMETYPE,
    held_orders_document,
    order_errors_document,
    parse_orders,
    parse_ship_date,
    shipments_document,
)
from simulators.dotcom.model import DUPLICATE_ORDERS, SimulatorConfig
from simulators.dotcom.simulator import DotcomSimulator, release_to_json
from simulators.kit import Fault, InvalidRequest, json_body, register_control_routes, run_cli

# The bodies of IIS/WCF error answers are not in the public record; these imitate IIS defaults.
UNAUTHORIZED_BODY = "401 - Unauthorized: Access is denied due to invalid credentials."
HTTP_500_BODY = (
    '<html><head><title>Request Error</title></head><body><div id="content">'
    '<p class="heading1">Request Error</p><p>The server encountered an error processing the '
    "request. See server logs for more details.</p></div></body></html>"
)
HTTP_503_BODY = (
    '<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01//EN""http://www.w3.org/TR/html4/strict.dtd">'
    "<HTML><HEAD><TITLE>Service Unavailable</TITLE></HEAD><BODY><h2>Service Unavailable</h2>"
    "<hr><p>HTTP Error 503. The service is unavailable.</p></BODY></HTML>"
)
HTML_ERROR_PAGE = (
    "<!DOCTYPE html><html><head><title>Runtime Error</title></head><body>"
    "<h1>Server Error in '/dcd_api_test' Application.</h1><h2><i>Runtime Error</i></h2>"
    "<p><b>Description:</b> An application error occurred on the server.</p></body></html>"
)


def xml_response(document: str, status: int = 200) -> Response:
    return Response(document, status=status, mimetype=XML_MIMETYPE)


def text_response(body: str, status: int) -> Response:
    return Response(body, status=status, mimetype="text/plain")


def fault_response(fault: Fault) -> Response | None:
    """The answer that replaces the real one, or None when the request proceeds."""
    if fault.kind == "http_500":
        return Response(HTTP_500_BODY, status=500, mimetype="text/html")
    if fault.kind == "http_503":
        return Response(HTTP_503_BODY, status=503, mimetype="text/html")
    if fault.kind == "html_error_page":
        return Response(HTML_ERROR_PAGE, status=200, mimetype="text/html")
    return None


def truncated(response: Response) -> Response:
    """The real answer cut in half (so never well-formed), sent as HTTP 200."""
    body = response.get_data(as_text=True)
    return xml_response(body[: max(1, len(body) // 2)] or "<response", status=200)


def run_api_request(sim: DotcomSimulator, route: str, handler: Callable[[], Response]) -> Response:
    """Count, apply a queued fault, check the signature, then answer.

    Faults act before authentication (as a broken server would); http_500, http_503 and
    html_error_page answer without processing; slow sleeps then processes; malformed_xml
    processes (an order is stored) and then truncates the answer.
    """
    fault = sim.begin_request(route)
    if fault is not None:
        replacement = fault_response(fault)
        if replacement is not None:
            return replacement
        if fault.kind == "slow":
            time.sleep(fault.delay_seconds)
    url = request_url_as_sent(request.environ)
    if not sim.authorized(request.headers.get("Authorization"), url):
        # The real 401 body is unknown; IIS answers a short text like this one.
        response = text_response(UNAUTHORIZED_BODY, 401)
    else:
        response = handler()
    if fault is not None and fault.kind == "malformed_xml":
        return truncated(response)
    return response


def post_order(sim: DotcomSimulator) -> Response:
    try:
        orders = parse_orders(request.get_data())
    except InvalidRequest as exc:
        # WCF's real 400 body is unknown (probably an HTML "Request Error" page).
        return text_response(str(exc), 400)
    return xml_response(order_errors_document(sim.receive_orders(orders)))


def get_shipments(sim: DotcomSimulator) -> Response:
    start_raw, end_raw = request.args.get("fromShipDate"), request.args.get("toShipDate")
    if not start_raw or not end_raw:
        return text_response("fromShipDate and toShipDate are required.", 400)
    try:
        start = parse_ship_date(start_raw, end_of_day=False, zone=sim.zone)
        end = parse_ship_date(end_raw, end_of_day=True, zone=sim.zone)
    except ValueError:
        return text_response(
            "fromShipDate and toShipDate must be YYYY-MM-DD or YYYY-MM-DD HH:MM:SS -0400.", 400
        )
    return xml_response(shipments_document(sim.visible_releases(start, end), sim.zone))


def get_order(sim: DotcomSimulator, number: str) -> Response:
    return xml_response(held_orders_document(sim.held_orders(number)))


def register_api_routes(app: Flask, sim: DotcomSimulator) -> None:
    base = sim.config.base_path.rstrip("/")

    @app.get(f"{base}/order/<path:number>")
    def api_order_status(number: str) -> Response:
        return run_api_request(sim, "order_status", lambda: get_order(sim, number))

    @app.post(f"{base}/order")
    def api_order() -> Response:
        return run_api_request(sim, "order", lambda: post_order(sim))

    @app.get(f"{base}/shipment")
    def api_shipment() -> Response:
        return run_api_request(sim, "shipment", lambda: get_shipments(sim))


def register_dotcom_control_routes(app: Flask, sim: DotcomSimulator) -> None:
    """The kit's ``/_sim/`` routes plus orders received and shipment releases."""
    register_control_routes(app, sim)

    @app.get("/_sim/orders")
    def sim_orders() -> Response:
        return jsonify(sim.orders_report())

    @app.get("/_sim/shipments")
    def sim_shipments() -> Response:
        return jsonify({"shipments": sim.releases_report()})

    @app.post("/_sim/shipments")
    def sim_inject_shipment() -> tuple[Response, int]:
        release = sim.inject_release(json_body())
        return jsonify(release_to_json(release, sim.now())), 201


def _copy_config(config: SimulatorConfig) -> SimulatorConfig:
    return SimulatorConfig(
        accounts=dict(config.accounts),
        base_path=config.base_path,
        item_master=set(config.item_master),
        ship_after_seconds=config.ship_after_seconds,
        visible_after_seconds=config.visible_after_seconds,
        warehouse_timezone=config.warehouse_timezone,
        clock=config.clock,
        duplicate_orders=config.duplicate_orders,
    )


def create_app(config: SimulatorConfig | None = None) -> Flask:
    """The simulator as a Flask app; ``app.extensions["dotcom_simulator"]`` is its state."""
    sim = DotcomSimulator(_copy_config(config or SimulatorConfig()))
    app = Flask(__name__)
    app.extensions["dotcom_simulator"] = sim
    register_api_routes(app, sim)
    register_dotcom_control_routes(app, sim)
    return app


# --------------------------------------------------------------------------------------------
# Command line


def parse_accounts(spec: str) -> dict[str, str]:
    """``"key:password,key2:password2"`` → ``{"key": "password", "key2": "password2"}``."""
    accounts: dict[str, str] = {}
    for pair in filter(None, (part.strip() for part in spec.split(","))):
        api_key, separator, password = pair.partition(":")
        if not separator or not api_key or not password:
            raise ValueError(f"DOTCOM_SIM_ACCOUNTS entry {pair!r} is not key:password")
        accounts[api_key] = password
    return accounts


def config_from_env(environ: Mapping[str, str]) -> SimulatorConfig:
    """Defaults overridden by DOTCOM_SIM_SHIP_AFTER, DOTCOM_SIM_VISIBLE_AFTER (seconds),
    DOTCOM_SIM_ACCOUNTS, DOTCOM_SIM_BASE_PATH, DOTCOM_SIM_ITEM_MASTER (comma list, replaces the
    default), DOTCOM_SIM_TIMEZONE and DOTCOM_SIM_DUPLICATE_ORDERS (accept or refuse)."""
    config = SimulatorConfig()
    if "DOTCOM_SIM_SHIP_AFTER" in environ:
        config.ship_after_seconds = float(environ["DOTCOM_SIM_SHIP_AFTER"])
    if "DOTCOM_SIM_VISIBLE_AFTER" in environ:
        config.visible_after_seconds = float(environ["DOTCOM_SIM_VISIBLE_AFTER"])
    if environ.get("DOTCOM_SIM_ACCOUNTS"):
        config.accounts = parse_accounts(environ["DOTCOM_SIM_ACCOUNTS"])
    if environ.get("DOTCOM_SIM_BASE_PATH"):
        config.base_path = environ["DOTCOM_SIM_BASE_PATH"]
    if environ.get("DOTCOM_SIM_ITEM_MASTER"):
        config.item_master = {s.strip() for s in environ["DOTCOM_SIM_ITEM_MASTER"].split(",")}
        config.item_master.discard("")
    if environ.get("DOTCOM_SIM_TIMEZONE"):
        config.warehouse_timezone = environ["DOTCOM_SIM_TIMEZONE"]
    if environ.get("DOTCOM_SIM_DUPLICATE_ORDERS"):
        config.duplicate_orders = environ["DOTCOM_SIM_DUPLICATE_ORDERS"]
        if config.duplicate_orders not in DUPLICATE_ORDERS:
            raise ValueError("DOTCOM_SIM_DUPLICATE_ORDERS must be accept or refuse")
    return config


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m simulators.dotcom [--host 127.0.0.1] [--port 8101]``; settings from env."""
    run_cli(
        "Dotcom Distribution API simulator",
        8101,
        lambda: create_app(config_from_env(os.environ)),
        argv,
    )
