"""Error types shared by every integration: the one place that decides what is retried.

* ``TransientError``: worth another try later (timeouts, connection errors, 5xx, 429, errors the
  provider itself marks transient). Retried with bounded, jittered exponential back-off; when
  the attempts run out the message is dead (listed, replayable).
* ``HardError``: another try cannot help (validation, 4xx, business refusals). Not retried; each
  reason becomes an error notification carrying the provider's own words.
"""

from __future__ import annotations

from collections.abc import Sequence


class ProviderError(Exception):
    def __init__(
        self, subject: str, reasons: Sequence[str] = (), *, status: int | None = None
    ) -> None:
        self.subject = subject
        self.status = status  # the provider's HTTP status, when the error is an HTTP answer
        self.reasons = [r for r in reasons if r] or [subject]
        super().__init__(subject if not reasons else f"{subject}: {'; '.join(self.reasons)}")


class HardError(ProviderError):
    """The provider (or our own validation) refused; retrying cannot help."""


class TransientError(ProviderError):
    """Worth retrying; ``retry_after`` is the provider's own hint in seconds, if it gave one."""

    def __init__(
        self,
        subject: str,
        reasons: Sequence[str] = (),
        retry_after: float | None = None,
        *,
        status: int | None = None,
    ) -> None:
        super().__init__(subject, reasons, status=status)
        self.retry_after = retry_after


class MissingParameter(HardError):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"Missing parameter {name!r}",
            [f"Parameter {name!r} is required: send it with the message or configure it."],
        )
