"""What the rest of the service asks of the task queue, as plain callables in one bundle.

The Celery app (``worker.tasks.app.dispatch``) is what provides them: it is the composition root and
nothing below it imports it. The receiver is given its ``Dispatch`` at creation
(``endpoint.app.create_app``) rather than importing the Celery app where it needs it; tests give
their own callables.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from worker.pipeline.delivery import SendPush
from worker.pipeline.intake import Enqueue, Publish


@dataclass(frozen=True)
class Dispatch:
    publish: Publish  # a recorded message's task: replays, due retries, the watchdog
    enqueue: Enqueue  # a new message's broker message, written with its record (the intake)
    send_push: SendPush  # a claimed delivery's push task
    ping: Callable[[], None]  # raises unless the broker answers (``/healthz``)
