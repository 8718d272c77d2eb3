"""What a controller keeps per account: RSS of ``openqq-bridge controller`` for N accounts.

``python -m bench.controller_memory [--accounts 20] [--friends F --groups G --members M]``
starts a controller (RabbitMQ at AMQP_URL) in a fresh namespace, measures its RSS with no
account, starts N simulated accounts with ``start_client``, waits until every one runs and
its contact replica is loaded, and measures again. The bridges are separate processes and
not counted: the figure is the controller's own cost (contact replica, check_event buffer,
post_api forwarder, RPC client, HTTP port per account). Everything is stopped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import msgspec

from bench.common import AMQP_URL, free_port, rss_mb


def _get(base: str, path: str) -> dict:  # type: ignore[type-arg]
    with urllib.request.urlopen(base + path, timeout=60) as r:
        return msgspec.json.decode(r.read())  # type: ignore[no-any-return]


def _settle(pid: int, seconds: float = 3.0) -> float:
    time.sleep(seconds)
    return rss_mb(pid)


def measure(accounts: int, friends: int, groups: int, members: int) -> dict[str, float]:
    """RSS of the controller before and after ``accounts`` accounts, in MB."""
    ns = f"bench-{uuid.uuid4().hex[:8]}"
    tmp = Path(tempfile.mkdtemp(prefix="ctlmem-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENQQ_")}
    env.update(
        AMQP_URL=AMQP_URL,
        OPENQQ_NAMESPACE=ns,
        OPENQQ_TMPDIR=str(tmp),
        OPENQQ_CONTROLLER_LISTEN=f"127.0.0.1:{port}",
        OPENQQ_BACKEND_START_PORT=str(free_port()),
        OPENQQ_SIM_LOGIN_DELAY="0",
        OPENQQ_SHOW_MESSAGE="false",
        OPENQQ_SIM_FRIENDS=str(friends),
        OPENQQ_SIM_GROUPS=str(groups),
        OPENQQ_SIM_MEMBERS=str(members),
    )
    with (tmp / "controller.log").open("wb") as log:
        ctl = subprocess.Popen(
            [sys.executable, "-m", "bridge", "controller"], env=env, stdout=log, stderr=log
        )
    names = [f"m{i:02d}" for i in range(accounts)]
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                _get(base, "/openqq/check_client")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        before = _settle(ctl.pid)
        for name in names:
            _get(base, f"/openqq/start_client?client={name}")
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            states = {c["client"]: c["state"] for c in _get(base, "/openqq/check_client")["client"]}
            if all(states.get(n) == "running" for n in names):
                break
            time.sleep(1)
        # Each replica loads after its account runs; read once through each so all are ready.
        for name in names:
            _get(base, f"/openqq/get_user_info?client={name}")
        after = _settle(ctl.pid, 10.0)
        return {
            "before_mb": before,
            "after_mb": after,
            "per_account_mb": (after - before) / accounts,
        }
    finally:
        with contextlib.suppress(OSError):
            for name in names:
                _get(base, f"/openqq/stop_client?client={name}")
        ctl.send_signal(signal.SIGTERM)
        ctl.wait(30)
        asyncio.run(_cleanup(ns, names))


async def _cleanup(ns: str, accounts: list[str]) -> None:
    from tests.conftest import delete_namespace

    await delete_namespace(AMQP_URL, ns, tuple(accounts))


def main() -> None:
    """Command line."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--accounts", type=int, default=20)
    p.add_argument("--friends", type=int, default=0)
    p.add_argument("--groups", type=int, default=0)
    p.add_argument("--members", type=int, default=0)
    a = p.parse_args()
    r = measure(a.accounts, a.friends, a.groups, a.members)
    print(
        f"{a.accounts} accounts (world +{a.friends} friends, +{a.groups} groups x {a.members}"
        f" members): controller RSS {r['before_mb']:.1f} MB -> {r['after_mb']:.1f} MB,"
        f" {r['per_account_mb']:.2f} MB per account"
    )


if __name__ == "__main__":
    main()
