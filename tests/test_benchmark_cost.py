"""``benchmarks.cost``'s table: a figure short of its target prints GAP and the lines that
explain it; one that meets it, or has none, prints no explanation. (The run itself:
``python -m benchmarks.cost --quick``, docs/benchmarks.md.)"""

from __future__ import annotations

from benchmarks.cost import Figure, handling_gap
from benchmarks.floors import Drain, Handling


def test_a_gap_prints_its_explanation_and_a_met_target_does_not() -> None:
    met = Figure("tasks per push", "1.000", "<= 1.1", True, ["republished: 0"])
    gap = Figure("intake / one round trip", "0.77", ">= 0.80", False, ["CPU (b)/(d) 0.74"])
    plain = Figure("  sealing, per message", "5.3 us")

    assert met.rows() == [f"{'tasks per push':<50} {'1.000':<44} {'<= 1.1':<12} met"]
    first, why = gap.rows()
    assert first.endswith("GAP") and why == "    CPU (b)/(d) 0.74"
    assert plain.rows() == [f"{'  sealing, per message':<50} 5.3 us"]


def test_a_handling_gap_names_what_bound_the_drain() -> None:
    busy = Drain(rate=64, cpu_ms=11.4, cores=0.73, others={}, machine=0.95)
    floor = Drain(rate=150, cpu_ms=2.5, cores=0.38, others={}, machine=0.34)
    row = Handling(1, 160, floor, busy, handler_ms=161, provider_ms=136, threads_busy=0.64)

    lines = handling_gap(row)

    assert "floor (tasks that only sleep 100 ms) reached 0.94" in lines[0]
    assert "a handler ran 161 ms on average (its provider call 136 ms)" in lines[1]
    assert any("bound by CPU" in line for line in lines)  # the machine was 95 % busy
    assert any("Celery's consumer thread" in line for line in lines)  # threads 64 % in handlers
    assert lines[-1] == "see docs/benchmarks.md#where-the-gaps-are"

    quiet = Handling(1, 160, floor, Drain(150, 3.0, 0.5, {}, 0.4), 101, 100, 0.95)
    assert not any("bound by CPU" in x or "consumer" in x for x in handling_gap(quiet))
