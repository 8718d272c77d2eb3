"""A private 3-node RabbitMQ cluster on this machine, for the cluster tests.

This module owns starting, inspecting, breaking and stopping nodes ``rabbit-1..3@localhost``.
They are kept apart from the machine's own node (``rabbit@localhost`` on 127.0.0.1:5672, which
is never stopped, reset or joined): their own Erlang cookie (a private ``HOME``), their own epmd
(``ERL_EPMD_PORT``), ports, config, data, logs, plugins and pid files under one base directory,
``/tmp/openqq-cluster-<port>``. The scripts in ``/usr/lib/rabbitmq/bin`` are used, not the
``/usr/sbin`` wrappers, which switch to the ``rabbitmq`` user.

Every port comes from one base port ``B`` (default 5681, ``OPENQQ_CLUSTER_PORT`` or ``--port``):

- AMQP ``B``, ``B+1``, ``B+2`` (127.0.0.1 only, guest/guest);
- Erlang distribution ``B+20000..B+20002``, rabbitmqctl ``B+20003..B+20008``, epmd ``B+20009``.

So clusters on base ports 10 apart never collide. By hand::

    python -m tests.cluster.rabbit start [--port 5681]
    python -m tests.cluster.rabbit status
    python -m tests.cluster.rabbit stop

Every process started here carries ``OPENQQ_CLUSTER_DIR=<base dir>`` in its environment;
``stop`` kills exactly the processes that carry it, so it also cleans up after a crashed run
and can never hit the machine's node or another cluster.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

SIZE = 3
HOST = "localhost"
DEFAULT_PORT = 5681
BIN = Path(os.environ.get("OPENQQ_CLUSTER_RABBITMQ_BIN", "/usr/lib/rabbitmq/bin"))
MARKER = "OPENQQ_CLUSTER_DIR"
NODE_MARKER = "OPENQQ_CLUSTER_NODE"
# An owner of 0 means "started by hand": tests never take such a cluster over.
HAND = 0

# Small footprint on a 2-core machine: one scheduler of each kind, distribution on loopback.
ERL_ARGS = "+S 1:1 +SDcpu 1:1 +SDio 2 -kernel inet_dist_use_interface {127,0,0,1}"

NODE_CONFIG = """\
# openqq-bridge cluster tests: the recommended set-up, small.
cluster_partition_handling = pause_minority
loopback_users.guest = true
disk_free_limit.absolute = 50MB
log.console = false
log.file.level = info
# A smaller Raft write-ahead log keeps quorum queues' memory small.
raft.wal_max_size_bytes = 64000000
"""


class ClusterError(RuntimeError):
    """The private cluster could not be started, reached or stopped; the message says why."""


@dataclass(frozen=True)
class Layout:
    """Ports, names and paths of one private cluster, all derived from its base port."""

    port: int = DEFAULT_PORT
    root: Path = field(default_factory=lambda: Path(tempfile.gettempdir()))

    def __post_init__(self) -> None:
        # The highest port used is port + 20009; 5672 (the machine's node) must stay out.
        if not 1024 <= self.port <= 65535 - 20009:
            raise ClusterError(f"cluster base port {self.port}: must be 1024..{65535 - 20009}")
        if self.port <= 5672 < self.port + SIZE:
            raise ClusterError(f"cluster base port {self.port}: would take 5672 (the machine's)")

    @property
    def base(self) -> Path:
        return self.root / f"openqq-cluster-{self.port}"

    @property
    def epmd_port(self) -> int:
        return self.port + 20009

    @property
    def nodes(self) -> range:
        return range(1, SIZE + 1)

    def amqp_port(self, i: int) -> int:
        return self.port + i - 1

    def dist_port(self, i: int) -> int:
        return self.port + 20000 + i - 1

    def nodename(self, i: int) -> str:
        return f"rabbit-{i}@{HOST}"

    def url(self, i: int) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port(i)}/"

    def node_dir(self, i: int) -> Path:
        return self.base / f"node-{i}"

    def all_ports(self) -> list[int]:
        """Every port the cluster listens on (rabbitmqctl's range is taken only while it runs)."""
        return [
            *(self.amqp_port(i) for i in self.nodes),
            *(self.dist_port(i) for i in self.nodes),
            self.epmd_port,
        ]


def env_port() -> int | None:
    """``OPENQQ_CLUSTER_PORT``, checked: None when unset."""
    raw = os.environ.get("OPENQQ_CLUSTER_PORT", "").strip()
    if not raw:
        return None
    if not raw.isdigit():
        raise ClusterError(f"OPENQQ_CLUSTER_PORT={raw!r}: not a port number")
    return int(raw)


def pick_layout(slots: int = 10) -> Layout:
    """``OPENQQ_CLUSTER_PORT`` if set, else the first free slot of 5681, 5691, ... (10 tries).

    A slot is free when nothing listens on its ports and no live test run or hand-started
    cluster holds its base dir. Clusters left running by crashed test runs (their owner pid
    is gone) are stopped on the way, in every slot, so they do not pile up.
    """
    layouts = [Layout(DEFAULT_PORT + 10 * n) for n in range(slots)]
    for layout in layouts:
        stale = Cluster(layout)
        if layout.base.exists() and stale.owner_pid() not in (None, HAND) and not stale.in_use():
            stale.stop()
    chosen = env_port()
    if chosen is not None:
        return Layout(chosen)
    for layout in layouts:
        if Cluster(layout).in_use():
            continue
        if all(port_free(p) for p in layout.all_ports()):
            return layout
    raise ClusterError(
        f"no free cluster slot among base ports {DEFAULT_PORT}..{DEFAULT_PORT + 10 * (slots - 1)}"
        " (step 10): set OPENQQ_CLUSTER_PORT"
    )


def port_free(port: int) -> bool:
    """Nothing listens on 127.0.0.1:port (and we could bind it)."""
    with socket.socket() as s:
        # As a listener would: sockets in TIME_WAIT from a previous run do not make it busy.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def port_open(port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def _environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def marked_pids(key: str, value: str) -> Iterator[int]:
    """Live processes whose environment holds ``key=value`` (only ours carry the markers)."""
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != me:
            pid = int(entry.name)
            if _environ(pid).get(key) == value and _alive(pid):
                yield pid


def _json(out: str) -> Any:
    """The JSON a CLI tool printed with ``--formatter json`` (after any informational lines)."""
    lines = out.splitlines()
    start = next((n for n, line in enumerate(lines) if line.lstrip()[:1] in ("[", "{")), None)
    if start is None:
        raise ClusterError(f"no JSON in the CLI output: {out.strip()[-500:]!r}")
    return msgspec.json.decode("\n".join(lines[start:]))


def _kill(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _wait_gone(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    left = [p for p in pids if _alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = [p for p in left if _alive(p)]
    return left


class Cluster:
    """One private cluster: start/stop it, break nodes, ask it questions.

    Methods block (subprocesses, sleeps); from async code call them with ``asyncio.to_thread``.
    """

    def __init__(self, layout: Layout | None = None, *, owner: int = HAND) -> None:
        self.layout = layout or Layout()
        self.owner = owner
        self._procs: dict[int, subprocess.Popen[bytes]] = {}
        self._epmd: subprocess.Popen[bytes] | None = None

    # -- names --------------------------------------------------------------------------------

    @property
    def urls(self) -> list[str]:
        """One AMQP URL per node, node 1 first."""
        return [self.layout.url(i) for i in self.layout.nodes]

    def nodename(self, i: int) -> str:
        return self.layout.nodename(i)

    def index(self, nodename: str) -> int:
        """The node number of ``rabbit-N@localhost``."""
        for i in self.layout.nodes:
            if self.layout.nodename(i) == nodename:
                return i
        raise ClusterError(f"{nodename!r} is not a node of the cluster on {self.layout.port}")

    def env(self, i: int) -> dict[str, str]:
        """The environment of node ``i`` and of rabbitmqctl calls aimed at it."""
        lay = self.layout
        d = lay.node_dir(i)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        if not (env.get("LC_ALL") or env.get("LANG")):
            env["LC_ALL"] = "C.UTF-8"  # the CLI tools (Elixir) warn without a UTF-8 locale
        env.update(
            {
                MARKER: str(lay.base),
                NODE_MARKER: f"{lay.base}#{i}",
                "HOME": str(lay.base / "home"),
                "ERL_EPMD_PORT": str(lay.epmd_port),
                "ERL_EPMD_ADDRESS": "127.0.0.1",
                # Our own (empty) env file: /etc/rabbitmq/rabbitmq-env.conf names the machine's node.
                "RABBITMQ_CONF_ENV_FILE": str(lay.base / "rabbitmq-env.conf"),
                "RABBITMQ_NODENAME": lay.nodename(i),
                "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
                "RABBITMQ_NODE_PORT": str(lay.amqp_port(i)),
                "RABBITMQ_DIST_PORT": str(lay.dist_port(i)),
                "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq.conf"),
                "RABBITMQ_ADVANCED_CONFIG_FILE": str(d / "advanced.config"),
                "RABBITMQ_MNESIA_BASE": str(d / "mnesia"),
                "RABBITMQ_LOG_BASE": str(d / "log"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "enabled_plugins"),
                "RABBITMQ_PID_FILE": str(d / "rabbit.pid"),
                "RABBITMQ_CTL_DIST_PORT_MIN": str(lay.port + 20003),
                "RABBITMQ_CTL_DIST_PORT_MAX": str(lay.port + 20008),
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": ERL_ARGS,
            }
        )
        return env

    # -- diagnostics --------------------------------------------------------------------------

    def log_tail(self, i: int, lines: int = 30) -> str:
        """The first errors and the last lines of node ``i``'s logs, for error messages.

        The first errors come first because the cause of a failed boot (a bad setting, a busy
        port) is logged before the long crash reports that end the log.
        """
        d = self.layout.node_dir(i)
        parts = []
        for path in [d / "console.log", *sorted((d / "log").glob("*.log"))]:
            try:
                text = path.read_text(errors="replace").splitlines()
            except OSError:
                continue
            if not text:
                continue
            tail = text[-lines:]
            first = [line for line in text[:-lines] if "[error]" in line][:12]
            if first:
                parts.append(f"--- {path} (first errors)\n" + "\n".join(first))
            parts.append(f"--- {path} (last {len(tail)} lines)\n" + "\n".join(tail))
        return "\n".join(parts) or f"(no log under {d})"

    def ctl(self, i: int, *args: str, tool: str = "rabbitmqctl", timeout: float = 60) -> str:
        """Run a RabbitMQ CLI tool against node ``i``; its stdout, or ClusterError."""
        cmd = [str(BIN / tool), "-n", self.layout.nodename(i), *args]
        try:
            done = subprocess.run(
                cmd, env=self.env(i), capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired as e:
            raise ClusterError(
                f"{tool} {' '.join(cmd[1:])}: no answer within {timeout:.0f} s\n{self.log_tail(i, 15)}"
            ) from e
        if done.returncode != 0:
            raise ClusterError(
                f"{tool} {' '.join(cmd[1:])} exited {done.returncode}: "
                f"{(done.stderr or done.stdout).strip()[-1500:]}\n{self.log_tail(i, 15)}"
            )
        return done.stdout

    def node_pid(self, i: int) -> int | None:
        """The pid of node ``i``'s Erlang VM, if it runs."""
        marker = f"{self.layout.base}#{i}"
        for pid in marked_pids(NODE_MARKER, marker):
            if _comm(pid).startswith("beam"):
                return pid
        return None

    def running_nodes(self, via: int | None = None) -> list[str]:
        """``running_nodes`` of ``cluster_status``, asked of ``via`` (or the first node up)."""
        for i in [via] if via else self.layout.nodes:
            if port_open(self.layout.amqp_port(i)):
                out = self.ctl(i, "cluster_status", "--formatter", "json", timeout=30)
                status = _json(out)
                return sorted(status.get("running_nodes", []))
        return []

    def leader(self, queue: str, vhost: str = "/", via: int | None = None) -> int:
        """The node number of the leader of quorum queue ``queue``."""
        for i in [via] if via else self.layout.nodes:
            if port_open(self.layout.amqp_port(i)):
                out = self.ctl(
                    i, "list_queues", "-p", vhost, "name", "leader", "--formatter", "json"
                )
                for row in _json(out):
                    if row.get("name") == queue:
                        return self.index(str(row["leader"]))
                raise ClusterError(f"queue {queue!r} not found in vhost {vhost!r}")
        raise ClusterError("no node of the cluster is up")

    def status(self) -> dict[str, object]:
        """What runs: each node's pid and port, and the running nodes as the cluster sees them."""
        nodes = {
            self.layout.nodename(i): {
                "url": self.layout.url(i).replace("guest:guest@", ""),
                "pid": self.node_pid(i),
                "amqp_open": port_open(self.layout.amqp_port(i)),
            }
            for i in self.layout.nodes
        }
        running: list[str] = []
        if self.layout.base.exists():
            try:
                running = self.running_nodes()
            except ClusterError as e:
                running = [f"(cluster_status failed: {e})"]
        return {"base": str(self.layout.base), "nodes": nodes, "running_nodes": running}

    # -- start --------------------------------------------------------------------------------

    def owner_pid(self) -> int | None:
        """Who started the cluster in the base dir: a pid, HAND, or None (no readable owner)."""
        try:
            return int((self.layout.base / "owner").read_text().strip())
        except (OSError, ValueError):
            return None

    def in_use(self) -> bool:
        """Another live test run, or a hand-started cluster still running, holds the base dir."""
        base = self.layout.base
        if not base.exists():
            return False
        owner = self.owner_pid()
        if owner is None:
            # Another run may be between creating the dir and writing its owner.
            try:
                return time.time() - base.stat().st_mtime < 60
            except OSError:
                return False
        if owner == HAND:
            return any(marked_pids(MARKER, str(base)))
        return owner != os.getpid() and _alive(owner)

    def _prepare(self) -> None:
        lay = self.layout
        try:
            # The dir is the claim on the slot: two runs cannot both create it.
            lay.base.mkdir(parents=True)
        except FileExistsError:
            raise ClusterError(
                f"{lay.base} appeared meanwhile: another run took the slot"
            ) from None
        (lay.base / "owner").write_text(f"{self.owner}\n")
        (lay.base / "rabbitmq-env.conf").write_text("# empty: every setting comes from the env\n")
        home = lay.base / "home"
        home.mkdir()
        cookie = home / ".erlang.cookie"
        cookie.write_text("".join(secrets.choice(string.ascii_uppercase) for _ in range(20)))
        cookie.chmod(0o400)
        for i in lay.nodes:
            d = lay.node_dir(i)
            (d / "log").mkdir(parents=True)
            (d / "mnesia").mkdir()
            (d / "rabbitmq.conf").write_text(NODE_CONFIG)
            # No plugins: the management plugin alone costs seconds and memory per node.
            (d / "enabled_plugins").write_text("[].\n")

    def _start_epmd(self) -> None:
        lay = self.layout
        epmd = shutil.which("epmd") or "/usr/bin/epmd"
        with (lay.base / "epmd.log").open("wb") as out:
            # Not a node's environment: killing node 1 must not take epmd with it.
            env = {k: v for k, v in self.env(1).items() if k != NODE_MARKER}
            self._epmd = subprocess.Popen(
                [epmd, "-port", str(lay.epmd_port), "-address", "127.0.0.1"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait(lambda: port_open(lay.epmd_port), 10, f"epmd on {lay.epmd_port}", None)

    def _spawn(self, i: int) -> None:
        d = self.layout.node_dir(i)
        with (d / "console.log").open("ab") as out:
            # Its own session: Ctrl-C in a test run does not reach the node, stop() does.
            self._procs[i] = subprocess.Popen(
                [str(BIN / "rabbitmq-server")],
                env=self.env(i),
                cwd=d,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _wait(self, ready: Callable[[], bool], timeout: float, what: str, node: int | None) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            proc = self._procs.get(node) if node else None
            if proc is not None and proc.poll() is not None:
                raise ClusterError(
                    f"{what}: the node exited with {proc.returncode}\n{self.log_tail(node or 1)}"
                )
            if time.monotonic() > deadline:
                tail = self.log_tail(node) if node else ""
                raise ClusterError(f"{what}: not within {timeout:.0f} s\n{tail}")
            time.sleep(0.2)

    def _wait_up(self, i: int, timeout: float) -> None:
        port = self.layout.amqp_port(i)
        what = f"{self.layout.nodename(i)} listening on 127.0.0.1:{port}"
        self._wait(lambda: port_open(port), timeout, what, i)

    def start(self, timeout: float = 120) -> float:
        """Start a fresh cluster (a stale one in the same base dir is removed); seconds taken."""
        began = time.monotonic()
        lay = self.layout
        if self.in_use():
            raise ClusterError(
                f"a cluster in {lay.base} is in use (owner pid {self.owner_pid()}, 0 = started by"
                " hand): stop it with `python -m tests.cluster.rabbit stop"
                f" --port {lay.port}`, or pick another base port (OPENQQ_CLUSTER_PORT)"
            )
        self.stop()
        busy = [p for p in lay.all_ports() if not port_free(p)]
        if busy:
            raise ClusterError(
                f"ports {busy} on 127.0.0.1 are taken: pick another base port (OPENQQ_CLUSTER_PORT"
                f" or --port; this one is {lay.port})"
            )
        self._prepare()
        try:
            self._start_epmd()
            for i in lay.nodes:
                self._spawn(i)
            for i in lay.nodes:
                self._wait_up(i, max(1.0, timeout - (time.monotonic() - began)))
            # Nodes 2.. join node 1 one after the other: concurrent joins race on the schema.
            for i in list(lay.nodes)[1:]:
                self.ctl(i, "stop_app")
                self.ctl(i, "join_cluster", lay.nodename(1))
                self.ctl(i, "start_app")
            self.wait_healthy(max(1.0, timeout - (time.monotonic() - began)))
        except BaseException:
            # Leave nothing behind; the error already carries the node's log tail.
            self.stop()
            raise
        return time.monotonic() - began

    def wait_healthy(self, timeout: float = 90) -> float:
        """Wait until every node runs, is in the cluster and accepts AMQP; seconds waited."""
        began = time.monotonic()
        want = sorted(self.layout.nodename(i) for i in self.layout.nodes)
        seen: list[str] = []
        while True:
            if all(port_open(self.layout.amqp_port(i)) for i in self.layout.nodes):
                try:
                    seen = self.running_nodes()
                except ClusterError as e:
                    seen = [str(e)]
                if seen == want:
                    return time.monotonic() - began
            if time.monotonic() - began > timeout:
                down = [i for i in self.layout.nodes if not port_open(self.layout.amqp_port(i))]
                tails = "\n".join(self.log_tail(i, 20) for i in down)
                raise ClusterError(
                    f"cluster not healthy within {timeout:.0f} s: running {seen}, want {want},"
                    f" AMQP down on nodes {down}\n{tails}"
                )
            time.sleep(0.5)

    # -- breaking and mending nodes -----------------------------------------------------------

    def kill(self, i: int) -> int:
        """``kill -9`` node ``i``'s Erlang VM (no goodbye to its peers); its old pid."""
        pid = self.node_pid(i)
        if pid is None:
            raise ClusterError(f"{self.layout.nodename(i)} is not running")
        os.kill(pid, signal.SIGKILL)
        if _wait_gone([pid], 10):
            raise ClusterError(f"{self.layout.nodename(i)} (pid {pid}) survived SIGKILL")
        self._reap(i)
        return pid

    def stop_node(self, i: int, timeout: float = 60) -> None:
        """Stop node ``i`` cleanly (SIGTERM: RabbitMQ shuts down in order), SIGKILL if it hangs."""
        pid = self.node_pid(i)
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        if _wait_gone([pid], timeout):
            _kill([pid], signal.SIGKILL)
            _wait_gone([pid], 10)
        self._reap(i)

    def start_node(self, i: int, timeout: float = 90) -> None:
        """Start node ``i`` again on its data (it rejoins the cluster) and wait for AMQP."""
        if self.node_pid(i) is not None:
            raise ClusterError(f"{self.layout.nodename(i)} is already running")
        self._spawn(i)
        self._wait_up(i, timeout)

    def _reap(self, i: int) -> None:
        # The node's helpers (erl_child_setup, inet_gethost, the wrapper shell) go with it.
        rest = list(marked_pids(NODE_MARKER, f"{self.layout.base}#{i}"))
        _kill(rest, signal.SIGKILL)
        _wait_gone(rest, 5)
        proc = self._procs.pop(i, None)
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)

    # -- stop ---------------------------------------------------------------------------------

    def stop(self) -> None:
        """Kill every process of this cluster (nodes, epmd, helpers) and remove its base dir."""
        base = self.layout.base
        pids = list(marked_pids(MARKER, str(base)))
        _kill(pids, signal.SIGKILL)
        left = _wait_gone(pids, 15)
        for proc in [*self._procs.values(), *([self._epmd] if self._epmd else [])]:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
        self._procs.clear()
        self._epmd = None
        if left:
            raise ClusterError(f"processes {left} of the cluster in {base} survived SIGKILL")
        shutil.rmtree(base, ignore_errors=True)
        if base.exists():
            raise ClusterError(f"could not remove {base}")


def main(argv: list[str] | None = None) -> int:
    """``python -m tests.cluster.rabbit start|stop|status``."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.cluster.rabbit",
        description="A private 3-node RabbitMQ cluster for the cluster tests.",
    )
    parser.add_argument("action", choices=["start", "stop", "status"])
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help="base port: AMQP on PORT..PORT+2, Erlang on PORT+20000..PORT+20009 (default 5681)",
    )
    parser.add_argument("--timeout", type=float, default=120, help="start timeout, seconds")
    args = parser.parse_args(argv)
    try:
        port = args.port if args.port is not None else env_port() or DEFAULT_PORT
        cluster = Cluster(Layout(port))
        if args.action == "start":
            took = cluster.start(args.timeout)
            print(f"cluster started in {took:.1f} s, base dir {cluster.layout.base}")
            print("AMQP_URL=" + ",".join(cluster.urls))
        elif args.action == "stop":
            began = time.monotonic()
            cluster.stop()
            print(f"cluster on {port} stopped in {time.monotonic() - began:.1f} s")
        else:
            print(msgspec.json.format(msgspec.json.encode(cluster.status()), indent=2).decode())
    except ClusterError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
