"""The Procfile's flower line bounds what Flower keeps in memory: without ``--max_tasks`` it
keeps 100,000 tasks (Flower's default), about 2 per message, and grows with every message until
then (``python -m benchmarks.flower`` measures it)."""

from __future__ import annotations

import re
import shlex

from tests.support.stack import ROOT

DOCUMENTED_DEFAULT = 10_000


def procfile_line(name: str, env: dict[str, str]) -> list[str]:
    """A Procfile line's words, its ``${NAME:-default}`` expanded from ``env`` as a shell would."""
    line = next(
        x.split(":", 1)[1]
        for x in (ROOT / "Procfile").read_text().splitlines()
        if x.split(":", 1)[0] == name
    )
    expanded = re.sub(
        r"\$\{(\w+):-([^}]*)\}", lambda m: env.get(m.group(1)) or m.group(2), line.strip()
    )
    return shlex.split(expanded)


def max_tasks(words: list[str]) -> int | None:
    found = [w.split("=", 1)[1] for w in words if w.startswith("--max_tasks=")]
    return int(found[0]) if found else None


def test_flowers_line_keeps_at_most_flower_max_tasks_tasks_by_default_10000() -> None:
    assert max_tasks(procfile_line("flower", {})) == DOCUMENTED_DEFAULT


def test_flower_max_tasks_sets_the_bound() -> None:
    assert max_tasks(procfile_line("flower", {"FLOWER_MAX_TASKS": "2500"})) == 2500


def test_the_bound_and_its_default_are_on_the_configuration_page() -> None:
    page = (ROOT / "docs" / "configuration.md").read_text()
    row = next((x for x in page.splitlines() if x.startswith("| `FLOWER_MAX_TASKS`")), "")
    assert "10000" in row.replace(",", ""), row
