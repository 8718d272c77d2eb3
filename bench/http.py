"""HTTP parts: sync sends and reads through the adapter, under wrk at 32 connections.

Sends: GET /openqq/send_group_message -> adapter -> RabbitMQ -> bridge -> simulated account and
back, to 32 groups (wrk picks the next group for each request) and to one group. Sends to one
conversation are handed to QQ one at a time in arrival order, each after its ``started`` entry
is confirmed by the broker (the exactly-once record), so one group measures that lane: one
record write in sequence per send, which the limits do not have. Two limits, each an aiohttp endpoint doing one aio-pika request/reply per request, answered
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
#: Groups the sends go to (the simulated world's generated groups, uid 200000 + i).
SEND_GROUPS = 32
#: wrk script: each request to the next of the SEND_GROUPS groups.
_ROTATE = """
counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", "/openqq/send_group_message?uid=" .. (200000 + counter % GROUPS)
                    .. "&content=bench")
end
"""


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


def wrk(url: str, seconds: float, script: str | None = None) -> Wrk:
    """Run wrk (Debian package) and parse its report; ``script`` is a wrk Lua script."""
    exe = shutil.which("wrk")
    if exe is None:
        msg = "wrk is not installed: apt-get install wrk"
        raise RuntimeError(msg)
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as lua:
        lua.write(script or "")
        lua.flush()
        out = subprocess.run(
            [exe, "-t2", f"-c{CONNECTIONS}", f"-d{max(1, round(seconds))}s", "--latency",
             "--timeout", "10s", *(["-s", lua.name] if script else []), url],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
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


async def our_sends(
    seconds: float, *, groups: int = SEND_GROUPS, **settings: str
) -> tuple[Wrk, CpuMeter]:
    """wrk on send_group_message to ``groups`` groups (1: PERL学习交流 alone), adapter and
    bridge as separate processes."""
    ns = new_namespace()
    bridge = start("bridge", ns, sim_groups=str(SEND_GROUPS), **settings)
    adapter = start("adapter", ns, **settings)
    try:
        await asyncio.to_thread(wait_running, bridge)
        url = adapter.url("/openqq/send_group_message?uid=67890&content=bench")
        await wait_http(adapter.url("/openqq/get_user_info"))
        script = _ROTATE.replace("GROUPS", str(groups)) if groups > 1 else None
        cpu = CpuMeter(adapter=adapter.pid, bridge=bridge.pid, broker=broker_pid())
        cpu.start()
        ours = await asyncio.to_thread(wrk, url, seconds, script)
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
    # The durable limit before and after ours (their mean is the limit): a machine getting
    # busier or quieter during the run weighs on both sides.
    before, before_cpu = await _limit(seconds, durable=True)
    ours, cpu = await our_sends(seconds)
    lane, lane_cpu = await our_sends(seconds, groups=1)
    after, after_cpu = await _limit(seconds, durable=True)
    raw, raw_cpu = await _limit(seconds, durable=False)
    durable_rps = (before.rps + after.rps) / 2
    # The processes apart from the broker: its CPU time counts every client of the broker
    # during the run, other work on the machine included.
    ours_us = cpu.total_per_request(ours.rps * seconds, "adapter", "bridge")
    lane_us = lane_cpu.total_per_request(lane.rps * seconds, "adapter", "bridge")
    limit_us = (before_cpu.total_per_request(before.rps * seconds, "server", "responder")
                + after_cpu.total_per_request(after.rps * seconds, "server", "responder")) / 2  # fmt: skip
    notes = [
        f"durable limit before {before.rps:,.0f}, after {after.rps:,.0f}",
        f"errors: ours {ours.errors}, one group {lane.errors}, durable"
        f" {before.errors + after.errors}, transient {raw.errors}",
        f"CPU us/request, adapter + bridge {ours_us:,.0f}, durable server + responder"
        f" {limit_us:,.0f} (limit/ours {limit_us / ours_us if ours_us else float('nan'):.2f})",
        cpu.per_request(ours.rps * seconds),
        "durable limit before " + before_cpu.per_request(before.rps * seconds),
        "after " + after_cpu.per_request(after.rps * seconds),
        "transient limit " + raw_cpu.per_request(raw.rps * seconds),
    ]
    lane_notes = [
        f"one record write in sequence per send (the lane); CPU us/request adapter + bridge"
        f" {lane_us:,.0f}",
        lane_cpu.per_request(lane.rps * seconds),
    ]
    what = f"sync send_group_message, {CONNECTIONS} connections, {SEND_GROUPS} groups"
    durable_is = (
        "aiohttp + one durable request/reply with a confirmed persistent event (two processes)"
    )
    durable_p50 = (before.p50_ms + after.p50_ms) / 2
    durable_p99 = (before.p99_ms + after.p99_ms) / 2
    return [
        Result("sends", what, ours.rps, "req/s", durable_rps, durable_is, "ratio >= 1.0", notes),
        Result("sends", what, ours.rps, "req/s", raw.rps,
               "aiohttp + one transient aio-pika request/reply (two processes)"),
        Result("sends", "p50 latency", ours.p50_ms, "ms", durable_p50, "durable limit"),
        Result("sends", "p99 latency", ours.p99_ms, "ms", durable_p99, "durable limit"),
        Result("sends", f"the same, {CONNECTIONS} connections to one group", lane.rps, "req/s",
               durable_rps, durable_is, "", lane_notes),
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
