"""compose/grafana: the dashboard parses and every query names a metric the code exports."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
from prometheus_client import CollectorRegistry

from bridge.metrics import Metrics

DASHBOARD = Path(__file__).resolve().parents[2] / "compose/grafana/dashboards/openqq-bridge.json"
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def exported() -> set[str]:
    """Every series name a scrape of a process's registry can show."""
    metrics = Metrics(CollectorRegistry())
    assert metrics.registry is not None
    names: set[str] = set()
    for family in metrics.registry.collect():
        names.update(family.name + s for s in SUFFIXES[family.type])
    return names


def queries() -> list[str]:
    doc = msgspec.json.decode(DASHBOARD.read_text())
    return [t["expr"] for p in doc["panels"] for t in p["targets"]]


def test_dashboard_parses_and_has_unique_panel_ids():
    doc = msgspec.json.decode(DASHBOARD.read_text())
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids)) > 10
    assert doc["uid"] == "openqq-bridge"


def test_every_query_names_an_exported_metric():
    names = exported()
    used: set[str] = set()
    for expr in queries():
        found = re.findall(r"\bopenqq_[a-z_]+", expr)
        assert found, f"query names no openqq_ metric: {expr}"
        for name in found:
            assert name in names, f"{name} (in {expr!r}) is not exported"
        used.update(found)
    # The checker itself: a misspelt name is caught.
    assert "openqq_events_publisehd_total" not in names
    # The headline metrics of the issue are on the dashboard.
    assert {
        "openqq_events_published_total",
        "openqq_commands_total",
        "openqq_http_requests_total",
        "openqq_event_buffer_depth",
        "openqq_post_api_backlog",
    } <= used
