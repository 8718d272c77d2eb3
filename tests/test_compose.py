"""compose/: the file parses, the adapter's stop grace covers rpc_timeout, the build context is lean."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bridge.config import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "compose" / "docker-compose.yml"


def _seconds(duration: str) -> float:
    """A Compose duration such as ``40s``, ``1m30s`` or ``500ms``, in seconds."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(n) * units[u] for n, u in parts)


def _compose() -> dict[str, object]:
    yaml = pytest.importorskip("yaml")
    doc = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(doc, dict)
    return doc


def test_adapter_stop_grace_covers_rpc_timeout():
    services = _compose()["services"]
    assert isinstance(services, dict)
    grace = services["adapter"].get("stop_grace_period")
    assert grace is not None, "the adapter needs a stop_grace_period (Docker's default is 10 s)"
    assert _seconds(grace) >= Settings().rpc_timeout


def test_build_context_ignores_venv_and_git_but_not_what_the_image_copies():
    services = _compose()["services"]
    assert isinstance(services, dict)
    contexts = {
        (COMPOSE.parent / s["build"]["context"]).resolve()
        for s in services.values()
        if "build" in s
    }
    assert contexts == {ROOT}
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {
        ".venv",
        ".git",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
        "**/__pycache__",
    } <= ignored
    dockerfile = (ROOT / "compose" / "Dockerfile").read_text()
    copied = [
        src
        for line in re.findall(r"^COPY (.+)$", dockerfile, re.MULTILINE)
        for src in line.split()[:-1]
    ]
    assert copied and not set(copied) & ignored


def test_durations_parse():
    assert _seconds("40s") == 40
    assert _seconds("1m30s") == 90


def test_bridge_and_adapter_health_checks_ask_readyz():
    services = _compose()["services"]
    assert isinstance(services, dict)
    assert "OPENQQ_METRICS_LISTEN" in services["bridge"]["environment"]
    port = services["bridge"]["environment"]["OPENQQ_METRICS_LISTEN"].rsplit(":", 1)[1]
    for name, where in (("bridge", f"127.0.0.1:{port}"), ("adapter", "127.0.0.1:5000")):
        check = services[name].get("healthcheck")
        assert check is not None, f"{name} has no healthcheck"
        assert any(f"http://{where}/readyz" in part for part in check["test"]), check


def test_prometheus_scrapes_bridge_adapter_controller_and_grafana_is_provisioned():
    yaml = pytest.importorskip("yaml")
    services = _compose()["services"]
    assert isinstance(services, dict)
    prom = yaml.safe_load((COMPOSE.parent / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j["static_configs"][0]["targets"] for j in prom["scrape_configs"]}
    assert set(jobs) == {"bridge", "adapter", "controller"}
    bridge_port = services["bridge"]["environment"]["OPENQQ_METRICS_LISTEN"].rsplit(":", 1)[1]
    assert jobs["bridge"] == [f"bridge:{bridge_port}"]
    assert jobs["adapter"] == ["adapter:5000"]
    assert "./prometheus.yml" in {v.split(":")[0] for v in services["prometheus"]["volumes"]}
    mounts = {v.split(":")[0]: v.split(":")[1] for v in services["grafana"]["volumes"]}
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    dashboards = yaml.safe_load(
        (COMPOSE.parent / "grafana/provisioning/dashboards/openqq.yml").read_text()
    )
    assert dashboards["providers"][0]["options"]["path"] == mounts["./grafana/dashboards"]
    sources = yaml.safe_load(
        (COMPOSE.parent / "grafana/provisioning/datasources/prometheus.yml").read_text()
    )
    assert sources["datasources"][0]["url"] == "http://prometheus:9090"
