"""The ``openqq-bridge`` command: argument parsing, logging, settings, process wiring.

Exit codes: 0 clean stop; 2 bad settings or arguments, including an AMQP_URL whose login or
virtual host the broker refuses (at once: retrying cannot help); 3 broker unreachable after
``connect_retry_seconds``; 4 another bridge already runs for the account; 1 anything
unexpected (with a traceback in the log).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Sequence

from aiohttp import web
from prometheus_client import CollectorRegistry

from bridge import __version__
from bridge.adapters.onebot.face import OneBotFace
from bridge.adapters.openqq.adapter import OpenqqAdapter
from bridge.bus.amqp import AmqpBus, redact
from bridge.bus.base import Bus
from bridge.bus.lease import BrokerLease
from bridge.bus.memory import MemoryBus
from bridge.bus.presence import PresenceAnnouncer
from bridge.bus.record import StreamRecord
from bridge.bus.topology import declare_account, declare_exchanges
from bridge.clientfiles import ClientFiles
from bridge.config import (
    HELP,
    Settings,
    allowed_range,
    cluster_advice,
    env_name,
    load_accounts,
    load_settings,
    parse_hostport,
    unknown_variables,
)
from bridge.controller.run import Controller
from bridge.core.events import Event, StateChange
from bridge.core.ports import Upstream
from bridge.core.presence import PRESENCE_INTERVAL, Presence
from bridge.core.routing import Names
from bridge.errors import AlreadyRunning, BrokerUnavailable, ConfigError
from bridge.executor import active_id
from bridge.logfmt import JsonFormatter
from bridge.metrics import Metrics
from bridge.netutil import start_site
from bridge.role import AlwaysActive, Role
from bridge.service import Bridge
from bridge.showmsg import show
from bridge.status import RECENT, Observer, bus_connected
from bridge.store import CommandRecord, SqliteRecord
from bridge.upstream.onebot.account import OneBotAccount
from bridge.upstream.onebot.settings import OneBotSettings
from bridge.upstream.sim.account import SimulatedAccount
from bridge.upstream.sim.settings import SimSettings

log = logging.getLogger("bridge")

EXIT_CONFIG = 2
EXIT_BROKER = 3
EXIT_RUNNING = 4

DESCRIPTION = """\
openqq-bridge connects a QQ account (simulated, or real through OneBot v11) to RabbitMQ:
messages and events become topics on <namespace>.events, and commands on
<namespace>.commands become sends, kicks, mutes and reads.

commands:
  run      bridge and Openqq HTTP API in one process; with AMQP_URL unset it uses the
           embedded in-memory bus: works on a fresh machine with nothing else
  bridge   the bridge alone, on RabbitMQ (AMQP_URL required); one process per account
  adapter  the Openqq HTTP API alone, on RabbitMQ (AMQP_URL required); run any number
  onebot   the OneBot v11 face for bots alone, on RabbitMQ (AMQP_URL required); `run`
           serves it too when onebot_server_listen, _reverse or _post is set
  controller
           the Controller API of Mojo::Webqq on RabbitMQ (AMQP_URL required): starts and
           supervises one bridge per account, serves every account with client=NAME
  declare  declare the namespace's exchanges and the account's command and dead-letter
           queues on RabbitMQ, then exit (commands sent before the bridge first runs wait)
  schemas  write (or --check) the JSON Schemas, AsyncAPI and OpenAPI documents
"""


def _settings_help() -> str:
    lines = ["settings (TOML file keys; environment variables win over the file):"]
    for field, text in HELP.items():
        default = getattr(Settings(), field)
        if isinstance(default, bool):
            default = str(default).lower()  # as TOML and the environment write it
        shown = "" if default in (None, "") else f" [default: {default}]"
        limits = allowed_range(field)
        shown += f" [range: {limits}]" if limits else ""
        lines.append(f"  {field:<24} {env_name(field)}\n      {text}{shown}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used to render --help)."""
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a subcommand's default must not undo a --config given before it.
    common.add_argument(
        "--config",
        metavar="FILE",
        default=argparse.SUPPRESS,
        help="TOML file with settings",
    )
    parser = argparse.ArgumentParser(
        prog="openqq-bridge",
        description=DESCRIPTION,
        epilog=_settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    for name, text in (
        ("run", "bridge and HTTP API in one process (embedded bus without AMQP_URL)"),
        ("bridge", "the bridge alone, on RabbitMQ"),
        ("adapter", "the Openqq HTTP API alone, on RabbitMQ"),
        ("onebot", "the OneBot v11 face for bots alone, on RabbitMQ"),
        ("controller", "the Controller API: many accounts behind one endpoint, on RabbitMQ"),
        ("declare", "declare the exchanges and the account's queues on RabbitMQ, then exit"),
    ):
        sub.add_parser(
            name,
            help=text,
            parents=[common],
            epilog=_settings_help(),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    schemas = sub.add_parser("schemas", help="write or check schemas/", parents=[common])
    schemas.add_argument("--out", default="schemas", help="directory (default: schemas)")
    schemas.add_argument(
        "--check", action="store_true", help="exit 1 if the files differ from the code"
    )
    return parser


def _setup_logging(level: str, fmt: str = "text", account: str | None = None) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(account))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    # The status page shows the last warnings and errors.
    logging.basicConfig(level=level.upper(), handlers=[handler, RECENT], force=True)
    # aio-pika logs each reconnect attempt, with tracebacks from its close callbacks; the
    # bus logs "lost" and "restored" once each instead.
    logging.getLogger("aio_pika").setLevel(max(logging.ERROR, logging.getLogger().level))
    logging.getLogger("aio_pika.tools").setLevel(logging.CRITICAL)
    logging.getLogger("aiormq").setLevel(max(logging.ERROR, logging.getLogger().level))
    # aiormq logs every failed connect attempt at ERROR; the bus logs one line per retry.
    logging.getLogger("aiormq.connection").setLevel(logging.CRITICAL)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    if args.cmd == "schemas":
        from bridge.schemagen import main as schemas_main

        return schemas_main(args.out, check=args.check)
    # Before the settings load: a misspelled variable may be why they are wrong.
    for warning in unknown_variables():
        print(f"openqq-bridge: warning: {warning}", file=sys.stderr)
    try:
        settings = load_settings(getattr(args, "config", None))
        if args.cmd == "onebot" and not onebot_face_wanted(settings):
            msg = (
                "`openqq-bridge onebot` needs onebot_server_listen"
                " (OPENQQ_ONEBOT_SERVER_LISTEN), onebot_server_reverse or onebot_server_post"
            )
            raise ConfigError(msg)
        accounts = load_accounts(getattr(args, "config", None)) if args.cmd == "controller" else {}
        roles_on_broker = ("bridge", "adapter", "declare", "controller", "onebot")
        if args.cmd in roles_on_broker and not settings.amqp_url:
            msg = (
                f"setting 'amqp_url' (AMQP_URL) is required by `openqq-bridge {args.cmd}`;"
                " `openqq-bridge run` uses the embedded bus"
            )
            raise ConfigError(msg)
    except ConfigError as exc:
        print(f"openqq-bridge: config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    _setup_logging(settings.log_level, settings.log_format, settings.account)
    try:
        return asyncio.run(serve(settings, args.cmd, accounts=accounts))
    except KeyboardInterrupt:
        return 0


def make_metrics(settings: Settings) -> Metrics:
    """This process's metrics, on a registry of its own (off when ``metrics = false``)."""
    return Metrics(CollectorRegistry() if settings.metrics else None)


def onebot_face_wanted(settings: Settings) -> bool:
    """True when a OneBot face setting is set (listen, reverse URLs or POST URLs)."""
    return bool(
        settings.onebot_server_listen
        or settings.onebot_server_reverse
        or settings.onebot_server_post
    )


def make_upstream(
    settings: Settings, files: ClientFiles, metrics: Metrics | None = None
) -> Upstream:
    """The upstream the settings select."""
    if settings.upstream == "onebot":
        return OneBotAccount(
            OneBotSettings(
                mode=settings.onebot_mode,
                url=settings.onebot_url,
                token=settings.onebot_token,
                listen=parse_hostport(settings.onebot_listen, "onebot_listen"),
                path=settings.onebot_path,
                action_timeout=settings.onebot_action_timeout,
                risk_retcodes=tuple(settings.onebot_risk_retcodes),
                self_id=settings.onebot_self_id,
                lookup_timeout=settings.onebot_lookup_timeout,
                input_status=settings.onebot_input_status,
            ),
            metrics=metrics or Metrics(None),
            account=settings.account,
        )
    listen = parse_hostport(settings.sim_listen, "sim_listen")
    return SimulatedAccount(
        SimSettings(
            listen=listen,
            login_delay=settings.sim_login_delay,
            qrcode_path=files.qrcode_path,
            extra_friends=settings.sim_friends,
            extra_groups=settings.sim_groups,
            members_per_group=settings.sim_members,
            load_rate=settings.sim_load_rate,
            load_seconds=settings.sim_load_seconds,
        )
    )


def _presence(
    settings: Settings, files: ClientFiles, current: list[Bridge], *, ended: bool
) -> Presence | None:
    """What the bridge announces on the bus (bridge.core.presence); None while standby."""
    if not current or not (ended or current[0].role.holds()):
        return None
    bridge = current[0]
    bound = getattr(bridge.upstream, "bound", None)
    sim = f"{bound[0]}:{bound[1]}" if settings.upstream == "sim" and bound else None
    return Presence(
        account=settings.account,
        # A bridge whose run() returned is stopped, whatever the upstream said last.
        state="stop" if ended else bridge.state,
        host=socket.gethostname(),
        pid=os.getpid(),
        start_time=files.start_time,
        version=__version__,
        upstream=settings.upstream,
        interval=PRESENCE_INTERVAL,
        sim_listen=sim,
        tmpdir=str(files.dir),
    )


async def _connect(settings: Settings, role: str) -> Bus:
    if not settings.amqp_url:
        log.info("AMQP_URL unset: using the embedded in-memory bus")
        return MemoryBus()
    log.info("connecting to RabbitMQ at %s", redact(settings.amqp_url))
    advice = cluster_advice(settings)
    if advice:
        log.warning("%s", advice)
    return await AmqpBus.connect(
        settings.amqp_url,
        name=f"openqq-bridge {role} {settings.namespace}/{settings.account}",
        retry_seconds=settings.connect_retry_seconds,
        max_message_bytes=int(settings.max_message_mb * 2**20),
    )


async def serve(
    settings: Settings, role: str = "run", *, accounts: dict[str, dict[str, str]] | None = None
) -> int:
    """Run the role until SIGINT/SIGTERM (or stop_client); return the exit code."""
    try:
        if role == "controller":
            return await _serve_controller(settings, accounts or {})
        if role == "adapter":
            await _serve_adapter(settings)
        elif role == "onebot":
            await _serve_onebot(settings)
        elif role == "declare":
            await _declare(settings)
        else:
            return await _serve_bridge(settings, with_adapter=role == "run")
    except BrokerUnavailable as exc:
        log.error("%s", exc)
        return EXIT_BROKER
    except ConfigError as exc:
        log.error("config error: %s", exc)
        return EXIT_CONFIG
    return 0


async def _declare(settings: Settings) -> None:
    bus = await _connect(settings, "declare")
    try:
        names = Names(settings.namespace)
        await declare_account(bus, names, settings.account, settings.queue_type)
        log.info(
            "declared %s, %s, %s and the queues of account %s",
            names.events,
            names.commands,
            names.dead,
            settings.account,
        )
    finally:
        await bus.close()


async def _serve_controller(settings: Settings, accounts: dict[str, dict[str, str]]) -> int:
    bus = await _connect(settings, "controller")
    controller = Controller(bus, settings, accounts, metrics=make_metrics(settings))
    stop = asyncio.Event()
    _on_signals(stop.set)
    try:
        await controller.start()
        await stop.wait()
        log.info("stopping the controller (its bridges keep running)")
    except AlreadyRunning as exc:
        log.error("%s", exc)
        return EXIT_RUNNING
    finally:
        await controller.stop()
        await bus.close()
    return 0


def _freeze_heap() -> None:
    """Take what the process holds once its account runs out of the cyclic collector's reach.

    Modules, the contact book and the connections are long-lived: without this every full
    collection walks them again, an 18 ms pause of the event path in a bridge with the small
    example world (measured at 500 events/s), more with large contact books. Frozen objects
    are still freed when no longer referenced; only cycles among them would stay. Once per
    process: later logins leave at most a new contact book to the collector.
    """
    if gc.get_freeze_count() == 0:
        gc.freeze()


def _on_signals(stop: Callable[[], None]) -> None:
    """The first SIGINT/SIGTERM stops gracefully (bounded); a second one exits at once."""
    loop = asyncio.get_running_loop()
    first: list[signal.Signals] = []

    def handler(sig: signal.Signals) -> None:
        if first:
            log.warning("second %s: exiting now, without finishing the stop", sig.name)
            # A person pressing Ctrl-C twice wants out; the pid lock dies with the process.
            os._exit(128 + sig)
        first.append(sig)
        log.info("%s: stopping (send it again to exit at once)", sig.name)
        stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, handler, sig)


async def _serve_adapter(settings: Settings) -> None:
    bus = await _connect(settings, "adapter")
    adapter = OpenqqAdapter(
        bus, Names(settings.namespace), settings, metrics=make_metrics(settings)
    )
    stop = asyncio.Event()
    _on_signals(stop.set)
    try:
        await adapter.start()
        await stop.wait()
        log.info("stopping")
    finally:
        await adapter.stop()
        await bus.close()


async def _observe(listen: str, observer: Observer) -> web.AppRunner:
    """Serve /metrics, /healthz, /readyz on ``metrics_listen``."""
    host, port = parse_hostport(listen, "metrics_listen")
    runner, bound = await start_site(observer.app(), host, port, "metrics_listen")
    log.info("metrics and health on http://%s:%d/metrics", *bound)
    return runner


async def _serve_onebot(settings: Settings) -> None:
    bus = await _connect(settings, "onebot")
    face = OneBotFace(bus, Names(settings.namespace), settings)
    stop = asyncio.Event()
    _on_signals(stop.set)
    try:
        await face.start()
        await stop.wait()
        log.info("stopping")
    finally:
        await face.stop()
        await bus.close()


def _record_and_role(settings: Settings, names: Names, bus: Bus) -> tuple[CommandRecord, Role]:
    """On RabbitMQ: the replicated record and the broker lease; embedded: SQLite, always active."""
    if isinstance(bus, AmqpBus):
        record = StreamRecord(
            bus, names.record_stream(settings.account), hours=settings.idempotency_hours
        )
        role = BrokerLease(
            bus, names.active_queue(settings.account), settings.queue_type, me=active_id()
        )
        return record, role
    path = settings.data_dir / f"openqq_bridge_{settings.namespace}_{settings.account}.sqlite"
    return SqliteRecord(path, ttl=settings.idempotency_hours * 3600), AlwaysActive()


async def _serve_bridge(settings: Settings, *, with_adapter: bool) -> int:
    names = Names(settings.namespace)
    files = ClientFiles(
        settings.data_dir,
        settings.account,
        extra={"upstream": settings.upstream, "namespace": settings.namespace},
    )
    try:
        files.lock()
    except AlreadyRunning as exc:
        log.error("%s", exc)
        return EXIT_RUNNING
    bus: Bus | None = None
    adapter: OpenqqAdapter | None = None
    face: OneBotFace | None = None
    announcer: PresenceAnnouncer | None = None
    ended = asyncio.Event()
    record: CommandRecord | None = None
    observed: web.AppRunner | None = None
    metrics = make_metrics(settings)
    current: list[Bridge] = []

    def state() -> str | None:
        return current[0].state if current else None

    def ready() -> str | None:
        if bus is None or not bus_connected(bus):
            return "broker connection down"
        now = state()
        if now != "running":
            return f"account {settings.account} is {now or 'starting'}, not running"
        return None

    try:
        bus = await _connect(settings, "bridge")
        record, role = _record_and_role(settings, names, bus)
        stopping = asyncio.Event()
        if settings.metrics_listen:
            observed = await _observe(settings.metrics_listen, Observer(metrics, ready))

        def stop() -> None:
            stopping.set()
            for b in current:
                b.request_stop()

        _on_signals(stop)
        announcer = PresenceAnnouncer(
            bus, names, lambda: _presence(settings, files, current, ended=ended.is_set())
        )

        def observe(event: Event) -> None:
            if settings.show_message:
                show(event)
            if isinstance(event, StateChange):
                assert announcer is not None
                announcer.changed()
                if event.params[1] == "running":
                    _freeze_heap()

        # Presence goes to the events exchange: it must exist before the first one.
        await declare_exchanges(bus, names)
        announcer.start()
        if with_adapter:
            # The adapter reaches the bridge only through the bus, even in one process.
            adapter_bus = MemoryBus(bus.broker) if isinstance(bus, MemoryBus) else bus
            adapter = OpenqqAdapter(
                adapter_bus, names, settings, metrics=metrics, state=state, ready=ready
            )
            await declare_exchanges(bus, names)
            await adapter.start()
            if onebot_face_wanted(settings):
                face = OneBotFace(adapter_bus, names, settings)
                await face.start()
        while True:
            bridge = Bridge(
                bus,
                names,
                make_upstream(settings, files, metrics),
                settings,
                record=record,
                role=role,
                files=files,
                show=observe,
                metrics=metrics,
            )
            current[:] = [bridge]
            if stopping.is_set():
                break
            await bridge.run()
            if not bridge.demoted or stopping.is_set():
                break
            # Another bridge took the account over: start again, as a standby.
        if adapter is not None and adapter.forwarder is not None:
            # The original posts state_change [running, stop] and stop before it exits.
            await adapter.forwarder.drain(bridge.stop_reports)
        log.info("stopped")
    finally:
        if face is not None:
            await face.stop()
        ended.set()
        if announcer is not None:
            await announcer.stop()
        if adapter is not None:
            await adapter.stop()
        if observed is not None:
            await observed.cleanup()
        if record is not None:
            # Before the bus: its writes still on their way need the connection.
            await record.close()
        if bus is not None:
            await bus.close()
        files.release()
    return 0
