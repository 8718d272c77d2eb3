"""Scale: a world of 1,000 groups x 500 members and 5,000 friends.

Bridge and adapter resident memory, time from process start to ``running``, time of a full
``/openqq/get_group_info``, and lookups by uid (search_group, search_friend).
"""

from __future__ import annotations

import asyncio
import statistics
import time

import aiohttp

from bench.common import (
    Result,
    cleanup,
    new_namespace,
    rss_mb,
    start,
    stop,
    wait_running,
)


async def run(groups: int = 1000, members: int = 500, friends: int = 5000) -> list[Result]:
    ns = new_namespace()
    world = {"sim_groups": str(groups), "sim_members": str(members), "sim_friends": str(friends)}
    bridge = start("bridge", ns, **world)
    adapter = start("adapter", ns, rpc_timeout="120", log_level="info")
    try:
        to_running = await asyncio.to_thread(wait_running, bridge, 300)
        t0 = time.perf_counter()
        log = adapter.tmpdir / "stderr.log"
        while "contact replica of default loaded" not in log.read_text():
            if time.perf_counter() - t0 > 300:
                raise TimeoutError("replica not loaded")
            await asyncio.sleep(0.05)
        replica = time.perf_counter() - t0
        timeout = aiohttp.ClientTimeout(total=300)
        async with aiohttp.ClientSession(timeout=timeout) as s:
            t0 = time.perf_counter()
            async with s.get(adapter.url("/openqq/get_group_info")) as r:
                body = await r.read()
            full = time.perf_counter() - t0
            t0 = time.perf_counter()
            async with s.get(adapter.url("/openqq/get_group_basic_info")) as r:
                basic = await r.read()
            basic_time = time.perf_counter() - t0
            lookups = []
            for i in range(50):
                uid = 200_000 + (i * 37) % groups
                t0 = time.perf_counter()
                async with s.get(adapter.url(f"/openqq/search_group?uid={uid}")) as r:
                    found = await r.read()
                lookups.append((time.perf_counter() - t0) * 1000)
                assert found.startswith(b"["), found[:200]
            friend_lookups = []
            for i in range(50):
                uid = 10_000_000 + (i * 97) % friends
                t0 = time.perf_counter()
                async with s.get(adapter.url(f"/openqq/search_friend?uid={uid}")) as r:
                    assert (await r.read()).startswith(b"[")
                friend_lookups.append((time.perf_counter() - t0) * 1000)
        bridge_rss, adapter_rss = rss_mb(bridge.pid), rss_mb(adapter.pid)
    finally:
        await asyncio.to_thread(stop, adapter)
        await asyncio.to_thread(stop, bridge)
        await cleanup(ns)
    shape = f"{groups} groups x {members} members, {friends} friends"
    return [
        Result("scale", f"bridge RSS ({shape})", bridge_rss, "MB", target="<= 300 MB"),
        Result("scale", "adapter RSS (with its replica)", adapter_rss, "MB"),
        Result("scale", "start to running (bridge)", to_running, "s", target="<= 10 s"),
        Result("scale", "adapter replica loaded after running", replica, "s"),
        Result(
            "scale", f"full get_group_info ({len(body) / 1e6:.0f} MB)", full, "s", target="<= 2 s"
        ),
        Result(
            "scale", f"get_group_basic_info ({len(basic) / 1e3:.0f} kB)", basic_time * 1000, "ms"
        ),
        Result("scale", "search_group by uid, median of 50", statistics.median(lookups), "ms"),
        Result(
            "scale", "search_friend by uid, median of 50", statistics.median(friend_lookups), "ms"
        ),
    ]
