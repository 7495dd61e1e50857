"""The manual stays true to the repository: every page's commands are walked (the pipeline test
``tests/pipeline/test_run_command.py`` runs them), its links lead somewhere, and the files it
names exist. A module moved, a page renamed or a heading reworded fails here, fast."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.walkthrough import (
    ROOT,
    RUN_FENCE,
    WALKED_PAGES,
    fences,
    manual_pages,
    shell_blocks,
    walked_blocks,
)

# ```sh is run by the walk-through; every other block says what it is (docs/testing.md).
# ```python: a hub's code, run by the test that covers it (tests/test_delivery.py).
FENCES = {RUN_FENCE, "```console", "```text", "```json", "```yaml", "```mermaid", "```python"}
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
# A path of this repository named in backticks: `worker/store/records.py`, `bin/run`.
PATH = re.compile(
    r"`((?:worker|endpoint|shiphub_cli|devstack|simulators|tests|benchmarks|bin|docs|deploy)/[\w./@-]*)`"
)


def anchors(page: Path) -> set[str]:
    """The anchors GitHub gives a page's headings."""
    found: set[str] = set()
    fenced = False
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (heading := re.match(r"^#{1,6} (.+)$", line)):
            slug = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower()).replace(" ", "-")
            candidate, n = slug, 0
            while candidate in found:
                n += 1
                candidate = f"{slug}-{n}"
            found.add(candidate)
    return found


def test_every_page_of_the_manual_is_walked_in_a_declared_order() -> None:
    assert sorted(WALKED_PAGES) == sorted(manual_pages())
    assert len(set(WALKED_PAGES)) == len(WALKED_PAGES)
    assert WALKED_PAGES[0] == "README.md"
    blocks = walked_blocks()
    # The tour comes first: its first command sends the seed's sample to Dotcom.
    assert blocks[0][0] == "README.md" and "dotcom/send_shipment" in blocks[0][2]
    # Every shell block of the manual is one the walk-through runs.
    assert len(blocks) == sum(len(shell_blocks(page)) for page in manual_pages())


@pytest.mark.parametrize("page", manual_pages())
def test_every_block_says_whether_it_runs(page: str) -> None:
    unknown = [fence for fence in fences(page) if fence not in FENCES]
    assert not unknown, f"{page}: fences {unknown}: use one of {sorted(FENCES)}"


@pytest.mark.parametrize("page", manual_pages())
def test_every_link_leads_to_a_page_and_a_heading_that_exist(page: str) -> None:
    source = ROOT / page
    broken = []
    for target in LINK.findall(source.read_text()):
        if re.match(r"^[a-z]+:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        linked = (source.parent / path).resolve() if path else source
        if not linked.exists() or (
            linked.suffix == ".md" and anchor and anchor not in anchors(linked)
        ):
            broken.append(target)
    assert not broken, f"{page}: broken links {broken}"


# What the test run makes (ignored by git): named by the manual, absent from a fresh clone.
MADE_BY_THE_RUN = frozenset({"tests/artifacts/screenshots/"})


@pytest.mark.parametrize("page", manual_pages())
def test_every_file_the_manual_names_exists(page: str) -> None:
    missing = [
        path
        for path in PATH.findall((ROOT / page).read_text())
        if "<" not in path
        and path not in MADE_BY_THE_RUN
        and not (ROOT / path.rstrip(".")).exists()
    ]
    assert not missing, f"{page} names files that do not exist: {missing}"


def test_the_readme_is_a_front_door() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) < 300
    for page in manual_pages()[1:]:
        if page.count("/") == 1:  # every top page of docs/ is linked from the README
            assert f"]({page})" in readme, page


def test_what_the_run_makes_is_ignored_by_git() -> None:
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    for path in MADE_BY_THE_RUN:
        assert any(path.startswith(line.strip()) for line in ignored if line.strip()), path
