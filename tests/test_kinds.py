"""Every test is classified unit, pipeline or browser by the rule in tests/support/kinds.py,
and the fast run's guard stops a test that starts a process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import PurePath

import pytest

from tests.support.kinds import KINDS, ProcessStarted, forbid_processes, kind_of

TESTS = PurePath("tests")


def test_a_test_on_fakeredis_is_unit() -> None:
    assert kind_of(TESTS / "test_receiver.py", ["client", "records", "redis_client"], []) == "unit"


@pytest.mark.parametrize("fixture", ["redis_server", "stack", "simulator_process", "group"])
def test_a_test_using_a_process_fixture_is_pipeline(fixture: str) -> None:
    assert kind_of(TESTS / "dotcom" / "test_client.py", ["sim", fixture], []) == "pipeline"


@pytest.mark.parametrize(
    "path",
    [TESTS / "pipeline" / "test_watchdog.py", TESTS / "dotcom" / "test_tracking_pipeline.py"],
)
def test_a_test_in_a_pipeline_folder_or_file_is_pipeline(path: PurePath) -> None:
    assert kind_of(path, [], []) == "pipeline"


def test_a_test_marked_pipeline_by_hand_stays_pipeline() -> None:
    assert kind_of(TESTS / "cli" / "test_failures.py", [], ["pipeline"]) == "pipeline"


def test_a_browser_test_is_browser_though_it_uses_a_stack_too() -> None:
    assert kind_of(TESTS / "ops" / "test_ops_browser.py", ["ops_stack"], []) == "browser"
    assert kind_of(TESTS / "ops" / "test_x.py", ["bare_browser", "redis_server"], []) == "browser"


def test_collection_gave_this_test_exactly_one_kind(request: pytest.FixtureRequest) -> None:
    kinds = [kind for kind in KINDS if request.node.get_closest_marker(kind)]
    assert kinds == ["unit"]


def test_with_processes_forbidden_starting_one_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(subprocess.Popen, "__init__", subprocess.Popen.__init__)  # put back after
    forbid_processes()

    with pytest.raises(ProcessStarted, match="pipeline test"):
        subprocess.run([sys.executable, "-c", "pass"], check=True)
