"""Structured logs (to be written): what every log line says about the message it is about."""

from __future__ import annotations

import contextvars
from types import MappingProxyType
from typing import Any

_EMPTY: MappingProxyType[str, Any] = MappingProxyType({})
_context: contextvars.ContextVar[MappingProxyType[str, Any]] = contextvars.ContextVar(
    "shiphub_log", default=_EMPTY
)


def bind(**fields: Any) -> None:
    """Add fields (message_id, integration, service, attempt) to every later line of this
    thread or task."""
    _context.set(MappingProxyType({**_context.get(), **fields}))


def context() -> dict[str, Any]:
    return dict(_context.get())
