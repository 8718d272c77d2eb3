"""The quick subset (``-m "not rabbitmq"``) must not touch the broker.

Run as a plugin (``-p tests.test_markers``) in a child pytest, this module reports for every
collected test whether it uses the broker: the ``rabbitmq`` fixture anywhere in its fixture
closure, or a parameter whose value is ``"rabbitmq"`` (the parametrized bus fixture).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

ROOT = Path(__file__).resolve().parent.parent
REPORT_ENV = "OPENQQ_TEST_BROKER_REPORT"
PYTEST = (sys.executable, "-m", "pytest", "-p", "no:cacheprovider")


def _uses_broker(item: pytest.Item) -> bool:
    callspec = getattr(item, "callspec", None)
    params = callspec.params.values() if callspec is not None else ()
    return "rabbitmq" in getattr(item, "fixturenames", ()) or any(
        isinstance(v, str) and v == "rabbitmq" for v in params
    )


def _report(kind: str, items: list[pytest.Item]) -> None:
    path = os.environ.get(REPORT_ENV)
    if path:
        rows = [[kind, item.nodeid, _uses_broker(item)] for item in items]
        with Path(path).open("ab") as f:
            f.writelines(msgspec.json.encode(r) + b"\n" for r in rows)


def pytest_deselected(items: list[pytest.Item]) -> None:
    _report("deselected", items)


def pytest_collection_finish(session: pytest.Session) -> None:
    _report("selected", session.items)


def test_not_rabbitmq_selects_no_test_that_uses_the_broker(tmp_path):
    report = tmp_path / "report.jsonl"
    done = subprocess.run(
        [
            *PYTEST,
            "--collect-only",
            "-q",
            "-p",
            "tests.test_markers",
            "-m",
            "not rabbitmq",
            "tests",
        ],
        cwd=ROOT,
        env={**os.environ, REPORT_ENV: str(report)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [msgspec.json.decode(line) for line in report.read_bytes().splitlines()]
    selected = [nodeid for kind, nodeid, _ in rows if kind == "selected"]
    leaked = [nodeid for kind, nodeid, broker in rows if kind == "selected" and broker]
    caught = [nodeid for kind, nodeid, broker in rows if kind == "deselected" and broker]
    assert len(selected) > 100, done.stdout
    assert leaked == [], f"unmarked tests use the broker: {leaked}"
    # The check sees both kinds of broker use, so it would notice them unmarked.
    assert any("[rabbitmq" in n for n in caught)
    assert any("[" not in n for n in caught)
