"""Replica load: how long an adapter takes to load a large account's contacts, and the memory.

``python -m bench.replica [--groups 500] [--members 2000] [--friends 5000] [--timeout 120]``
starts a bridge with a simulated world of that size on RabbitMQ, waits until it is ``running``,
then starts an adapter and waits for its ``contact replica of default loaded`` line. It prints
the load time and the resident memory (RSS, sampled every 50 ms) of both processes before, at
the peak during, and after the load. A replica that does not load within ``--timeout`` seconds
is reported as such, with the memory seen meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from bench.common import cleanup, new_namespace, rss_mb, start, stop, wait_running

LOADED = "contact replica of default loaded"


async def run(groups: int, members: int, friends: int, timeout: float) -> dict[str, float | None]:
    """Measure one load; the figures by name (load_s is None when it never loaded)."""
    ns = new_namespace()
    world = {"sim_groups": str(groups), "sim_members": str(members), "sim_friends": str(friends)}
    bridge = start("bridge", ns, **world)
    adapter = None
    try:
        running = await asyncio.to_thread(wait_running, bridge, 300)
        bridge_before = rss_mb(bridge.pid)
        adapter = start("adapter", ns, rpc_timeout="120", log_level="info")
        log = adapter.tmpdir / "stderr.log"
        t0 = time.perf_counter()
        loaded: float | None = None
        peak = {"bridge": bridge_before, "adapter": 0.0}
        while time.perf_counter() - t0 < timeout:
            peak["bridge"] = max(peak["bridge"], rss_mb(bridge.pid))
            peak["adapter"] = max(peak["adapter"], rss_mb(adapter.pid))
            if LOADED in log.read_text():
                loaded = time.perf_counter() - t0
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(1)
        return {
            "start_to_running_s": running,
            "load_s": loaded,
            "bridge_rss_before_mb": bridge_before,
            "bridge_rss_peak_mb": peak["bridge"],
            "bridge_rss_after_mb": rss_mb(bridge.pid),
            "adapter_rss_peak_mb": peak["adapter"],
            "adapter_rss_after_mb": rss_mb(adapter.pid),
        }
    finally:
        if adapter is not None:
            await asyncio.to_thread(stop, adapter)
        await asyncio.to_thread(stop, bridge)
        await cleanup(ns)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.replica", description=__doc__)
    parser.add_argument("--groups", type=int, default=500)
    parser.add_argument("--members", type=int, default=2000)
    parser.add_argument("--friends", type=int, default=5000)
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()
    got = asyncio.run(run(args.groups, args.members, args.friends, args.timeout))
    shape = f"{args.groups} groups x {args.members} members, {args.friends} friends"
    print(f"replica load, {shape}:")
    for name, value in got.items():
        shown = "never (timeout)" if value is None else f"{value:.1f}"
        print(f"  {name}: {shown}")


if __name__ == "__main__":
    main()
