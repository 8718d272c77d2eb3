"""``openqq-bridge controller``: wires the data file, registry, per-account APIs,
supervisor and the Controller API (cli.py runs it until SIGINT/SIGTERM).

Stopping the controller leaves its bridges running (as wqcontroller does); the next
controller with the same tmpdir and namespace adopts them from the data file.
"""

from __future__ import annotations

import logging

import msgspec
from aiohttp import web

from bridge.adapters.openqq.adapter import MAX_FIELD, MAX_LINE
from bridge.adapters.openqq.httpserver import RawTargetRunner
from bridge.bus.base import Bus
from bridge.bus.topology import declare_exchanges
from bridge.config import Settings, parse_hostport
from bridge.controller.api import ControllerApi
from bridge.controller.datafile import DataFile
from bridge.controller.multi import AccountApis
from bridge.controller.registry import Registry
from bridge.controller.supervisor import Supervisor
from bridge.core.routing import Names
from bridge.errors import ConfigError
from bridge.metrics import OFF, Metrics
from bridge.netutil import start_site
from bridge.status import Observer, bus_connected

log = logging.getLogger(__name__)


class Controller:
    """All parts of one controller."""

    def __init__(
        self,
        bus: Bus,
        settings: Settings,
        accounts: dict[str, dict[str, str]],
        *,
        metrics: Metrics = OFF,
    ):
        self.bus = bus
        self.names = Names(settings.namespace)
        self.settings = settings
        self.accounts = accounts
        self.datafile = DataFile(settings.data_dir, settings.namespace)
        self.metrics = metrics
        self.apis = AccountApis(
            bus,
            self.names,
            self._settings_of,
            self.datafile.port_number,
            metrics=metrics,
            state_of=self._state_of,
        )
        self.registry = Registry(bus, self.names, self.apis.add, self.apis.remove)
        self.supervisor = Supervisor(settings, self.datafile, self.registry.forget)
        self.observer = Observer(
            metrics,
            self._ready,
            self.apis.sources,
            title=f"openqq-bridge controller {settings.namespace}",
        )
        self.api = ControllerApi(
            settings, self.supervisor, self.registry, self.apis, observer=self.observer
        )
        self._runner: web.AppRunner | None = None
        self.bound: tuple[str, int] | None = None

    def _settings_of(self, name: str) -> Settings:
        return self.api.settings_of(name)

    def _state_of(self, name: str) -> str | None:
        acc = self.registry.accounts.get(name)
        return None if acc is None else acc.state

    def _ready(self) -> str | None:
        if not bus_connected(self.bus):
            return "broker connection down"
        if self._runner is None:
            return "starting"
        return None

    async def start(self) -> None:
        """Resume the data file's clients, start the configured ones, then listen."""
        self.datafile.lock()
        self.datafile.load()
        await declare_exchanges(self.bus, self.names)
        await self.registry.start()
        for name in self.supervisor.resume():
            acc = await self.registry.add(name, local=True)
            # Until its next presence, an adopted bridge's state is what its state file says.
            acc.state = _file_state(self.supervisor.bridges[name].settings, name) or acc.state
        for name, overrides in sorted(self.accounts.items()):
            if name not in self.supervisor.bridges:
                answer = await self.api.start_client(name, {k: [v] for k, v in overrides.items()})
                if answer["code"] != 0:
                    msg = f"[accounts.{name}]: {answer['status']}"
                    raise ConfigError(msg)
        self.supervisor.run()
        host, port = parse_hostport(self.settings.controller_listen, "controller_listen")
        self._runner, self.bound = await start_site(
            self.api.app(),
            host,
            port,
            "controller_listen",
            RawTargetRunner,
            max_line_size=MAX_LINE,
            max_field_size=MAX_FIELD,
        )
        log.info("Controller API on http://%s:%d/openqq/", *self.bound)

    async def stop(self) -> None:
        """Stop serving; the bridges keep running."""
        if not self.datafile.locked:
            return  # another controller holds the files: nothing of ours started
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.supervisor.close()
        await self.registry.close()
        await self.apis.close()
        self.datafile.release()


def _file_state(settings: Settings, name: str) -> str | None:
    path = settings.data_dir / f"mojo_webqq_state_{name}.json"
    try:
        state = msgspec.json.decode(path.read_bytes()).get("state")
    except (OSError, msgspec.DecodeError, AttributeError):
        return None
    return state if isinstance(state, str) else None
