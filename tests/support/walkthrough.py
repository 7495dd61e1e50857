"""The manual's commands, as the walk-through test runs them (docs/testing.md, "The manual's
commands are a test").

Every ```` ```sh ```` block of the README, then of each page of ``docs/`` in the order of
``WALKED_PAGES``, is run right after ``bin/run``: a block that must not run there (setting up a
machine, another host, a benchmark) is fenced ```` ```console ```` instead. Every page of the
manual is listed here, so a new page's commands cannot be left out unnoticed.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# In this order: the README's tour, then what an operator runs (the command line, metrics, /ops,
# logs), then the HTTP interface (OpenAPI, fuzzing), then the rest.
WALKED_PAGES: tuple[str, ...] = (
    "README.md",
    "docs/operations.md",
    "docs/http.md",
    "docs/configuration.md",
    "docs/integrations.md",
    "docs/integrations/dotcom.md",
    "docs/integrations/shipping_orders.md",
    "docs/integrations/ecomdash.md",
    "docs/integrations/duoplane.md",
    "docs/integrations/spectrum.md",
    "docs/deployment.md",
    "docs/guarantees.md",
    "docs/architecture.md",
    "docs/benchmarks.md",
    "docs/testing.md",
)
RUN_FENCE = "```sh"


def manual_pages() -> list[str]:
    """The README and every page under ``docs/``, as paths from the repository root."""
    return ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").rglob("*.md"))]


def shell_blocks(page: str) -> list[str]:
    """The ``sh`` blocks of one page, in order."""
    blocks, block = [], None
    for line in (ROOT / page).read_text().splitlines():
        if block is None and line.strip() == RUN_FENCE:
            block = []
        elif block is not None and line.startswith("```"):
            blocks.append("\n".join(block))
            block = None
        elif block is not None:
            block.append(line)
    return blocks


def walked_blocks() -> list[tuple[str, int, str]]:
    """(page, block number on the page, the block) for every block the walk-through runs."""
    unlisted = set(manual_pages()) - set(WALKED_PAGES)
    if unlisted:
        raise AssertionError(f"pages missing from WALKED_PAGES: {sorted(unlisted)}")
    return [
        (page, n, block) for page in WALKED_PAGES for n, block in enumerate(shell_blocks(page), 1)
    ]


def fences(page: str) -> list[str]:
    """Every opening fence of a page (```` ```sh ````, ```` ```console ````...)."""
    opened, found = False, []
    for line in (ROOT / page).read_text().splitlines():
        if re.match(r"^\s*```", line):
            if not opened:
                found.append(line.strip())
            opened = not opened
    return found
