"""HTTP parts: sync sends and reads through the adapter, under wrk at 32 connections.

Sends: GET /openqq/send_group_message -> adapter -> RabbitMQ -> bridge -> simulated account and
back. Two limits, each an aiohttp endpoint doing one aio-pika request/reply per request, answered
by a plain aio-pika responder (two processes, as adapter and bridge are): the durable one has a
bridge command's guarantees (persistent request on a durable queue, mandatory and confirmed;
manual ack after a confirmed persistent event and the reply), the transient one none of them.
Reads: GET /openqq/get_friend_info and get_group_basic_info, served from the adapter's
replica. Limit: an aiohttp endpoint answering the same bytes.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import aio_pika
import aiohttp

from bench.common import (
    AMQP_URL,
    CpuMeter,
    Result,
    broker_pid,
    cleanup,
    free_port,
    new_namespace,
    start,
    stop,
    wait_http,
    wait_running,
)

CONNECTIONS = 32


@dataclass
class Wrk:
    """What wrk reported."""

    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not m:
        return float("nan")
    value, unit = float(m.group(1)), m.group(2)
    return value * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[unit]


#: A wrk script that sends each request to the next of several paths, in turn.
ROUND_ROBIN = """
local paths = {%s}
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", paths[(n %% #paths) + 1])
end
"""


def wrk(url: str, seconds: float, paths: list[str] | None = None) -> Wrk:
    """Run wrk (Debian package) and parse its report; ``paths``: requests take each in turn."""
    exe = shutil.which("wrk")
    if exe is None:
        msg = "wrk is not installed: apt-get install wrk"
        raise RuntimeError(msg)
    args = [
        exe,
        "-t2",
        f"-c{CONNECTIONS}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "--timeout",
        "10s",
    ]
    with tempfile.TemporaryDirectory(prefix="openqq-bench-wrk-") as tmp:
        if paths:
            script = Path(tmp) / "paths.lua"
            script.write_text(ROUND_ROBIN % ", ".join(f'"{p}"' for p in paths))
            args += ["-s", str(script)]
        out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    # Anchored: the Stdev column of the thread stats ("71.50%") must not pass for the 50% line.
    p50 = re.search(r"^\s*50%\s+(\S+)", out, re.MULTILINE)
    p99 = re.search(r"^\s*99%\s+(\S+)", out, re.MULTILINE)
    errors = sum(int(n) for n in re.findall(r"(?:Non-2xx or 3xx responses|timeout) (\d+)", out))
    errors += sum(int(n) for n in re.findall(r"Socket errors:.*?(\d+)", out))
    return Wrk(
        rps,
        _ms(p50.group(1)) if p50 else float("nan"),
        _ms(p99.group(1)) if p99 else float("nan"),
        errors,
    )


def _spawn(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "bench.limits", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _kill(p: subprocess.Popen[bytes]) -> None:
    p.terminate()
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()


#: The simulated account's two example groups: two conversations, each with its own order.
GROUP_UIDS = (67890, 552603)


async def our_sends(
    seconds: float, *, conversations: int = 1, **settings: str
) -> tuple[Wrk, CpuMeter]:
    """wrk on send_group_message: adapter and bridge as separate processes.

    ``conversations`` > 1 spreads the requests over that many groups, in turn (at most
    ``len(GROUP_UIDS)``): sends to one conversation go to QQ one after the other.
    """
    paths = [f"/openqq/send_group_message?uid={uid}&content=bench" for uid in GROUP_UIDS]
    ns = new_namespace()
    bridge = start("bridge", ns, **settings)
    adapter = start("adapter", ns, **settings)
    try:
        await asyncio.to_thread(wait_running, bridge)
        url = adapter.url(paths[0])
        await wait_http(adapter.url("/openqq/get_user_info"))
        cpu = CpuMeter(adapter=adapter.pid, bridge=bridge.pid, broker=broker_pid())
        cpu.start()
        spread = paths[:conversations] if conversations > 1 else None
        ours = await asyncio.to_thread(wrk, url, seconds, spread)
        cpu.stop()
    finally:
        await asyncio.to_thread(stop, adapter)
        await asyncio.to_thread(stop, bridge)
        await cleanup(ns)
    return ours, cpu


async def _limit(seconds: float, *, durable: bool) -> tuple[Wrk, CpuMeter]:
    """wrk on a limit server and its responder (``bench.limits``), two processes."""
    ns = new_namespace()
    conn = await aio_pika.connect(AMQP_URL)
    ch = await conn.channel()
    port = free_port()
    prefix = f"{ns}.durable"
    if durable:
        commands = await ch.declare_exchange(f"{prefix}.commands", aio_pika.ExchangeType.TOPIC,
                                             durable=True)  # fmt: skip
        await ch.declare_exchange(f"{prefix}.events", aio_pika.ExchangeType.TOPIC, durable=True)
        requests = await ch.declare_queue(f"{prefix}.send", durable=True)
        await requests.bind(commands, "send.default")
        responder = _spawn("durable-responder", prefix)
        server_args = ("durable-rpc", str(port), prefix)
    else:
        ex = await ch.declare_exchange(f"{ns}.limit", aio_pika.ExchangeType.TOPIC, auto_delete=True)
        responder = _spawn("responder", ex.name)
        server_args = ("rpc", str(port), ex.name)
    await asyncio.sleep(1.0)
    server = _spawn(*server_args)
    cpu = CpuMeter(server=server.pid, responder=responder.pid, broker=broker_pid())
    try:
        await wait_http(f"http://127.0.0.1:{port}/x")
        cpu.start()
        got = await asyncio.to_thread(wrk, f"http://127.0.0.1:{port}/x", seconds)
        cpu.stop()
    finally:
        _kill(server)
        _kill(responder)
        if durable:
            await ch.queue_delete(f"{prefix}.send")
            for x in ("commands", "events"):
                await ch.exchange_delete(f"{prefix}.{x}")
        await conn.close()
    return got, cpu


async def sends(seconds: float) -> list[Result]:
    # The limits before and after ours: a machine getting busier or quieter weighs on both.
    durable, durable_cpu = await _limit(seconds, durable=True)
    ours, cpu = await our_sends(seconds)
    two, two_cpu = await our_sends(seconds, conversations=len(GROUP_UIDS))
    raw, raw_cpu = await _limit(seconds, durable=False)
    errors = f"ours {ours.errors}, two groups {two.errors}, durable {durable.errors}, transient {raw.errors}"
    notes = [
        f"errors: {errors}",
        cpu.per_request(ours.rps * seconds),
        "durable limit " + durable_cpu.per_request(durable.rps * seconds),
        "transient limit " + raw_cpu.per_request(raw.rps * seconds),
    ]
    what = f"sync send_group_message to one group, {CONNECTIONS} connections"
    durable_is = (
        "aiohttp + one durable request/reply with a confirmed persistent event (two processes)"
    )
    return [
        Result("sends", what, ours.rps, "req/s", durable.rps, durable_is, "ratio >= 1.0", notes),
        Result("sends", what, ours.rps, "req/s", raw.rps,
               "aiohttp + one transient aio-pika request/reply (two processes)"),
        Result("sends", f"the same, requests alternating between {len(GROUP_UIDS)} groups",
               two.rps, "req/s", durable.rps, "durable limit",
               notes=[two_cpu.per_request(two.rps * seconds)]),
        Result("sends", "p50 latency, one group", ours.p50_ms, "ms", durable.p50_ms, "durable limit"),
        Result("sends", "p99 latency, one group", ours.p99_ms, "ms", durable.p99_ms, "durable limit"),
    ]  # fmt: skip


async def reads(seconds: float) -> list[Result]:
    ns = new_namespace()
    bridge = start("bridge", ns)
    adapter = start("adapter", ns)
    results: list[Result] = []
    tmp = Path(tempfile.mkdtemp(prefix="openqq-bench-json-"))
    try:
        await asyncio.to_thread(wait_running, bridge)
        await wait_http(adapter.url("/openqq/get_group_basic_info"))
        for endpoint in ("get_friend_info", "get_group_basic_info"):
            url = adapter.url(f"/openqq/{endpoint}")
            async with aiohttp.ClientSession() as s, s.get(url) as r:
                body = await r.read()
            (tmp / endpoint).write_bytes(body)
            port = free_port()
            server = _spawn("json", str(port), str(tmp / endpoint))
            try:
                await wait_http(f"http://127.0.0.1:{port}/x")
                raw = await asyncio.to_thread(wrk, f"http://127.0.0.1:{port}/x", seconds)
            finally:
                _kill(server)
            ours = await asyncio.to_thread(wrk, url, seconds)
            results.append(
                Result("reads", f"{endpoint} ({len(body)} bytes), {CONNECTIONS} connections", ours.rps,
                       "req/s", raw.rps, "aiohttp answering the same bytes", "ratio >= 0.5",
                       [f"p99 {ours.p99_ms:.1f} ms (limit {raw.p99_ms:.1f} ms)"])
            )  # fmt: skip
    finally:
        await asyncio.to_thread(stop, adapter)
        await asyncio.to_thread(stop, bridge)
        await cleanup(ns)
    return results
