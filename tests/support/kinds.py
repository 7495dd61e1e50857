"""Which kind a test is (unit, pipeline or browser), decided from what it uses, so a new test is
classified without anyone marking it; and the guard that proves the fast set starts no process.

The rule, in order (the first that applies wins; a test has exactly one kind):

1. ``browser``: its file's name has "browser" in it, or it uses a fixture that starts Chromium.
2. ``pipeline``: it is marked ``pipeline`` by hand (a module's ``pytestmark``, for a process
   started in the test's body or by a fixture of that module), it lives in ``tests/pipeline/``
   or ``tests/sentinel/`` or a file named ``*_pipeline.py``, or it uses (directly or through
   another fixture) a fixture that starts a real process: redis-server, a simulator, gunicorn,
   a Celery worker (``PROCESS_FIXTURES``).
3. ``unit``: everything else (fakeredis, Flask's test client, threads serving HTTP in-process).

``slow`` is independent: a test marked ``@pytest.mark.slow`` by hand, because on its own it takes
more than about five seconds (``python -m pytest --durations=20`` shows which).

With ``SHIPHUB_TESTS_NO_PROCESSES=1`` (``bin/test-fast`` sets it) starting any process raises,
so a test that starts one but was classified ``unit`` fails in the fast run, naming itself.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable
from pathlib import PurePath
from typing import Any

KINDS = ("unit", "pipeline", "browser")

# Fixtures that start a real process. A fixture built on one of these (every provider's stack is
# built on redis_server and simulator_process) needs no entry: pytest lists the fixtures a test
# uses through others in its fixturenames.
PROCESS_FIXTURES = frozenset(
    {
        "redis_server",  # tests/pipeline/conftest.py: a real redis-server
        "stack",  # the pipeline's (gunicorn + a Celery worker) and ecomdash's (its own Redis too)
        "simulator_process",  # each provider's simulator, a process of its own
        "group",  # tests/sentinel: redis-servers and sentinels
        "acme_ops",  # tests/ops/test_ops_failed.py: a stack on a Redis of its own
    }
)
BROWSER_FIXTURES = frozenset({"browser", "bare_browser"})
PIPELINE_FOLDERS = frozenset({"pipeline", "sentinel"})

NO_PROCESSES = "SHIPHUB_TESTS_NO_PROCESSES"


def kind_of(path: PurePath, fixturenames: Iterable[str], marked: Iterable[str]) -> str:
    """The kind of the test in ``path`` that uses ``fixturenames`` and carries marks ``marked``."""
    fixtures = set(fixturenames)
    marks = set(marked)
    if "browser" in marks or "browser" in path.name or fixtures & BROWSER_FIXTURES:
        return "browser"
    if (
        "pipeline" in marks
        or path.parent.name in PIPELINE_FOLDERS
        or path.stem.endswith("_pipeline")
        or fixtures & PROCESS_FIXTURES
    ):
        return "pipeline"
    return "unit"


class ProcessStarted(RuntimeError):
    """A test classified unit started a process."""


def forbid_processes() -> None:
    """Make starting any process raise (every way to start one goes through ``Popen``)."""

    def refuse(self: subprocess.Popen[Any], args: Any, *rest: Any, **options: Any) -> None:
        raise ProcessStarted(
            f"{NO_PROCESSES} is set and a test started a process ({args!r}): a test that "
            "starts one is a pipeline test; see tests/support/kinds.py for the rule"
        )

    subprocess.Popen.__init__ = refuse  # type: ignore[method-assign]


def processes_forbidden() -> bool:
    return os.environ.get(NO_PROCESSES, "") not in ("", "0")
