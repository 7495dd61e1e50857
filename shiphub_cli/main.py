"""``shiphub``: the operator's command line (to be written)."""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    return 0
