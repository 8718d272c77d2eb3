"""The benchmark harness keeps working: every part runs in its quick mode and prints a table."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.rabbitmq


def test_bench_quick_mode_prints_every_part(rabbitmq):
    if shutil.which("wrk") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("wrk is not installed (.ci/run installs it)")
        pytest.skip("wrk is not installed (apt-get install wrk)")
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "AMQP_URL": rabbitmq},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    table = done.stdout
    for part in ("| ingest |", "| sends |", "| reads |", "| latency |", "| scale |"):
        assert part in table
    # Every measured figure and limit is a number, not a failure.
    for line in table.splitlines():
        if line.startswith("| ") and not line.startswith(("| part", "|---")):
            cells = [c.strip() for c in line.strip("|").split("|")]
            assert cells[2][0].isdigit(), line
