"""The Controller API over HTTP against a real controller process, real bridges, RabbitMQ.

Answer shapes copied from sjdy521/Mojo-Webqq@303d6be0dda024aee44f75aa09535abfd478ca67:
Controller-API.md (start_client/stop_client ``{"client","code","pid","port","status"}``,
check_client ``{"code":0,"client":[...]}``, get_qrcode ``Content-Type: image/png`` +
``Cache-Control: no-cache``, post_api ``?client=NAME``) and lib/Mojo/Webqq/Controller.pm
(``{"code":1,"status":"client not found"}`` without client, ``{"code":1,"status":"client
not exists"}`` for an unknown one, ``"client already exists"``, ``{"code":-1,"status":"api
not found"}`` 403, ``$url->query->merge(client=>...)`` for post_api).
"""

from __future__ import annotations

import asyncio
import os
import queue
import signal
import socket
import time
from pathlib import Path

import aio_pika
import msgspec
import pytest

from bridge import __version__
from tests.controller.conftest import Ctl, http_get
from tests.procs import bridge_env, free_port, run_cli, start, stop

ACCOUNTS3 = ("a1", "a2", "a3")


def started(name: str, pid: int, port: int, status: str = "success") -> bytes:
    return b'{"client":"%s","code":0,"pid":%d,"port":%d,"status":"%s"}' % (
        name.encode(),
        pid,
        port,
        status.encode(),
    )


def entry(ctl: Ctl, c: dict, n: int) -> bytes:
    """The exact bytes of a local sim client in check_client (variable parts from ``c``)."""
    tmpdir = str(ctl.tmp).replace("/", "\\/")
    return (
        b'{"account":"%(name)s","client":"%(name)s","host":"%(host)s","log_level":"info",'
        b'"pid":%(pid)d,"port":%(port)d,"sim_listen":"%(sim)s","start_time":%(t)d,'
        b'"state":"running","tmpdir":"%(tmp)s","upstream":"sim","version":"%(v)s"}'
        % {
            b"name": c["client"].encode(),
            b"host": socket.gethostname().encode(),
            b"pid": c["pid"],
            b"port": ctl.backend_start_port + n,
            b"sim": c["sim_listen"].encode(),
            b"t": c["start_time"],
            b"tmp": tmpdir.encode(),
            b"v": __version__.encode(),
        }
    )


@pytest.fixture(scope="module")
def three(ctl: Ctl) -> dict[str, bytes]:
    """a1, a2, a3 started over HTTP and running; their start_client answers."""
    answers = {n: ctl.get(f"/openqq/start_client?client={n}").body for n in ACCOUNTS3}
    for n in ACCOUNTS3:
        ctl.wait_state(n, "running")
    return answers


def test_start_check_stop_three_accounts(ctl: Ctl, three: dict[str, bytes]) -> None:
    clients = ctl.clients()
    for n, name in enumerate(ACCOUNTS3):
        pid = clients[name]["pid"]
        assert three[name] == started(name, pid, ctl.backend_start_port + n)
        assert Path(f"/proc/{pid}").exists()
    # check_client: every client, sorted, exact bytes; one client with ?client=.
    whole = ctl.get("/openqq/check_client")
    assert whole.headers["Content-Type"] == "application/json"
    expected = [entry(ctl, clients[name], n) for n, name in enumerate(ACCOUNTS3)]
    assert whole.body == b'{"client":[' + b",".join(expected) + b'],"code":0}'
    assert ctl.get("/openqq/check_client?client=a2").body == (
        b'{"client":[' + expected[1] + b'],"code":0}'
    )
    # Started twice: the running client, as the original answers.
    a1 = clients["a1"]
    assert ctl.get("/openqq/start_client?client=a1").body == started(
        "a1", a1["pid"], ctl.backend_start_port, "client already exists"
    )
    # Stop all three: exact answers, processes gone, forgotten.
    for n, name in enumerate(ACCOUNTS3):
        pid = clients[name]["pid"]
        assert ctl.get(f"/openqq/stop_client?client={name}").body == started(
            name, pid, ctl.backend_start_port + n
        )
        assert not Path(f"/proc/{pid}").exists() or _zombie(pid)
    assert ctl.get("/openqq/check_client").body == b'{"client":[],"code":0}'
    assert (
        ctl.get("/openqq/stop_client?client=a1").body == b'{"code":1,"status":"client not exists"}'
    )
    # Started again: same ports (n is kept per account).
    for n, name in enumerate(ACCOUNTS3):
        body = ctl.get(f"/openqq/start_client?client={name}").json()
        assert body["port"] == ctl.backend_start_port + n
    for name in ACCOUNTS3:
        ctl.wait_state(name, "running")


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0] == b"Z"
    except OSError:
        return True


def test_errors_in_the_originals_words(ctl: Ctl) -> None:
    get = ctl.get
    assert get("/openqq/start_client").body == b'{"code":1,"status":"client not found"}'
    assert get("/openqq/stop_client").body == b'{"code":1,"status":"client not found"}'
    assert get("/openqq/get_qrcode").body == b'{"code":1,"status":"client not found"}'
    unknown = b'{"code":1,"status":"client not exists"}'
    assert get("/openqq/check_client?client=nobody").body == unknown
    assert get("/openqq/get_qrcode?client=nobody").body == unknown
    assert get("/openqq/stop_client?client=nobody").body == unknown
    # A single-account endpoint: an unknown client and no client (no `default` runs).
    t0 = time.monotonic()
    assert get("/openqq/get_user_info?client=nobody").body == unknown
    assert get("/openqq/get_friend_info").body == b'{"code":1,"status":"client not found"}'
    assert time.monotonic() - t0 < 10  # answered at once, never a wait for the account
    r = get("/nothing")
    assert (r.status, r.body) == (403, b'{"code":-1,"status":"api not found"}')
    # Settings a client may not set, unknown ones, bad values, bad names.
    assert get("/openqq/start_client?client=x1&listen=127.0.0.1:1").body == (
        b"{\"code\":6,\"status\":\"parameter 'listen': setting 'listen' is the controller's,"
        b" the same for every account; per account only: log_level, onebot_action_timeout,"
        b" onebot_input_status, onebot_listen, onebot_lookup_timeout, onebot_mode, onebot_path,"
        b" onebot_risk_retcodes, onebot_self_id, onebot_token, onebot_url, post_api, send_interval, send_interval_per_target, show_message,"
        b' sim_friends, sim_groups, sim_listen, sim_login_delay, sim_members, upstream"}'
    )
    assert get("/openqq/start_client?client=x1&log_levl=debug").body == (
        b'{"code":6,"status":"parameter \'log_levl\': unknown setting \'log_levl\';'
        b' did you mean log_level?"}'
    )
    bad = get("/openqq/start_client?client=x1&sim_login_delay=99").json()
    assert bad["code"] == 6
    assert "sim_login_delay" in bad["status"]
    assert "out of range 0..60" in bad["status"]
    assert get("/openqq/start_client?client=a.b").json()["code"] == 1
    assert "x1" not in ctl.clients()


async def test_send_with_client_reaches_that_account_only(
    ctl: Ctl, three: dict[str, bytes], rabbitmq: str
) -> None:
    conn = await aio_pika.connect(rabbitmq)
    try:
        ch = await conn.channel()
        q = await ch.declare_queue(exclusive=True)
        await q.bind(f"{ctl.ns}.events", "send_message.*.*")
        for name in ACCOUNTS3:
            r = await asyncio.to_thread(
                ctl.get,
                f"/openqq/send_friend_message?client={name}&uid=456789&content=hello-{name}",
            )
            assert r.json()["status"] == "发送成功", r.body
            assert r.json()["code"] == 0
        seen: dict[str, list[str]] = {}
        async with q.iterator() as it, asyncio.timeout(20):
            async for m in it:
                await m.ack()
                body = msgspec.json.decode(m.body)
                seen.setdefault(m.routing_key or "", []).append(body["content"])
                if len(seen) == 3 and all(len(v) >= 1 for v in seen.values()):
                    break
        assert seen == {f"send_message.friend_message.{n}": [f"hello-{n}"] for n in ACCOUNTS3}
    finally:
        await conn.close()


def _inject(ctl: Ctl, name: str, content: str) -> None:
    import urllib.request

    sim = ctl.clients()[name]["sim_listen"]
    body = msgspec.json.encode({"type": "friend_message", "sender_uid": 456789, "content": content})
    req = urllib.request.Request(
        f"http://{sim}/sim/inject", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200


def test_post_api_and_check_event_per_account(ctl: Ctl, three: dict[str, bytes]) -> None:
    # Nobody polls check_event while the messages come in.
    for name in ACCOUNTS3:
        _inject(ctl, name, f"in-{name}")
    # post_api: each account's reports on the receiver's URL with its ?client= merged in.
    wanted = {f"in-{n}": f"/post_api?token=t0&client={n}" for n in ACCOUNTS3}
    got: dict[str, str] = {}
    deadline = time.monotonic() + 20
    while len(got) < len(wanted) and time.monotonic() < deadline:
        try:
            path, body = ctl.receiver.got.get(timeout=1)
        except queue.Empty:
            continue
        report = msgspec.json.decode(body)
        if report.get("content") in wanted:
            got[report["content"]] = path
    assert got == wanted
    # check_event: each account's buffer kept its own message, from before the first poll.
    for name in ACCOUNTS3:
        contents: list[str] = []
        for _ in range(3):  # the intake queue may trail the post_api queue by a moment
            items = ctl.get(f"/openqq/check_event?client={name}").json()
            contents += [i["content"] for i in items if i.get("post_type") == "receive_message"]
            if contents:
                break
        assert contents == [f"in-{name}"]


@pytest.mark.slow
def test_get_qrcode_while_scanning(ctl: Ctl, three: dict[str, bytes]) -> None:
    # Each login state lasts 4 s: time to see scaning and fetch the code.
    r = ctl.get("/openqq/start_client?client=qr1&sim_login_delay=4")
    assert r.json()["code"] == 0
    try:
        ctl.wait_state("qr1", "scaning")
        png = ctl.get("/openqq/get_qrcode?client=qr1")
        assert png.status == 200
        assert png.headers["Content-Type"] == "image/png"
        assert png.headers["Cache-Control"] == "no-cache"
        assert png.body.startswith(b"\x89PNG\r\n\x1a\n")
        assert png.body == (ctl.tmp / "mojo_webqq_qrcode_qr1.png").read_bytes()
    finally:
        assert ctl.get("/openqq/stop_client?client=qr1").json()["code"] == 0
    running = ctl.get("/openqq/get_qrcode?client=a1")
    assert running.status == 404
    assert running.body == (
        b'{"code":1,"status":"no QR code: client a1 is running, not waiting for a scan"}'
    )


@pytest.mark.slow
def test_bridge_stopped_through_its_own_api_stays_stopped(ctl: Ctl) -> None:
    assert ctl.get("/openqq/start_client?client=s1").json()["code"] == 0
    c = ctl.wait_state("s1", "running")
    # The single-account stop_client, on the account's own port: the bridge exits 0.
    own = f"http://127.0.0.1:{c['port']}"
    assert http_get(own, "/openqq/stop_client").json()["code"] == 0
    deadline = time.monotonic() + 20
    while "s1" in ctl.clients() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "s1" not in ctl.clients()
    assert "s1" not in ctl.data()["clients"]
    time.sleep(2)  # longer than the first restart pause: it must not come back
    assert "s1" not in ctl.clients()
    assert not Path(f"/proc/{c['pid']}").exists() or _zombie(c["pid"])


def test_killed_bridge_is_restarted(ctl: Ctl, three: dict[str, bytes]) -> None:
    old = now = ctl.clients()["a2"]
    os.kill(old["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        now = ctl.clients()["a2"]
        if now["pid"] != old["pid"] and now["state"] == "running":
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"a2 not restarted: {now}\n{ctl.log()}")
    assert now["port"] == old["port"]
    assert Path(f"/proc/{now['pid']}").exists()
    r = ctl.get("/openqq/get_user_info?client=a2")
    assert r.json()["uid"] == 123456


def test_bridge_started_by_hand_shows_up(ctl: Ctl, three: dict[str, bytes], tmp_path) -> None:
    env = bridge_env(
        tmp_path,
        AMQP_URL=ctl.env["AMQP_URL"],
        OPENQQ_NAMESPACE=ctl.ns,
        OPENQQ_ACCOUNT="hand1",
    )
    proc = start(["bridge"], env, tmp_path)
    try:
        c = ctl.wait_state("hand1", "running")
        assert c["pid"] is None  # not this controller's process
        # Served on a port of its own too, its n kept in the data file.
        assert c["port"] == ctl.backend_start_port + ctl.data()["ports"]["hand1"]
        assert sorted(ctl.data()["clients"]) == sorted(ACCOUNTS3)
        assert c["sim_listen"] == env["OPENQQ_SIM_LISTEN"]
        assert ctl.get("/openqq/get_user_info?client=hand1").json()["uid"] == 123456
        assert ctl.get("/openqq/stop_client?client=hand1").json()["code"] == 1
    finally:
        assert stop(proc) == 0
    # Its last presence says stop: shown at once (forgotten 30 s later unless a standby speaks).
    c = ctl.wait_state("hand1", "stop", timeout=10)
    assert c["port"] == ctl.backend_start_port + ctl.data()["ports"]["hand1"]


def test_a_second_controller_on_the_same_files_exits_4(
    ctl: Ctl, three: dict[str, bytes], tmp_path
) -> None:
    data = ctl.data()
    env = {**ctl.env, "OPENQQ_CONTROLLER_LISTEN": f"127.0.0.1:{free_port()}"}
    done = run_cli("controller", env=env)
    assert done.returncode == 4, done.stderr
    assert f"another controller (pid {ctl.proc.pid}) already uses" in done.stderr  # type: ignore[union-attr]
    assert ctl.data() == data  # its files untouched
    local = [n for n, c in ctl.clients().items() if c["pid"] is not None]
    assert sorted(local) == sorted(ACCOUNTS3)


@pytest.mark.slow
def test_restarted_controller_finds_its_clients(
    ctl: Ctl, three: dict[str, bytes], tmp_path
) -> None:
    # A bridge elsewhere that says nothing new after the restart: found by its presence.
    env = bridge_env(
        tmp_path, AMQP_URL=ctl.env["AMQP_URL"], OPENQQ_NAMESPACE=ctl.ns, OPENQQ_ACCOUNT="hand2"
    )
    hand = start(["bridge"], env, tmp_path)
    ctl.wait_state("hand2", "running")
    before = ctl.clients()
    ctl.stop()
    # The bridges outlive the controller.
    for name in ACCOUNTS3:
        assert Path(f"/proc/{before[name]['pid']}").exists()
    ctl.start()
    after = ctl.clients()
    assert sorted(after) == sorted(ACCOUNTS3)  # hand2 not yet: it was never ours
    for name in ACCOUNTS3:
        # Same process, same port, and its state at once (from its state file).
        assert (after[name]["pid"], after[name]["port"], after[name]["state"]) == (
            before[name]["pid"],
            before[name]["port"],
            "running",
        )
    assert ctl.get("/openqq/get_user_info?client=a3").json()["uid"] == 123456
    try:
        c = ctl.wait_state("hand2", "running", timeout=25)  # presence: every 10 s
        assert (c["pid"], c["port"]) == (None, before["hand2"]["port"])
    finally:
        assert stop(hand) == 0


@pytest.mark.slow
async def test_only_the_active_bridge_speaks_and_a_handover_keeps_the_account(
    ctl: Ctl, three: dict[str, bytes], rabbitmq: str, tmp_path
) -> None:
    conn = await aio_pika.connect(rabbitmq)
    procs = []
    try:
        ch = await conn.channel()
        q = await ch.declare_queue(exclusive=True)
        await q.bind(f"{ctl.ns}.events", "presence.bridge.ha1")
        for side in ("one", "two"):
            (tmp_path / side).mkdir()
            env = bridge_env(
                tmp_path / side,
                AMQP_URL=rabbitmq,
                OPENQQ_NAMESPACE=ctl.ns,
                OPENQQ_ACCOUNT="ha1",
            )
            procs.append(start(["bridge"], env, tmp_path / side))
            if side == "one":
                await asyncio.to_thread(ctl.wait_state, "ha1", "running")
        active, standby = procs
        await asyncio.sleep(2)  # the standby has joined by now: it must stay silent
        pids = set()
        while (m := await q.get(fail=False)) is not None:
            await m.ack()
            pids.add(msgspec.json.decode(m.body)["pid"])
        assert pids == {active.pid}
        # A clean stop hands the account over: the controller keeps it, the standby speaks.
        assert await asyncio.to_thread(stop, active) == 0
        await asyncio.to_thread(ctl.wait_state, "ha1", "running")
        async with asyncio.timeout(20):
            while True:
                m = await q.get(timeout=20)
                await m.ack()
                if msgspec.json.decode(m.body)["pid"] == standby.pid:
                    break
    finally:
        for p in procs:
            await asyncio.to_thread(stop, p)
        await conn.close()
