"""The status page in headless Chromium: two bridges on the real broker, one adapter showing both.

Chromium (Debian's ``chromium`` package; ``.ci/run`` installs it) loads ``/status``, runs its
script (``--virtual-time-budget`` lets the fetches finish) and dumps the DOM or takes a
screenshot. Without Chromium the test skips, and fails under ``CI=true``.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from tests.conftest import AMQP_URL, delete_namespace
from tests.procs import bridge_env, free_port, logs, start, stop

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--virtual-time-budget=3000",
]
#: Where a screenshot is kept for a person to look at (README's is docs/status-page.png).
SCREENSHOT_ENV = "OPENQQ_STATUS_SCREENSHOT"


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed (CI=true: must not skip; see .ci/run)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return found


def browse(url: str, *extra: str) -> str:
    """Chromium's output for ``url`` (a fresh profile each time)."""
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [chromium(), *FLAGS, f"--user-data-dir={profile}", *extra, url],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def accounts_in(dom: str) -> dict[str, tuple[str, int, int]]:
    """account -> (state, messages in, messages out) as the rendered page shows them."""
    part = dom.split('<div id="accounts">', 1)[1].split("<script>", 1)[0]
    out = {}
    for block in part.split('<div class="acct" ')[1:]:
        account = re.search(r'data-account="([^"]+)"', block)
        state = re.search(r'data-state="([^"]+)"', block)
        got_in = re.search(r'class="in">(\d+)<', block)
        got_out = re.search(r'class="out">(\d+)<', block)
        assert account and state and got_in and got_out, block
        out[account[1]] = (state[1], int(got_in[1]), int(got_out[1]))
    return out


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def wait_ready(url: str, proc: subprocess.Popen[bytes], where: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode}: {logs(where)}")
        if http_status(url) == 200:
            return
        time.sleep(0.2)
    raise AssertionError(f"{url} not 200 within {timeout}s: {logs(where)}")


def inject(sim_listen: str, content: str) -> None:
    body = msgspec.json.encode(
        {"type": "group_message", "group_uid": 67890, "sender_uid": 456789, "content": content}
    )
    req = urllib.request.Request(f"http://{sim_listen}/sim/inject", data=body, method="POST")
    with urllib.request.urlopen(req, timeout=5) as r:
        assert r.status == 200


@pytest.fixture
def stack(rabbitmq: str, ns: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    """Bridges of accounts alpha and beta (processes), an adapter of alpha showing beta too."""
    chromium()
    procs: list[tuple[subprocess.Popen[bytes], Path]] = []
    where: dict[str, str] = {}
    common = {"AMQP_URL": rabbitmq, "OPENQQ_NAMESPACE": ns, "OPENQQ_SHOW_MESSAGE": "false"}
    try:
        for account in ("alpha", "beta"):
            d = tmp_path / account
            d.mkdir()
            env = bridge_env(
                d,
                OPENQQ_ACCOUNT=account,
                OPENQQ_METRICS_LISTEN=f"127.0.0.1:{free_port()}",
                **common,
            )
            procs.append((start(["bridge"], env, d), d))
            where[f"{account}_sim"] = env["OPENQQ_SIM_LISTEN"]
            where[f"{account}_metrics"] = env["OPENQQ_METRICS_LISTEN"]
        for (proc, d), account in zip(procs, ("alpha", "beta"), strict=True):
            wait_ready(f"http://{where[f'{account}_metrics']}/readyz", proc, d)
        d = tmp_path / "adapter"
        d.mkdir()
        env = bridge_env(d, OPENQQ_ACCOUNT="alpha", OPENQQ_STATUS_ACCOUNTS="beta", **common)
        procs.append((start(["adapter"], env, d), d))
        where["api"] = env["OPENQQ_LISTEN"]
        wait_ready(f"http://{where['api']}/readyz", *procs[-1])
        yield where
    finally:
        for proc, _ in reversed(procs):
            stop(proc)
        asyncio.run(delete_namespace(AMQP_URL, ns, ("alpha", "beta")))


def test_status_page_shows_both_accounts_and_the_counts_move(stack: dict[str, str], tmp_path):
    url = f"http://{stack['api']}/status"
    shown = accounts_in(browse(url, "--dump-dom"))
    assert shown == {"alpha": ("running", 0, 0), "beta": ("running", 0, 0)}

    for i in range(3):
        inject(stack["alpha_sim"], f"a{i}")
    for i in range(2):
        inject(stack["beta_sim"], f"b{i}")
    deadline = time.monotonic() + 20
    while True:
        shown = accounts_in(browse(url, "--dump-dom"))
        if shown == {"alpha": ("running", 3, 0), "beta": ("running", 2, 0)}:
            break
        assert time.monotonic() < deadline, shown
        time.sleep(0.5)

    shot = Path(os.environ.get(SCREENSHOT_ENV) or tmp_path / "status.png")
    browse(url, "--window-size=900,560", f"--screenshot={shot}")
    png = shot.read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (900, 560)
    assert len(png) > 5000  # a blank page compresses to far less
