"""Error types shared by every integration: the one place that decides what is retried.

* ``TransientError``: worth another try later (timeouts, connection errors, 5xx, 429, errors the
  provider itself marks transient). Retried with bounded, jittered exponential back-off; when
  the attempts run out the message is dead (listed, replayable).
* ``HardError``: another try cannot help (validation, 4xx, business refusals). Not retried; each
  reason becomes an error notification carrying the provider's own words.
* ``ConfigurationError``: not about a message at all: a setting is invalid, and the process
  stops at start-up rather than fail every message it would take.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import NoReturn


class ProviderError(Exception):
    def __init__(
        self,
        subject: str,
        reasons: Sequence[str] = (),
        *,
        status: int | None = None,
        code: str | None = None,
    ) -> None:
        self.subject = subject
        self.status = status  # the provider's HTTP status, when the error is an HTTP answer
        self.code = code  # the provider's own error type ("PLACE_ORDER_FAILED"), when it gives one
        self.reasons = [r for r in reasons if r] or [subject]
        super().__init__(subject if not reasons else f"{subject}: {'; '.join(self.reasons)}")


class HardError(ProviderError):
    """The provider (or our own validation) refused; retrying cannot help."""


class TransientError(ProviderError):
    """Worth retrying; ``retry_after`` is the provider's own hint in seconds, if it gave one
    (honoured up to the back-off's cap). ``not_before`` is a wait the next attempt must not
    come before, cap or not: an earlier call may still land until then."""

    def __init__(
        self,
        subject: str,
        reasons: Sequence[str] = (),
        retry_after: float | None = None,
        *,
        status: int | None = None,
        code: str | None = None,
        not_before: float | None = None,
    ) -> None:
        super().__init__(subject, reasons, status=status, code=code)
        self.retry_after = retry_after
        self.not_before = not_before


class WaitUntil(Exception):
    """The handler may not go on before ``at`` (epoch seconds), by a limit we impose ourselves (a
    provider's pace, a concurrency limit): its attempt ends and the message comes back then,
    holding no thread meanwhile. It is not a failed attempt."""

    def __init__(self, at: float, why: str) -> None:
        super().__init__(why)
        self.at = at
        self.why = why


class MissingParameter(HardError):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"Missing parameter {name!r}",
            [f"Parameter {name!r} is required: send it with the message or configure it."],
        )


class ConfigurationError(SystemExit):
    """An invalid setting: the process stops at start-up, saying which variable is wrong.

    The exit status is 3, gunicorn's "worker failed to boot": with it gunicorn's master stops
    too, where any other status has it start new workers, failing the same way, forever. As the
    status is a number, Python prints nothing: ``refuse_to_start`` prints ``message`` first."""

    EXIT_STATUS = 3

    def __init__(self, message: str) -> None:
        super().__init__(self.EXIT_STATUS)
        self.message = message

    def __str__(self) -> str:
        return self.message


def refuse_to_start(message: str) -> NoReturn:
    """Stop the starting process over a setting: say why on stderr, then exit with status 3."""
    print(f"shiphub: {message}", file=sys.stderr, flush=True)
    raise ConfigurationError(message)
