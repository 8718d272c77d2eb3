"""Run the benchmarks: ``python -m bench [--quick] [--seconds N] [--parts ingest,sends,...]``.

``--metrics off`` runs every process with ``metrics = false``; the part ``metrics`` measures
ingest and sends with metrics on and off in the same run (it is not in the default parts).

Each part measures our figure and its raw limit in the same run, on the same machine and
broker, and prints the ratio. Needs RabbitMQ (AMQP_URL, default guest@127.0.0.1) and wrk.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time

from bench import common, http, ingest, latency, metrics_cost, scale
from bench.common import Result

PARTS = ("ingest", "sends", "reads", "latency", "scale")
#: Parts run only when asked for.
EXTRA_PARTS = ("metrics",)


async def run(parts: list[str], seconds: float, quick: bool, rounds: int = 3) -> list[Result]:
    results: list[Result] = []
    for part in parts:
        t0 = time.perf_counter()
        print(f"# {part} ...", file=sys.stderr, flush=True)
        if part == "ingest":
            results += await ingest.run(seconds, rounds=rounds)
        elif part == "sends":
            results += await http.sends(seconds)
        elif part == "reads":
            results += await http.reads(seconds)
        elif part == "latency":
            results += await latency.run(seconds, rate=100 if quick else 500, rounds=rounds)
        elif part == "metrics":
            results += await metrics_cost.run(seconds, rounds=1 if quick else rounds)
        elif part == "scale":
            if quick:
                # 100 members a group: packed (bridge.core.members), as big groups are.
                results += await scale.run(10, 100, 50)
                results += await asyncio.to_thread(scale.replica_memory, 10, 100, 50)
            else:
                results += await scale.run()
                # The million-member world (issue 15); its replica needs paged loading.
                results += await scale.run(500, 2000, 5000, replica_wait=120)
                results += await asyncio.to_thread(scale.replica_memory, 500, 2000, 5000)
        print(f"# {part} took {time.perf_counter() - t0:.0f}s", file=sys.stderr, flush=True)
    return results


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}"


def report(results: list[Result]) -> str:
    lines = [
        f"machine: {os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}"
        " (bridge, adapter, RabbitMQ, wrk and the limits all share it)",
        "",
        "| part | figure | ours | limit | ratio | target | limit is | notes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        ratio = f"{r.ratio:.2f}" if r.ratio is not None else "-"
        lines.append(
            f"| {r.part} | {r.figure} | {fmt(r.value)} {r.unit} | {fmt(r.limit)} | {ratio} |"
            f" {r.target} | {r.limit_what} | {'; '.join(r.notes)} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="1 s per part and a small world (smoke)"
    )
    parser.add_argument(
        "--seconds", type=float, default=12.0, help="seconds per measurement (default 12)"
    )
    parser.add_argument(
        "--parts",
        default=",".join(PARTS),
        help=f"comma-separated: {','.join(PARTS + EXTRA_PARTS)} (default: all but metrics)",
    )
    parser.add_argument(
        "--metrics",
        choices=("on", "off"),
        default="on",
        help="Prometheus metrics in the processes (default on; the part 'metrics' compares)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="alternating rounds of ingest, latency and metrics (default 3)",
    )
    args = parser.parse_args()
    if args.metrics == "off":
        common.DEFAULTS["metrics"] = "false"
    parts = [p for p in args.parts.split(",") if p]
    unknown = set(parts) - set(PARTS) - set(EXTRA_PARTS)
    if unknown:
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")
    seconds = 1.0 if args.quick else args.seconds
    print(report(asyncio.run(run(parts, seconds, args.quick, args.rounds))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
