"""The cost of metrics: ingest and sends with ``metrics = true`` versus ``false``, same run.

The two settings alternate (on, off, on, off, ...) so that a machine getting busier or quieter
during the run weighs on both alike; each figure is the median of its rounds. The "limit" of
each row is the same measurement with metrics off, so the ratio is on/off (target >= 0.95).
"""

from __future__ import annotations

import statistics

from bench import http, ingest
from bench.common import Result


async def run(seconds: float, rounds: int = 3) -> list[Result]:
    got: dict[tuple[str, str], list[float]] = {}
    for _ in range(rounds):
        for flag in ("true", "false"):
            got.setdefault(("ingest", flag), []).append(await ingest.bridge(seconds, metrics=flag))
            sends, _ = await http.our_sends(seconds, metrics=flag)
            got.setdefault(("sends", flag), []).append(sends.rps)

    def median(part: str, flag: str) -> float:
        return statistics.median(got[(part, flag)])

    def note(part: str) -> list[str]:
        on = ", ".join(f"{v:,.0f}" for v in got[(part, "true")])
        off = ", ".join(f"{v:,.0f}" for v in got[(part, "false")])
        return [f"rounds on: {on}; off: {off}"]

    return [
        Result("metrics", "ingest, metrics on (limit: off)", median("ingest", "true"), "events/s",
               median("ingest", "false"), "the same bridge with metrics = false", "ratio >= 0.95",
               note("ingest")),
        Result("metrics", "sync sends, metrics on (limit: off)", median("sends", "true"), "req/s",
               median("sends", "false"), "the same processes with metrics = false",
               "ratio >= 0.95", note("sends")),
    ]  # fmt: skip
