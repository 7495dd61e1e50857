"""Dotcom Distribution (3PL) REST API simulator.

Behaves like the WCF/IIS service at ``https://cwa.dotcomdistribution.com/dcd_api_test/
DCDAPIService.svc`` as far as the public record shows it:

* every API request is signed: ``Authorization: <api_key>:<Base64(HMAC-MD5(password, URL))>``,
  where URL is the absolute request URL exactly as sent (query string and %20 escapes included);
* ``POST {base}/order`` takes ``<orders><order>...</order></orders>`` and answers HTTP 200 with
  ``<response><order_errors/></response>``: empty on success, one ``a:order_error`` per problem.
  Every order is validated against Dotcom's published order schema (``schema``: every element
  of every ``xs:all`` group present, each valid or nil where nillable, lengths, ranges, formats)
  and refused in .NET's words, then against Dotcom's own rules (the item master, the ISO code and
  declared value of an order outside the USA). A number it already holds is stored again as a
  second order (``duplicate_orders`` "accept", the default: what Dotcom does is not documented)
  or refused ("refuse");
* ``GET {base}/order/{order-number}`` shows the orders held under a number (an empty
  ``<orders/>`` for none);
* ``GET {base}/shipment?fromShipDate=&toShipDate=`` lists shipped releases, shown late (a release
  becomes visible only ``visible_after_seconds`` after its ship time, as the real one does).

The response envelopes copy public fixtures of real answers (chloeandisabel/active_fulfillment):
``<response xmlns="http://dcd/datacontracts/post_order" xmlns:i="...XMLSchema-instance">`` around
``<order_errors xmlns:a="http://schemas.datacontract.org/2004/07/DCDAPIService">``. Children are
in the ``a:`` namespace and, as the WCF DataContractSerializer writes them, in alphabetical order.

A JSON control API under ``/_sim/`` (not signed) resets state, lists received orders, injects
shipment releases, queues faults and changes timing at run time. All state is in memory, guarded
by one lock (the fault queue keeps its own). Run with
``python -m simulators.dotcom --host 127.0.0.1 --port 8101``.

Modules: ``model`` (configuration, state), ``auth`` (signing), ``schema`` (the order schema),
``documents`` (XML in and out),
``simulator`` (behaviour), ``app`` (HTTP routes, ``create_app``, environment, command line); the
shared fault queue, ``/_sim/`` routes and command line come from :mod:`simulators.kit`.
"""

from simulators.dotcom.app import (
    HTML_ERROR_PAGE,
    HTTP_500_BODY,
    HTTP_503_BODY,
    UNAUTHORIZED_BODY,
    config_from_env,
    create_app,
    fault_response,
    get_shipments,
    main,
    parse_accounts,
    post_order,
    register_api_routes,
    register_dotcom_control_routes,
    run_api_request,
    text_response,
    truncated,
    xml_response,
)
from simulators.dotcom.auth import (
    authorization_header,
    is_authorized,
    request_url_as_sent,
    sign,
)
from simulators.dotcom.documents import (
    DCD_NS,
    POST_ORDER_NS,
    SHIPMENT_NS,
    XML_MIMETYPE,
    XSI_NS,
    check_quantity,
    format_quantity,
    international_problems,
    item_problems,
    order_errors_document,
    parse_iso_datetime,
    parse_orders,
    parse_ship_date,
    ship_to_of,
    shipments_document,
    text_of,
    validate_order,
    wcf_order_date,
)
from simulators.dotcom.model import (
    API_ROUTES,
    DCD_ORDER_NUMBER_BASE,
    DEFAULT_BASE_PATH,
    DEFAULT_ITEM_MASTER,
    DEFAULT_SLOW_SECONDS,
    FAULT_KINDS,
    TRACKING_SHIPPER,
    OrderError,
    Release,
    ShipItem,
    ShipTo,
    SimulatorConfig,
    SimulatorState,
    StoredOrder,
    utc_now,
)
from simulators.dotcom.schema import ORDER, schema_problems
from simulators.dotcom.simulator import (
    DotcomSimulator,
    config_changes_from_json,
    release_to_json,
)
from simulators.kit import Fault, InvalidRequest

__all__ = [
    "API_ROUTES",
    "DCD_NS",
    "DCD_ORDER_NUMBER_BASE",
    "DEFAULT_BASE_PATH",
    "DEFAULT_ITEM_MASTER",
    "DEFAULT_SLOW_SECONDS",
    "FAULT_KINDS",
    "HTML_ERROR_PAGE",
    "HTTP_500_BODY",
    "HTTP_503_BODY",
    "ORDER",
    "POST_ORDER_NS",
    "SHIPMENT_NS",
    "TRACKING_SHIPPER",
    "UNAUTHORIZED_BODY",
    "XML_MIMETYPE",
    "XSI_NS",
    "DotcomSimulator",
    "Fault",
    "InvalidRequest",
    "OrderError",
    "Release",
    "ShipItem",
    "ShipTo",
    "SimulatorConfig",
    "SimulatorState",
    "StoredOrder",
    "authorization_header",
    "check_quantity",
    "config_changes_from_json",
    "config_from_env",
    "create_app",
    "fault_response",
    "format_quantity",
    "get_shipments",
    "international_problems",
    "is_authorized",
    "item_problems",
    "main",
    "order_errors_document",
    "parse_accounts",
    "parse_iso_datetime",
    "parse_orders",
    "parse_ship_date",
    "post_order",
    "register_api_routes",
    "register_dotcom_control_routes",
    "release_to_json",
    "request_url_as_sent",
    "run_api_request",
    "schema_problems",
    "ship_to_of",
    "shipments_document",
    "sign",
    "text_of",
    "text_response",
    "truncated",
    "utc_now",
    "validate_order",
    "wcf_order_date",
    "xml_response",
]
