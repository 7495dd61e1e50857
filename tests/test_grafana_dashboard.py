"""The Grafana dashboard in ``docs/grafana/shiphub.json``: an importable dashboard (a uid, a
title, panels with ids of their own and a place on the grid, a Prometheus datasource chosen by a
variable), every query of which names only metrics ``GET /metrics`` exports."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from endpoint.metrics import render
from worker.integrations import registry
from worker.store.bundle import Store

DASHBOARD = Path(__file__).resolve().parents[1] / "docs" / "grafana" / "shiphub.json"
# A metric's samples as exposed, by its family's type.
SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "gauge": ("",),
}
METRIC = re.compile(r"\bshiphub_[a-z0-9_]+\b")


@pytest.fixture
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def exported(db: Store) -> set[str]:
    """Every sample name ``GET /metrics`` can show, read from its own output."""
    names = set()
    for family in text_string_to_metric_families(render(db)):
        names |= {family.name + suffix for suffix in SUFFIXES.get(family.type, ("",))}
    return names


def queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, query) for every panel target's ``expr`` and every query variable."""
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield f"panel {panel['id']} {panel['title']!r} {target['refId']}", target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            yield f"variable {variable['name']}", variable["query"]["query"]


def unknown_metrics(query: str, known: set[str]) -> set[str]:
    return set(METRIC.findall(query)) - known


def test_every_query_names_only_metrics_the_service_exports(
    db: Store, dashboard: dict[str, Any]
) -> None:
    registry.load("")
    known = exported(db)
    assert {"shiphub_messages_total", "shiphub_stale_shipments"} <= known
    assert "shiphub_handler_duration_seconds_bucket" in known
    found = list(queries(dashboard))
    assert len(found) >= 15
    for where, query in found:
        assert METRIC.search(query), f"{where} names no shiphub metric: {query}"
        assert not unknown_metrics(query, known), f"{where}: {query}"


def test_a_query_naming_a_metric_we_do_not_export_is_caught(db: Store) -> None:
    known = exported(db)
    assert unknown_metrics("rate(shiphub_messages_total[5m])", known) == set()
    assert unknown_metrics("rate(shiphub_messages[5m])", known) == {"shiphub_messages"}
    assert unknown_metrics("shiphub_stale_shipments_total", known) == {
        "shiphub_stale_shipments_total"
    }


def test_the_dashboard_can_be_imported(dashboard: dict[str, Any]) -> None:
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", dashboard["uid"])
    assert dashboard["title"] and isinstance(dashboard["schemaVersion"], int)
    panels = dashboard["panels"]
    ids = [p["id"] for p in panels]
    assert all(isinstance(i, int) for i in ids) and len(set(ids)) == len(ids)
    (source,) = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
    assert source["query"] == "prometheus"
    chosen = {"type": "prometheus", "uid": f"${{{source['name']}}}"}
    for panel in panels:
        place = panel["gridPos"]
        assert {"h", "w", "x", "y"} <= set(place) and place["x"] + place["w"] <= 24, panel["title"]
        assert panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == chosen, panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(set(refs)) == len(refs), panel["title"]
        assert all(t["datasource"] == chosen for t in panel["targets"]), panel["title"]
