"""The cluster script without a cluster: its ports, its environment, and what stop may kill."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.cluster.rabbit import (
    MARKER,
    Cluster,
    ClusterError,
    Layout,
    _json,
    env_port,
    marked_pids,
)

MACHINE_PORTS = {5672, 25672, 4369, 15672}


def test_slots_ten_apart_never_share_a_port_nor_take_the_machines() -> None:
    ports = [set(Layout(5681 + 10 * n).all_ports()) for n in range(10)]
    for n, mine in enumerate(ports):
        assert len(mine) == 7
        assert not mine & MACHINE_PORTS
        for other in ports[n + 1 :]:
            assert not mine & other


@pytest.mark.parametrize("port", [80, 5670, 5672, 65535])
def test_a_base_port_that_cannot_work_is_refused(port: int) -> None:
    with pytest.raises(ClusterError, match=str(port)):
        Layout(port)


def test_env_port_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENQQ_CLUSTER_PORT", "56x")
    with pytest.raises(ClusterError, match="OPENQQ_CLUSTER_PORT='56x'"):
        env_port()
    monkeypatch.setenv("OPENQQ_CLUSTER_PORT", "5701")
    assert env_port() == 5701


def test_node_env_is_private_whatever_the_callers_env_says(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # What /etc/rabbitmq/rabbitmq-env.conf and a shell may hold for the machine's node.
    monkeypatch.setenv("RABBITMQ_NODENAME", "rabbit@localhost")
    monkeypatch.setenv("RABBITMQ_CONF_ENV_FILE", "/etc/rabbitmq/rabbitmq-env.conf")
    monkeypatch.setenv("ERL_EPMD_PORT", "4369")
    c = Cluster(Layout(5681, root=tmp_path))
    envs = [c.env(i) for i in c.layout.nodes]
    for key in (
        "RABBITMQ_NODENAME",
        "RABBITMQ_NODE_PORT",
        "RABBITMQ_DIST_PORT",
        "RABBITMQ_CONFIG_FILE",
        "RABBITMQ_MNESIA_BASE",
        "RABBITMQ_LOG_BASE",
        "RABBITMQ_ENABLED_PLUGINS_FILE",
        "RABBITMQ_PID_FILE",
    ):
        assert len({e[key] for e in envs}) == 3, key
    for e in envs:
        assert e["RABBITMQ_NODENAME"] != "rabbit@localhost"
        assert e["ERL_EPMD_PORT"] == "25690"
        assert e["HOME"] == str(tmp_path / "openqq-cluster-5681" / "home")
        assert e["RABBITMQ_CONF_ENV_FILE"].startswith(str(tmp_path))
        assert "+S 1:1" in e["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"]


def test_cli_json_is_found_after_informational_lines() -> None:
    out = 'Timeout: 60.0 seconds ...\nListing queues ...\n[\n{"name":"q","leader":"rabbit-2@localhost"}\n]\n'
    assert _json(out) == [{"name": "q", "leader": "rabbit-2@localhost"}]
    with pytest.raises(ClusterError, match="no JSON"):
        _json("Error: nothing\n")


def test_stop_kills_exactly_the_processes_of_its_cluster(tmp_path: Path) -> None:
    c = Cluster(Layout(5981, root=tmp_path))
    c.layout.base.mkdir()
    ours = subprocess.Popen(["sleep", "60"], env={MARKER: str(c.layout.base)})
    other_cluster = subprocess.Popen(["sleep", "60"], env={MARKER: str(tmp_path / "elsewhere")})
    unmarked = subprocess.Popen(["sleep", "60"])
    try:
        assert list(marked_pids(MARKER, str(c.layout.base))) == [ours.pid]
        c.stop()
        assert ours.wait(5) == -9
        assert other_cluster.poll() is None
        assert unmarked.poll() is None
        assert not c.layout.base.exists()
    finally:
        for p in (ours, other_cluster, unmarked):
            p.kill()
            p.wait()
