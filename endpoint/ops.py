"""``/ops``: the operations page (to be written)."""

from __future__ import annotations

from flask import Blueprint

blueprint = Blueprint("ops", __name__)
