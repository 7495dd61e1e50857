"""``GET /openapi.json``: the HTTP interface, generated from the models it validates with (to be
written)."""

from __future__ import annotations

from flask import Blueprint

blueprint = Blueprint("openapi", __name__)
