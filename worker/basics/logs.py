"""Structured logs: one line per event, each line about a message naming it, never a secret.

Every process (the receiver under gunicorn, Celery workers, beat, Flower) writes through the one
handler ``configure`` puts on the root logger: a JSON object per line when its output is not a
terminal (``LOG_FORMAT=auto``, the default; ``json`` or ``text`` force one), at ``LOG_LEVEL``. A
traceback goes inside its line's object (``exception``), never over several lines, so a log
shipper never splits an event.

What a line is about is bound per request or task (``bind``): ``message_id``, ``integration``,
``service`` and ``attempt`` go on every line written under it, as fields. The receiver binds them
per request (``endpoint.app``), the worker per task (``worker.tasks.app``, cleared when the task
ends: pool threads are reused), and ``worker.pipeline.handling`` adds the attempt once it has begun.

No log call should carry a secret. As defence in depth every line is also searched for the value
of every secret setting known here (``known_secrets``), and each is replaced by ``[redacted]``.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import sys
import threading
import types
import typing
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, TextIO
from urllib.parse import urlsplit

from pydantic import SecretStr
from pydantic_settings import BaseSettings
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

FIELDS = ("message_id", "integration", "service", "attempt")
REDACTED = "[redacted]"
# Shorter values are not looked for: a 3-letter "secret" would blank out ordinary words.
MIN_SECRET_LENGTH = 6
# Environment variables holding a secret by name: every secret setting of ours and of every
# provider (ENDPOINT_KEY, HUB_ACCESS_TOKEN, SHIPHUB_SECRET_KEY, OPS_PASSWORD, DOTCOM_PASSWORD,
# ECOMDASH_ECD_KEY, SHIPPING_ORDERS_WEBHOOK_SECRET, SPECTRUM_API_TOKEN...) ends so.
SECRET_SUFFIXES = ("_KEY", "_PASSWORD", "_SECRET", "_TOKEN")
# Variables holding several secrets, a JSON object of name -> secret (a provider's
# <NAME>_WEBHOOK_SECRETS, one per store): each of its values, and the whole text, are secrets.
SECRETS_SUFFIX = "_SECRETS"
# Record attributes that are not fields of a line: Celery passes its message's formatting
# arguments (task arguments, a traceback's text) as ``data``, already in the message.
_NOT_FIELDS = (*RESERVED_ATTRS, "data", "taskName")
# Where the receiver leaves what became of a message it was offered (level, words, fields) for
# gunicorn's access line to carry: one line per request, not an intake line and an access line.
INTAKE_ENVIRON = "shiphub.intake"
_MARK = "_shiphub_logs"

# Celery's line for a task that raised an exception it was told to expect ("raised expected:
# MessageFailed(...)") is at INFO, whatever the exception. A message that failed or went dead, or
# a delivery that went dead, is a warning (``FailuresWarn``).
CELERY_TRACE = "celery.app.trace"
FAILURES = ("MessageFailed(", "PushFailed(")

_EMPTY: MappingProxyType[str, Any] = MappingProxyType({})
_context: contextvars.ContextVar[MappingProxyType[str, Any]] = contextvars.ContextVar(
    "shiphub_log", default=_EMPTY
)


def bind(**fields: Any) -> None:
    """Add fields (message_id, integration, service, attempt) to every later line of this
    thread, greenlet or task."""
    _context.set(MappingProxyType({**_context.get(), **fields}))


def context() -> dict[str, Any]:
    return dict(_context.get())


def clear() -> None:
    """Forget the bound fields: a pool thread or a keep-alive connection's greenlet goes on to
    another message."""
    _context.set(_EMPTY)


class MessageContext(logging.Filter):
    """Puts the bound fields on each record. A field the record already has wins (Celery's
    "received" line is named from its task's arguments, before any task is bound)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in _context.get().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


class FailuresWarn(logging.Filter):
    """On Celery's trace logger: a task's end that says its message failed or went dead
    (``MessageFailed``), or its delivery went dead (``PushFailed``), is a WARNING, not INFO, so
    a query for warnings finds it. The logger lets INFO through to see those lines, so this
    filter also holds back every line below ``LOG_LEVEL``."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        data = getattr(record, "data", None)
        if (
            record.levelno < logging.WARNING
            and isinstance(data, dict)
            and data.get("description") == "raised expected"
            and str(data.get("exc", "")).startswith(FAILURES)
        ):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return record.levelno >= self.level


class Redactor:
    """Replaces every known secret in a formatted line, as written and as JSON escapes it."""

    def __init__(self, secrets: Iterable[str]) -> None:
        forms: set[str] = set()
        for secret in secrets:
            if len(secret) >= MIN_SECRET_LENGTH:
                forms.update(
                    (secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1])
                )
        longest_first = sorted(forms, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, longest_first))) if forms else None

    def redact(self, text: str) -> str:
        return self._pattern.sub(REDACTED, text) if self._pattern else text


def known_secrets(environ: Mapping[str, str] | None = None) -> list[str]:
    """The value of every secret setting this process can know: variables named like a secret
    (``SECRET_SUFFIXES``), the secret fields of every settings class loaded (``SecretStr``, or a
    text field named like one), each key of ``SHIPHUB_SECRET_KEY``, each secret of
    ``HUB_PUSH_SECRET`` (with and without its ``whsec_``), Flower's basic auth and the password in
    ``REDIS_URL``."""
    env = {name.upper(): value for name, value in (environ or os.environ).items()}
    found = [value for name, value in env.items() if name.endswith(SECRET_SUFFIXES)]
    for name, value in env.items():
        if name.endswith(SECRETS_SUFFIX):
            found += [value, *_object_values(value)]
    for settings_class in _settings_classes():
        prefix = str(settings_class.model_config.get("env_prefix", "")).upper()
        for name, field in settings_class.model_fields.items():
            if _is_secret(name, field.annotation):
                found.append(env.get(f"{prefix}{name.upper()}", ""))
    found += env.get("SHIPHUB_SECRET_KEY", "").split(",")
    for push_secret in env.get("HUB_PUSH_SECRET", "").split():  # whsec_<key>, several in a rotation
        found += [push_secret, push_secret.removeprefix("whsec_")]
    for login in env.get("FLOWER_BASIC_AUTH", "").split(","):
        found += [login, login.partition(":")[2]]
    found += [_url_password(part) for part in env.get("REDIS_URL", "").split(";")]
    return sorted({value.strip() for value in found if value and value.strip()})


def _object_values(text: str) -> list[str]:
    """The text values of a JSON object (none when ``text`` is not one)."""
    try:
        data = json.loads(text)
    except ValueError:
        return []
    return [v for v in data.values() if isinstance(v, str)] if isinstance(data, dict) else []


def _settings_classes() -> list[type[BaseSettings]]:
    """Our settings, and every provider's that is loaded (found without importing anything: the
    receiver's gunicorn master configures its logs before any integration is imported, and the
    names of the built-in providers' secrets are covered by ``SECRET_SUFFIXES``)."""
    from worker.basics.settings import Settings

    classes: list[type[BaseSettings]] = [Settings]
    kit = sys.modules.get("worker.integrations.kit")
    if kit is not None:
        pending = list(kit.ProviderSettings.__subclasses__())
        while pending:
            cls = pending.pop()
            classes.append(cls)
            pending.extend(cls.__subclasses__())
    return classes


def _is_secret(name: str, annotation: Any) -> bool:
    kinds = set(typing.get_args(annotation)) if _is_union(annotation) else {annotation}
    if SecretStr in kinds:
        return True
    return str in kinds and name.upper().endswith(SECRET_SUFFIXES)


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def _url_password(url: str) -> str:
    try:
        return urlsplit(url).password or ""
    except ValueError:
        return ""


def _iso_time(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")


class JsonLines(JsonFormatter):
    """One JSON object per line: time, level, logger, message, the message's fields, any other
    fields the call gave (``extra=``), and the traceback last, as one string."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__(
            ["asctime", "levelname", "name", "message"],
            rename_fields={
                "asctime": "time",
                "levelname": "level",
                "name": "logger",
                "exc_info": "exception",
            },
            reserved_attrs=_NOT_FIELDS,
            json_ensure_ascii=False,
        )
        self.redactor = redactor

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return _iso_time(record)

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        """The message's fields right after the message; a traceback last."""
        first = ("time", "level", "logger", "message", *FIELDS)
        last = ("exception", "stack_info")
        ordered = {k: log_data[k] for k in first if k in log_data}
        ordered.update((k, v) for k, v in log_data.items() if k not in first and k not in last)
        ordered.update((k, log_data[k]) for k in last if k in log_data)
        return ordered

    def format(self, record: logging.LogRecord) -> str:
        return self.redactor.redact(super().format(record))


class TextLines(logging.Formatter):
    """For a terminal: ``time LEVEL logger [message_id=... attempt=...]: message``; a traceback
    follows on its own lines, as Python prints it."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(about)s: %(message)s")
        self.redactor = redactor

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return _iso_time(record)

    def format(self, record: logging.LogRecord) -> str:
        about = " ".join(f"{n}={getattr(record, n)}" for n in FIELDS if hasattr(record, n))
        record.about = f" [{about}]" if about else ""
        return self.redactor.redact(super().format(record))


def formatter(log_format: str, stream: TextIO, redactor: Redactor) -> logging.Formatter:
    """JSON unless ``text``, or ``auto`` on a terminal."""
    if log_format == "text" or (log_format == "auto" and _isatty(stream)):
        return TextLines(redactor)
    return JsonLines(redactor)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def configure(
    log_format: str | None = None,
    log_level: str | None = None,
    stream: TextIO | None = None,
    secrets: Iterable[str] | None = None,
) -> logging.Handler:
    """Send every logger of this process through one structured handler on the root logger
    (``LOG_FORMAT`` and ``LOG_LEVEL`` unless given; standard error unless given). Python warnings
    and uncaught exceptions become lines too. Safe to call again: it replaces its own handler."""
    if log_format is None or log_level is None:
        from worker.basics.settings import settings

        s = settings()
        log_format, log_level = log_format or s.log_format, log_level or s.log_level
    out = stream or sys.stderr
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        formatter(log_format, out, Redactor(known_secrets() if secrets is None else secrets))
    )
    handler.addFilter(MessageContext())
    setattr(handler, _MARK, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _MARK, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(log_level)
    trace = logging.getLogger(CELERY_TRACE)
    for old_filter in [f for f in trace.filters if isinstance(f, FailuresWarn)]:
        trace.removeFilter(old_filter)
    trace.addFilter(FailuresWarn(root.level))
    trace.setLevel(min(root.level, logging.INFO))
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread
    return handler


def _log_uncaught(kind: type[BaseException], error: BaseException, tb: Any) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, error, tb)
        return
    logging.getLogger("shiphub").critical("uncaught exception", exc_info=(kind, error, tb))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread else "?"
    logging.getLogger("shiphub").error(
        "uncaught exception in thread %s",
        name,
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),  # type: ignore[arg-type]
    )
