"""`shiphub check` reads a Sentinel REDIS_URL as the service does (no stack needed)."""

from __future__ import annotations

from shiphub_cli.checks import _redis


def test_a_sentinel_url_is_checked_as_a_sentinel_url_not_refused_as_no_redis_url() -> None:
    found = _redis("sentinel://127.0.0.1:1;sentinel://127.0.0.1:2/0", "mymaster")

    assert found.level == "problem"
    assert "not a Redis URL" not in found.detail
    assert "does not answer" in found.detail
