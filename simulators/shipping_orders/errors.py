"""Error answers of the Shipping Order API: the seed's error table, both spellings, the body."""

from __future__ import annotations

from typing import Any

# Seed spelling -> the vendor's current spelling (providers.md: clients must accept both).
VENDOR_SPELLING = {
    "NO_PROVIDER_MATCHED": "NO_DSP_MATCHED",
    "ORDER_ALREADY_CANCELED": "ORDER_ALREADY_CANCELLED",
}
SEED_SPELLING = {vendor: seed for seed, vendor in VENDOR_SPELLING.items()}
ERROR_SPELLINGS = ("seed", "vendor")

# Severity column of the seed: a client retries these (whatever their HTTP code), not the rest.
TRANSIENT_TYPES = frozenset(
    {"INTERNAL_SERVER_ERROR", "PLACE_ORDER_FAILED", "TOO_MANY_REQUESTS", "UNMAPPED_ERROR"}
)

_UNAUTHORIZED = (401, "Unauthorized: Invalid or missing authentication token")
_INTERNAL = (
    500,
    "Internal Server Error: An unexpected error occurred while processing the request",
)
_TOO_MANY = (429, "Too many requests received per second.")
_UNMAPPED = (422, "Request received unidentifiable error response.")
_NOT_ASSIGNED = (422, "No Provider has been assigned to the mentioned location.")
_NOT_MATCHED = (422, "No Provider matched the criteria for the requested delivery.")
_PLACE_FAILED = (422, "Failed to place the requested order with the configured providers.")
_GEOCODING = (422, "Geocoding Service for the given address failed.")
_NOT_FOUND = (404, "Order with id, {id}, is not found")

# The seed's error table, per route: type -> (HTTP code, message). "{id}" is the path's id.
ERROR_TABLE: dict[str, dict[str, tuple[int, str]]] = {
    "create": {
        "UNAUTHORIZED": _UNAUTHORIZED,
        "INTERNAL_SERVER_ERROR": _INTERNAL,
        "VALIDATION_ERROR": (
            400,
            "Invalid Data: locationExternalId is a required field or Delivery Address not "
            "provided or other invalid values in the request",
        ),
        "INVALID_DATA": (
            422,
            "Invalid Data: No such locationExternalId exists in our system. Please provide a "
            "valid locationExternalId.",
        ),
        "DUPLICATE_ID": (422, "Resource with provided id already exists."),
        "DUPLICATE_NAME": (422, "Resource with provided name already exists."),
        "DUPLICATE_RESOURCE": (422, "Resource already exists."),
        "NO_PROVIDER_ASSIGNED": _NOT_ASSIGNED,
        "NO_PROVIDER_MATCHED": _NOT_MATCHED,
        "PLACE_ORDER_FAILED": _PLACE_FAILED,
        "GEOCODING_FAILED": _GEOCODING,
        "TOO_MANY_REQUESTS": _TOO_MANY,
        "UNMAPPED_ERROR": _UNMAPPED,
    },
    "list": {
        "UNAUTHORIZED": _UNAUTHORIZED,
        "INTERNAL_SERVER_ERROR": _INTERNAL,
        "INVALID_DATA": (
            400,
            "Invalid Data: lastUpdatedAt date range cannot be greater than 30 days",
        ),
    },
    "get": {
        "UNAUTHORIZED": _UNAUTHORIZED,
        "INTERNAL_SERVER_ERROR": _INTERNAL,
        "INVALID_DATA": (422, "Invalid data: Invalid Order Id"),
        "NOT_FOUND": (404, "Not Found: Order with id, {id}, is not found"),
    },
    "cancel": {
        "UNAUTHORIZED": _UNAUTHORIZED,
        "INTERNAL_SERVER_ERROR": _INTERNAL,
        "NOT_FOUND": _NOT_FOUND,
        "CANCELLATION_NOT_ALLOWED": (403, "Provider does not allow cancellation of orders."),
        "ORDER_CANCELLATION_FAILED": (422, "Provider failed to cancel order"),
        "ORDER_ALREADY_CANCELED": (409, "Requested order is already in Cancelled state."),
        "TOO_MANY_REQUESTS": _TOO_MANY,
        "UNMAPPED_ERROR": _UNMAPPED,
    },
    "edit": {
        "UNAUTHORIZED": _UNAUTHORIZED,
        "INTERNAL_SERVER_ERROR": _INTERNAL,
        "INVALID_DATA": (
            400,
            "Invalid data: The value for the orderValue field is invalid or any other invalid "
            "value",
        ),
        "VALIDATION_ERROR": (
            400,
            "packages parameter cannot be changed post order dispatch or any other invalid value",
        ),
        "NOT_FOUND": _NOT_FOUND,
        "NO_PROVIDER_ASSIGNED": _NOT_ASSIGNED,
        "NO_PROVIDER_MATCHED": _NOT_MATCHED,
        "PLACE_ORDER_FAILED": _PLACE_FAILED,
        "GEOCODING_FAILED": _GEOCODING,
        "TOO_MANY_REQUESTS": _TOO_MANY,
        "UNMAPPED_ERROR": _UNMAPPED,
    },
    "history": {
        "UNAUTHORIZED": _UNAUTHORIZED,
        "INTERNAL_SERVER_ERROR": _INTERNAL,
    },
    "retry": {
        "UNAUTHORIZED": _UNAUTHORIZED,
        "INTERNAL_SERVER_ERROR": _INTERNAL,
        "NOT_FOUND": _NOT_FOUND,
        "INVALID_DATA": (422, "Order Id value is invalid"),
        "INVALID_OPERATION": (409, "The Order can no longer be retried"),
        "NO_PROVIDER_ASSIGNED": _NOT_ASSIGNED,
        "NO_PROVIDER_MATCHED": _NOT_MATCHED,
        "PLACE_ORDER_FAILED": _PLACE_FAILED,
        "TOO_MANY_REQUESTS": _TOO_MANY,
        "UNMAPPED_ERROR": _UNMAPPED,
    },
}
API_ROUTES = tuple(ERROR_TABLE)


class ApiError(Exception):
    """An error answer: HTTP ``status`` and ``{"type", "message", "errors": [...]}``.

    ``items`` replace the default single ``{"type", "message"}`` entry of ``errors`` (a delivery
    provider's own error: ``provider``, ``type``, ``message``, ``code``); ``extra`` adds keys to
    that default entry (``field`` of a validation error).
    """

    def __init__(
        self,
        status: int,
        type_: str,
        message: str,
        *,
        items: list[dict[str, Any]] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(f"{status} {type_}: {message}")
        self.status = status
        self.type = type_
        self.message = message
        self.items = items if items is not None else [{"type": type_, "message": message, **extra}]

    def body(self) -> dict[str, Any]:
        return {"type": self.type, "message": self.message, "errors": self.items}


class OrchestrationError(Exception):
    """No dispatch: ``type`` is NO_PROVIDER_ASSIGNED, NO_PROVIDER_MATCHED or GEOCODING_FAILED."""

    def __init__(self, type_: str, detail: str = "") -> None:
        super().__init__(type_)
        self.type = type_
        self.detail = detail


def spelled(type_: str, spelling: str) -> str:
    """``type_`` (seed spelling) as the configured spelling writes it."""
    return VENDOR_SPELLING.get(type_, type_) if spelling == "vendor" else type_


def seed_type(type_: str) -> str:
    """Either spelling back to the seed's, for table look-ups."""
    return SEED_SPELLING.get(type_, type_)


def table_error(route: str, type_: str, order_id: str = "", message: str | None = None) -> ApiError:
    """The seed table's answer for ``type_`` (either spelling) on ``route``, type kept as given."""
    status, template = ERROR_TABLE[route][seed_type(type_)]
    return ApiError(status, type_, message or template.replace("{id}", order_id))


def route_error(route: str, type_: str, spelling: str, message: str | None = None) -> ApiError:
    """The table's answer for ``type_`` (seed spelling) written in the configured spelling.

    A type missing from the route's table (GEOCODING_FAILED on retry) takes create's entry."""
    status, template = ERROR_TABLE[route].get(type_) or ERROR_TABLE["create"][type_]
    return ApiError(status, spelled(type_, spelling), message or template)


def orchestration_error(route: str, error: OrchestrationError, spelling: str) -> ApiError:
    return route_error(route, error.type, spelling)


def not_found(route: str, order_id: str) -> ApiError:
    return table_error(route, "NOT_FOUND", order_id)


def validation_error(field: str, message: str) -> ApiError:
    return ApiError(400, "VALIDATION_ERROR", message, field=field)


def invalid_data(message: str, status: int = 400) -> ApiError:
    return ApiError(status, "INVALID_DATA", message)


def internal_error() -> ApiError:
    return ApiError(_INTERNAL[0], "INTERNAL_SERVER_ERROR", _INTERNAL[1])


def too_many_requests() -> ApiError:
    return ApiError(_TOO_MANY[0], "TOO_MANY_REQUESTS", _TOO_MANY[1])


def forbidden() -> ApiError:
    """No x-api-key at all: the API gateway's 403."""
    return ApiError(403, "FORBIDDEN", "Forbidden")


def unauthorized(message: str) -> ApiError:
    return ApiError(401, "UNAUTHORIZED", message)
