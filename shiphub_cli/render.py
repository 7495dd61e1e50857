"""Human output: what an operator reads. Scripts use ``--json``, which prints the receiver's own
JSON instead; nothing here is parsed by anyone."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shiphub_cli.receiver import Answer, said

INDENT = "  "


def answer_lines(answer: Answer, where: str) -> list[str]:
    """A hub message's answer: queued, a duplicate with its record, the finished answer of a
    wait, or a wait that ran out (202) with the record so far."""
    body = answer.body
    message_id = body.get("message_id", "?")
    lines = [f"{_status_of(answer)}  {where}  {message_id}"]
    lines += [INDENT + note for note in _notifications(body.get("notifications", []))]
    lines += [INDENT + line for line in _answered(body)]
    if isinstance(body.get("record"), dict):
        lines += [INDENT + line for line in record_lines(body["record"])[1:]]
    return lines


def record_lines(record: dict[str, Any]) -> list[str]:
    """A message's record: its status, attempts, times, errors, answer and delivery."""
    lines = [
        f"{record.get('status')}  {record.get('integration')}/{record.get('service')}  "
        f"{record.get('message_id')}"
    ]
    fields = [
        ("message", record.get("message")),
        ("attempts", f"{record.get('attempts', 0)} (replays {record.get('replays', 0)})"),
        ("received", record.get("received_at")),
        ("started", record.get("started_at")),
        ("finished", record.get("finished_at")),
        ("next attempt", record.get("next_attempt_at")),
        ("last error", record.get("last_error")),
        ("error before", record.get("earlier_error")),
    ]
    lines += [f"{INDENT}{name:<13}{value}" for name, value in fields if value is not None]
    answer = record.get("answer")
    if isinstance(answer, dict):
        said = _notifications(answer.get("notifications", [])) + _answered(answer)
        lines += [f"{INDENT}{'answer' if i == 0 else '':<13}{s}" for i, s in enumerate(said)]
    delivery = record.get("delivery")
    if isinstance(delivery, dict):
        lines.append(f"{INDENT}{'delivery':<13}{_delivery(delivery)}")
    return lines


def dead_lines(dead: dict[str, Any], errors: dict[tuple[str, str], str | None]) -> list[str]:
    """``GET /dead``: dead messages and dead deliveries, each with its last error."""
    lines: list[str] = []
    for kind, title in (("messages", "dead messages"), ("deliveries", "dead deliveries")):
        rows = dead.get(kind, [])
        lines.append(f"{title}: {len(rows) or 'none'}")
        for row in rows:
            key = (row["integration"], row["message_id"])
            lines.append(
                f"{INDENT}{row['integration']}  {row['message_id']}  since {_when(row['since'])}"
            )
            if errors.get(key):
                lines.append(f"{INDENT * 2}last error: {errors[key]}")
    return lines


def listed_lines(
    listing: dict[str, Any], statuses: tuple[str, ...], integration: str | None, store: str | None
) -> list[str]:
    """``GET /messages``: one line per message (status, integration, id, store, since,
    attempts), its last error and, while retrying, its next attempt below it."""
    rows = listing.get("messages", [])
    if not rows:
        where = "".join(
            [f" of {integration}" if integration else "", f" in store {store}" if store else ""]
        )
        return [f"no {' or '.join(statuses)} messages{where}"]
    lines = []
    for row in rows:
        lines.append(
            f"{row['status']}  {row['integration']}  {row['message_id']}  store {row['store']}  "
            f"since {row['since']}  attempts {row['attempts']}"
        )
        if row.get("last_error"):
            lines.append(f"{INDENT * 2}last error: {row['last_error']}")
        if row.get("next_attempt_at"):
            lines.append(f"{INDENT * 2}next attempt: {row['next_attempt_at']}")
    return lines


def _status_of(answer: Answer) -> str:
    body = answer.body
    if answer.status == 202:
        return f"{body.get('status', 'processing')} (the wait ran out)"
    if "status" in body:
        duplicate = isinstance(body.get("record"), dict)
        return f"duplicate, {body['status']}" if duplicate else str(body["status"])
    return "succeeded" if answer.status == 200 else "failed"


def _notifications(notes: list[Any]) -> list[str]:
    return [f"{n.get('level', '?')}: {said(n)}" for n in notes if isinstance(n, dict)]


def _answered(answer: dict[str, Any]) -> list[str]:
    """The messages and parameters an answer carries back to the hub."""
    lines = [_message_line(m) for m in answer.get("messages", []) if isinstance(m, dict)]
    lines += [
        f"parameter {p.get('name')} = {p.get('value')}"
        for p in answer.get("parameters", [])
        if isinstance(p, dict)
    ]
    return lines


def _message_line(message: dict[str, Any]) -> str:
    shipment = (message.get("payload") or {}).get("shipment") or {}
    said = [str(message.get("message"))]
    if number := shipment.get("number"):
        said.append(f"shipment {number}")
    if status := shipment.get("status"):
        said.append(f"status {status}")
    if tracking := shipment.get("tracking_numbers") or shipment.get("tracking"):
        said.append(f"tracking {', '.join(tracking) if isinstance(tracking, list) else tracking}")
    return "  ".join(said)


def _delivery(delivery: dict[str, Any]) -> str:
    said = [f"{delivery.get('status')} after {delivery.get('attempts', 0)} push(es)"]
    if delivery.get("delivered_at"):
        said.append(f"at {delivery['delivered_at']}")
    if delivery.get("next_attempt_at"):
        said.append(f"next push {delivery['next_attempt_at']}")
    if delivery.get("last_error"):
        said.append(f"last error: {delivery['last_error']}")
    return ", ".join(said)


def _when(epoch: Any) -> str:
    try:
        return datetime.fromtimestamp(float(epoch), UTC).isoformat(timespec="seconds")
    except (TypeError, ValueError):
        return str(epoch)
