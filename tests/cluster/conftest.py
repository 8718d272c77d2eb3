"""The ``cluster`` fixture: a private 3-node RabbitMQ cluster for the whole test session.

The cluster is started once per session (tests/cluster/rabbit.py), on the first free base port
(5681, 5691, ...; ``OPENQQ_CLUSTER_PORT`` forces one), and removed at the end. After every test
that used it, nodes a test stopped or killed are started again and the cluster is waited
healthy, so each test begins with 3 running nodes. Under CI=true a cluster that cannot start
fails the tests with the node's log; elsewhere they are skipped only when RabbitMQ is not
installed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from tests.cluster.rabbit import BIN, Cluster, ClusterError, pick_layout


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that uses the cluster is marked ``cluster`` and ``slow``, forgotten or not."""
    for item in items:
        if "cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.cluster)
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """A running private 3-node cluster: ``.urls``, ``.kill(i)``, ``.stop_node(i)``, ..."""
    if not (BIN / "rabbitmq-server").exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"RabbitMQ is not installed ({BIN}/rabbitmq-server): CI=true must not skip")
        pytest.skip(f"RabbitMQ is not installed ({BIN}/rabbitmq-server)")
    try:
        c = Cluster(pick_layout(), owner=os.getpid())
        took = c.start()
    except ClusterError as e:
        pytest.fail(f"the private RabbitMQ cluster did not start: {e}", pytrace=False)
    print(f"\nFIGURES cluster-start: 3 nodes on {c.layout.port}.. in {took:.1f} s")
    yield c
    began = time.monotonic()
    c.stop()
    print(f"\nFIGURES cluster-stop: {time.monotonic() - began:.1f} s")


@pytest.fixture(autouse=True)
def _heal_cluster(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a test that used the cluster: every node running and clustered again."""
    yield
    if "cluster" not in request.fixturenames:
        return
    try:
        c: Cluster = request.getfixturevalue("cluster")
    except (pytest.fail.Exception, pytest.skip.Exception):
        return  # no cluster came up: the test already says why
    for i in c.layout.nodes:
        if c.node_pid(i) is None:
            c.start_node(i)
    c.wait_healthy()
