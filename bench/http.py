"""HTTP parts: sync sends and reads through the adapter, under wrk at 32 connections.

Sends: GET /openqq/send_group_message -> adapter -> RabbitMQ -> bridge -> simulated account and
back. Limit: an aiohttp endpoint doing one aio-pika request/reply per request, answered by a
plain aio-pika responder (two processes, as adapter and bridge are).
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


def wrk(url: str, seconds: float) -> Wrk:
    """Run wrk (Debian package) and parse its report."""
    exe = shutil.which("wrk")
    if exe is None:
        msg = "wrk is not installed: apt-get install wrk"
        raise RuntimeError(msg)
    out = subprocess.run(
        [exe, "-t2", f"-c{CONNECTIONS}", f"-d{max(1, round(seconds))}s", "--latency", "--timeout", "10s", url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = re.search(r"50%\s+(\S+)", out)
    p99 = re.search(r"99%\s+(\S+)", out)
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


async def our_sends(seconds: float, **settings: str) -> tuple[Wrk, CpuMeter]:
    """wrk on send_group_message: adapter and bridge as separate processes."""
    ns = new_namespace()
    bridge = start("bridge", ns, **settings)
    adapter = start("adapter", ns, **settings)
    try:
        await asyncio.to_thread(wait_running, bridge)
        url = adapter.url("/openqq/send_group_message?uid=67890&content=bench")
        await wait_http(adapter.url("/openqq/get_user_info"))
        cpu = CpuMeter(adapter=adapter.pid, bridge=bridge.pid, broker=broker_pid())
        cpu.start()
        ours = await asyncio.to_thread(wrk, url, seconds)
        cpu.stop()
    finally:
        await asyncio.to_thread(stop, adapter)
        await asyncio.to_thread(stop, bridge)
        await cleanup(ns)
    return ours, cpu


async def sends(seconds: float) -> list[Result]:
    # Limit first: aiohttp + one aio-pika round trip per request.
    ns = new_namespace()
    conn = await aio_pika.connect(AMQP_URL)
    ch = await conn.channel()
    ex = await ch.declare_exchange(f"{ns}.limit", aio_pika.ExchangeType.TOPIC, auto_delete=True)
    port = free_port()
    responder = _spawn("responder", ex.name)
    await asyncio.sleep(1.0)
    server = _spawn("rpc", str(port), ex.name)
    raw_cpu = CpuMeter(server=server.pid, responder=responder.pid, broker=broker_pid())
    try:
        await wait_http(f"http://127.0.0.1:{port}/x")
        raw_cpu.start()
        raw = await asyncio.to_thread(wrk, f"http://127.0.0.1:{port}/x", seconds)
        raw_cpu.stop()
    finally:
        _kill(server)
        _kill(responder)
        await conn.close()
    ours, cpu = await our_sends(seconds)
    notes = [
        f"errors: ours {ours.errors}, limit {raw.errors}",
        cpu.per_request(ours.rps * seconds),
        "limit " + raw_cpu.per_request(raw.rps * seconds),
    ]
    return [
        Result("sends", f"sync send_group_message, {CONNECTIONS} connections", ours.rps, "req/s",
               raw.rps, "aiohttp + one aio-pika request/reply", "ratio >= 0.8", notes),
        Result("sends", "p50 latency", ours.p50_ms, "ms", raw.p50_ms, "same limit"),
        Result("sends", "p99 latency", ours.p99_ms, "ms", raw.p99_ms, "same limit"),
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
