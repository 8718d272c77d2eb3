"""Metrics: every Prometheus metric of a process, on a registry passed in explicitly.

One :class:`Metrics` per process (``cli`` makes it; tests make their own), handed to the parts
that count: the outbox, the command server, the executor, the upstream, the adapter. No metric
lives on prometheus-client's global default registry, so two bridges in one test process (or
two tests) never share counters. ``Metrics(None)`` is the switched-off variant: every call is a
no-op (the benchmark compares the two).

Labels are bounded: the account, an event or command kind (fixed sets in the code), an outcome,
a route name. Never a user id or message contents. Gauges that are a size of something (buffer
depth, commands in flight, waiters, post_api backlog) are read at scrape time through
:meth:`Metrics.probe`, so the hot paths do not keep them up to date.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, cast

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: Latency buckets (seconds) of publishes, commands and OneBot actions.
_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class _Null:
    """Stands in for every metric when metrics are off: each call does nothing."""

    def labels(self, *_args: str, **_kw: str) -> _Null:
        return self

    def inc(self, _amount: float = 1) -> None:
        return None

    def dec(self, _amount: float = 1) -> None:
        return None

    def set(self, _value: float) -> None:
        return None

    def observe(self, _value: float) -> None:
        return None


_NULL = _Null()

#: name -> (help, label names) of the gauges read at scrape time.
PROBES: dict[str, tuple[str, tuple[str, ...]]] = {
    "openqq_event_buffer_depth": ("Events buffered, waiting to be published", ("account",)),
    "openqq_commands_in_flight": ("Commands running now", ("account",)),
    "openqq_upstream_state": (
        "1 for the account's current state (running, scaning, ...), else 0",
        ("account", "state"),
    ),
    "openqq_check_event_waiters": ("check_event long polls waiting now", ("account",)),
    "openqq_post_api_backlog": (
        "post_api reports waiting in this adapter (unsettled deliveries)",
        ("account",),
    ),
    "openqq_queue_messages": (
        "Messages waiting in the account's queues on the broker (command kinds, dead, post_api)",
        ("account", "queue"),
    ),
}

#: Upstream states reported by openqq_upstream_state (those of the original, plus stop).
STATES = ("init", "loading", "scaning", "updating", "running", "stop")


class _Probes(Collector):
    """The gauges read at scrape time: (label values, function) per gauge name."""

    def __init__(self) -> None:
        self.sources: dict[str, list[tuple[tuple[str, ...], Callable[[], float]]]] = {
            name: [] for name in PROBES
        }

    def collect(self) -> Iterable[Metric]:
        for name, (text, labels) in PROBES.items():
            family = GaugeMetricFamily(name, text, labels=list(labels))
            for values, fn in self.sources[name]:
                family.add_metric(list(values), float(fn()))
            yield family

    def describe(self) -> Iterable[Metric]:
        for name, (text, labels) in PROBES.items():
            yield GaugeMetricFamily(name, text, labels=list(labels))


class Metrics:
    """The metrics of one process (``registry=None``: off, every call a no-op)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry
        self.enabled = registry is not None
        self._probes = _Probes()
        if registry is not None:
            registry.register(self._probes)

        def counter(name: str, text: str, labels: tuple[str, ...]) -> Counter:
            if registry is None:
                return cast(Counter, _NULL)
            return Counter(name, text, labels, registry=registry)

        def histogram(name: str, text: str, labels: tuple[str, ...]) -> Histogram:
            if registry is None:
                return cast(Histogram, _NULL)
            return Histogram(name, text, labels, buckets=_LATENCY, registry=registry)

        def gauge(name: str, text: str, labels: tuple[str, ...]) -> Gauge:
            if registry is None:
                return cast(Gauge, _NULL)
            return Gauge(name, text, labels, registry=registry)

        ev = ("account", "type")
        self.events_published = counter(
            "openqq_events_published", "Events handed to the broker", ev
        )
        self.events_confirmed = counter(
            "openqq_events_confirmed", "Events the broker confirmed", ev
        )
        self.events_refused = counter(
            "openqq_events_refused",
            "Events refused: buffer full, or the broker did not confirm",
            ev,
        )
        self.publish_seconds = histogram(
            "openqq_event_publish_seconds", "From publish to the broker's confirm", ("account",)
        )
        self.commands = counter(
            "openqq_commands",
            "Commands by kind and outcome (ok, failed, unknown, dead_lettered, duplicate)",
            ("account", "kind", "outcome"),
        )
        self.command_seconds = histogram(
            "openqq_command_seconds", "From delivery to reply", ("account", "kind")
        )
        self.pacing_waits = counter(
            "openqq_pacing_waits", "Sends that waited for the pacing interval", ("account",)
        )
        self.pacing_wait_seconds = counter(
            "openqq_pacing_wait_seconds", "Seconds sends waited for pacing", ("account",)
        )
        self.upstream_reconnects = counter(
            "openqq_upstream_reconnects", "Reconnects to the QQ side (OneBot)", ("account",)
        )
        self.onebot_action_seconds = histogram(
            "openqq_onebot_action_seconds", "OneBot action round trips", ("account", "action")
        )
        self.onebot_action_failures = counter(
            "openqq_onebot_action_failures",
            "OneBot actions that failed (refused, timed out, connection lost)",
            ("account", "action"),
        )
        self.risk_control = counter(
            "openqq_risk_control_hits", "Sends QQ refused for risk control (风控)", ("account",)
        )
        self.post_api_deliveries = counter(
            "openqq_post_api_deliveries",
            "post_api reports by outcome (delivered, dead_lettered)",
            ("account", "outcome"),
        )
        self.post_api_retries = counter(
            "openqq_post_api_retries", "post_api attempts retried", ("account",)
        )
        self.http_requests = counter(
            "openqq_http_requests",
            "HTTP requests by route name and status code",
            ("account", "endpoint", "code"),
        )
        self.messages = counter(
            "openqq_messages",
            "Messages seen on the bus by direction (in: received, out: sent)",
            ("account", "direction"),
        )
        self._typed: dict[tuple[str, str], tuple[Any, Any, Any]] = {}
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}

    def child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, cached: prometheus-client's lookup takes a lock each time."""
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def event_children(self, account: str, kind: str) -> tuple[Counter, Counter, Counter]:
        """(published, confirmed, refused) of one account and event type, cached."""
        key = (account, kind)
        found = self._typed.get(key)
        if found is None:
            found = (
                self.events_published.labels(account, kind),
                self.events_confirmed.labels(account, kind),
                self.events_refused.labels(account, kind),
            )
            self._typed[key] = found
        return cast(tuple[Counter, Counter, Counter], found)

    def probe(self, name: str, labels: tuple[str, ...], fn: Callable[[], float]) -> None:
        """Report ``fn()`` as gauge ``name`` with ``labels`` at every scrape."""
        if self.enabled:
            # A later owner of the same series (a bridge started again) replaces the earlier.
            self.unprobe(name, labels)
            self._probes.sources[name].append((labels, fn))

    def unprobe(self, name: str, labels: tuple[str, ...]) -> None:
        """Stop reporting a gauge's series (its owner stopped)."""
        self._probes.sources[name] = [s for s in self._probes.sources[name] if s[0] != labels]

    def forget_account(self, account: str) -> None:
        """Stop reporting every gauge of ``account`` (the controller dropped it)."""
        for name, sources in self._probes.sources.items():
            self._probes.sources[name] = [s for s in sources if s[0][:1] != (account,)]

    def state_probe(self, account: str, state: Callable[[], str]) -> None:
        """openqq_upstream_state for an account: 1 on its current state."""
        for name in STATES:
            self.probe("openqq_upstream_state", (account, name), _is(state, name))

    def render(self) -> bytes:
        """The text exposition format (empty when off)."""
        return b"" if self.registry is None else generate_latest(self.registry)


def _is(state: Callable[[], str], name: str) -> Callable[[], float]:
    return lambda: float(state() == name)


#: Off: for code built without a process's metrics (tests, tools).
OFF = Metrics(None)
