"""Scale: worlds of 1,000 groups x 500 members and of 500 groups x 2,000 members (a million),
each with 5,000 friends.

Bridge and adapter resident memory, time from process start to ``running``, time of a full
``/openqq/get_group_info``, and lookups by uid (search_group, search_friend). ``replica_memory``
loads the same world's contact book group by group in a fresh process (what an adapter's
replica holds once loaded; ``python -m bench.scale GROUPS MEMBERS FRIENDS`` runs it alone).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time

import aiohttp
import msgspec

from bench.common import (
    Proc,
    Result,
    cleanup,
    new_namespace,
    rss_mb,
    start,
    stop,
    wait_running,
)
from bridge.core.codec import encode
from bridge.core.contacts import ContactBook
from bridge.core.members import Members
from bridge.core.model import Friend, Group
from bridge.upstream.sim.world import default_world


async def run(
    groups: int = 1000, members: int = 500, friends: int = 5000, *, replica_wait: float = 300
) -> list[Result]:
    """The world behind a bridge and an adapter on RabbitMQ."""
    ns = new_namespace()
    world = {"sim_groups": str(groups), "sim_members": str(members), "sim_friends": str(friends)}
    bridge = start("bridge", ns, **world)
    adapter = start("adapter", ns, rpc_timeout="120", log_level="info")
    try:
        to_running = await asyncio.to_thread(wait_running, bridge, 300)
        # Before the adapter's reads: answering them costs transient memory (big bodies).
        at_running = rss_mb(bridge.pid)
        replica = await _replica_loaded(adapter, replica_wait)
        reads = [] if replica is None else await _reads(adapter, groups, friends)
        bridge_rss, adapter_rss = rss_mb(bridge.pid), rss_mb(adapter.pid)
        bridge_peak, adapter_peak = rss_mb(bridge.pid, "VmHWM"), rss_mb(adapter.pid, "VmHWM")
    finally:
        await asyncio.to_thread(stop, adapter)
        await asyncio.to_thread(stop, bridge)
        await cleanup(ns)
    shape = f"{groups} groups x {members} members, {friends} friends"
    out = [
        Result("scale", f"bridge RSS at running ({shape})", at_running, "MB", target="<= 300 MB"),
        Result("scale", "bridge RSS after the adapter's reads", bridge_rss, "MB"),
        Result("scale", "bridge peak RSS (start, replica load, reads)", bridge_peak, "MB"),
        Result("scale", "start to running (bridge)", to_running, "s", target="<= 5 s"),
    ]
    if replica is None:
        # A contact book over the broker's message limit never loads without paged loading.
        note = f"not loaded within {replica_wait:.0f} s"
        return [
            *out,
            Result(
                "scale", "adapter replica loaded after running", float("nan"), "s", notes=[note]
            ),
        ]
    return [
        *out,
        Result("scale", "adapter RSS (with its replica)", adapter_rss, "MB", target="<= 300 MB"),
        Result("scale", "adapter peak RSS (replica load, full get_group_info)", adapter_peak, "MB"),
        Result("scale", "adapter replica loaded after running", replica, "s"),
        *reads,
    ]


async def _replica_loaded(adapter: Proc, wait: float) -> float | None:
    """Seconds until the adapter's replica is loaded, None when it is not within ``wait``."""
    t0 = time.perf_counter()
    log = adapter.tmpdir / "stderr.log"
    while "contact replica of default loaded" not in log.read_text():
        if time.perf_counter() - t0 > wait:
            return None
        await asyncio.sleep(0.05)
    return time.perf_counter() - t0


async def _reads(adapter: Proc, groups: int, friends: int) -> list[Result]:
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
    return [
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


def replica_memory(groups: int = 500, members: int = 2000, friends: int = 5000) -> list[Result]:
    """A replica's contact book of the world, loaded group by group in a fresh process."""
    cmd = [sys.executable, "-m", "bench.scale", str(groups), str(members), str(friends)]
    out = subprocess.run(cmd, capture_output=True, check=True, timeout=600).stdout
    figures = msgspec.json.decode(out)
    shape = f"{groups} x {members} + {friends} friends"
    return [
        Result(
            "scale",
            f"replica book RSS, in-process load ({shape})",
            figures["rss"],
            "MB",
            target="<= 300 MB",
            notes=[f"{figures['base']:.0f} MB before loading"],
        ),
        Result(
            "scale",
            "encoding a full get_group_info body (in-process)",
            figures["encode"],
            "s",
            notes=[f"{figures['body'] / 1e6:.0f} MB"],
        ),
        Result("scale", "packed members: bytes held a member", figures["per_member"], "B"),
    ]


def _load_replica_book(groups: int, members: int, friends: int) -> dict[str, float]:
    base = rss_mb(os.getpid())
    world = default_world(friends, groups, members)
    # What the bridge sends (one body per group, as pages would), decoded as the replica does.
    bodies = [encode(g) for g in world.groups.values()]
    friend_body = encode(list(world.friends.values()))
    user, discusses = world.user, list(world.discusses.values())
    t0 = time.perf_counter()
    body = encode(list(world.groups.values()))
    encode_s = time.perf_counter() - t0
    size = len(body)
    del world, body
    group_decoder = msgspec.json.Decoder(Group)
    book = ContactBook()
    book.load(
        user,
        msgspec.json.decode(friend_body, type=list[Friend]),
        (group_decoder.decode(bodies.pop()) for _ in range(len(bodies))),
        discusses,
    )
    del bodies, friend_body
    packed = [g.member for g in book.groups if isinstance(g.member, Members)]
    per_member = sum(m.nbytes() for m in packed) / max(sum(map(len, packed)), 1)
    assert sum(len(g.member) for g in book.groups) >= groups * members
    return {
        "rss": rss_mb(os.getpid()),
        "base": base,
        "encode": encode_s,
        "body": size,
        "per_member": per_member,
    }


if __name__ == "__main__":
    g, m, f = (int(a) for a in sys.argv[1:4])
    sys.stdout.buffer.write(msgspec.json.encode(_load_replica_book(g, m, f)))
