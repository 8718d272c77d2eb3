"""Helpers to run ``openqq-bridge`` as a real process in tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import msgspec


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bridge_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENQQ_") and k != "AMQP_URL"}
    env.update(
        OPENQQ_TMPDIR=str(tmp_path),
        OPENQQ_SIM_LOGIN_DELAY="0",
        OPENQQ_SIM_LISTEN=f"127.0.0.1:{free_port()}",
        OPENQQ_LISTEN=f"127.0.0.1:{free_port()}",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def start(args: list[str], env: dict[str, str], tmp_path: Path) -> subprocess.Popen[bytes]:
    # The child keeps its own copies of the descriptors; ours close right away.
    with (tmp_path / "stdout.log").open("wb") as out, (tmp_path / "stderr.log").open("wb") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "bridge", *args], env=env, stdout=out, stderr=err
        )


def wait_state(
    tmp_path: Path, state: str, proc: subprocess.Popen[bytes], timeout: float = 15
) -> None:
    path = tmp_path / "mojo_webqq_state_default.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"bridge exited {proc.returncode}: {logs(tmp_path)}")
        try:
            if msgspec.json.decode(path.read_bytes())["state"] == state:
                return
        except (FileNotFoundError, msgspec.DecodeError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"no state {state} within {timeout}s: {logs(tmp_path)}")


def stop(proc: subprocess.Popen[bytes], timeout: float = 15) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise


def logs(tmp_path: Path, *, whole: bool = False) -> str:
    """The bridge's stderr: its last 3,000 characters (for messages), or all of it to search."""
    text = (tmp_path / "stderr.log").read_text(errors="replace")
    return text if whole else text[-3000:]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``openqq-bridge ARGS`` to the end (at most 60 s), capturing its text output."""
    return subprocess.run(
        [sys.executable, "-m", "bridge", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
