"""The Controller API (Mojo::Webqq ``Controller-API.md``): start_client, stop_client,
check_client, get_qrcode, and every single-account endpoint with ``client=NAME``.

Answers keep the original's shapes and words (lib/Mojo/Webqq/Controller.pm): ``{"code":1,
"status":"client not found"}`` without ``client``, ``{"code":1,"status":"client not
exists"}`` for a client nobody knows, ``{"code":-1,"status":"api not found"}`` (403) outside
``/openqq/``. Single-account requests go, unchanged, to that account's handlers (multi.py);
without ``client`` to the account ``default`` when it is known.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

from aiohttp import web

from bridge import __version__
from bridge.adapters.openqq.app import authorized
from bridge.adapters.openqq.jsonfmt import dumps
from bridge.adapters.openqq.params import BadRequest, Params, last, read_params
from bridge.adapters.openqq.routes import AUTH_FAILURE, TRANSPORT_PARAMS
from bridge.config import Settings, per_account_error
from bridge.controller.multi import AccountApis
from bridge.controller.registry import Account, Registry
from bridge.controller.supervisor import Supervisor
from bridge.core.routing import valid_name
from bridge.errors import BridgeError, ConfigError
from bridge.status import Observer

log = logging.getLogger(__name__)

JSON = "application/json"
CLIENT_NOT_FOUND = {"code": 1, "status": "client not found"}
CLIENT_NOT_EXISTS = {"code": 1, "status": "client not exists"}
API_NOT_FOUND = {"code": -1, "status": "api not found"}
#: Codes beyond the original's (0 ok, 1 client, 2 port, 3 failure, 4 pid, 5 max clients).
CODE_FAILURE = 3
CODE_BAD_SETTING = 6
DEFAULT_CLIENT = "default"
CONTROLLER_PATHS = frozenset(
    {"/openqq/start_client", "/openqq/stop_client", "/openqq/check_client", "/openqq/get_qrcode"}
)


def _answer(obj: Any, status: int = 200) -> web.Response:
    return web.Response(
        status=status,
        body=dumps(obj),
        headers={"Content-Type": JSON, "Access-Control-Allow-Origin": "*"},
    )


class ControllerApi:
    """The controller's HTTP endpoints."""

    def __init__(
        self,
        template: Settings,
        supervisor: Supervisor,
        registry: Registry,
        apis: AccountApis,
        *,
        observer: Observer | None = None,
    ) -> None:
        self.opts = template
        self.observer = observer
        self.supervisor = supervisor
        self.registry = registry
        self.apis = apis
        #: Settings of accounts being started (their API is made before their bridge runs).
        self.starting: dict[str, Settings] = {}

    def app(self) -> web.Application:
        """The aiohttp application."""
        app = web.Application(client_max_size=self.opts.max_request_bytes)
        app.router.add_route("*", "/{tail:.*}", self.dispatch)
        return app

    def settings_of(self, name: str) -> Settings:
        """An account's settings: its own when local, else the template."""
        b = self.supervisor.bridges.get(name)
        if b is not None:
            return b.settings
        return self.starting.get(name, self.opts)

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        """Controller endpoints here; every other /openqq/* to the client's own handlers."""
        if self.observer is not None and request.path in Observer.OPEN:
            # /healthz, /readyz: no token (orchestrators probe them).
            return await self.observer.handle(request)
        try:
            params = await read_params(request, max_bytes=self.opts.max_request_bytes)
        except BadRequest as exc:
            return _answer({"code": 400, "status": str(exc)}, 400)
        if not authorized(self.opts.access_token, params, request):
            log.warning("auth failure from %s on %s", request.remote, request.path)
            return web.Response(body=AUTH_FAILURE, headers={"Content-Type": JSON})
        if self.observer is not None and request.path in Observer.PATHS:
            return await self.observer.handle(request)
        path = request.path.rstrip("/")
        if path == "/openqq/check_client":
            return _answer(self.check_client(last(params, "client")))
        if path in CONTROLLER_PATHS and request.method in ("GET", "HEAD", "POST"):
            client = last(params, "client")
            if not client:
                return _answer(CLIENT_NOT_FOUND)
            if path == "/openqq/start_client":
                return _answer(await self.start_client(client, params))
            if path == "/openqq/stop_client":
                return _answer(await self.stop_client(client))
            return self.get_qrcode(client)
        if not request.path.startswith("/openqq/"):
            return _answer(API_NOT_FOUND, 403)
        client = last(params, "client")
        if client is None and DEFAULT_CLIENT in self.registry.accounts:
            client = DEFAULT_CLIENT
        if not client:
            return _answer(CLIENT_NOT_FOUND)
        api = self.apis.apis.get(client)
        if api is None:
            return _answer(CLIENT_NOT_EXISTS)
        return await api.api.dispatch(request)

    # --- start, stop ----------------------------------------------------------------------
    def _started(self, name: str, status: str) -> dict[str, Any]:
        b = self.supervisor.bridges[name]
        return {
            "client": name,
            "code": 0,
            "pid": b.pid,
            "port": self.apis.port(name),
            "status": status,
        }

    async def start_client(self, name: str, params: Params) -> dict[str, Any]:
        """Start a bridge for ``name`` with the template plus the allowed parameters."""
        if not valid_name(name):
            return {
                "code": 1,
                "status": "client must be 1-64 letters, digits, '_' or '-' (the bus account name)",
            }
        if name in self.supervisor.bridges:
            return self._started(name, "client already exists")
        acc = self.registry.accounts.get(name)
        if acc is not None and not acc.local:
            where = acc.presence.host if acc.presence else "another host"
            return {"code": 1, "status": f"client already runs on {where}, not started here"}
        overrides = {}
        for key, values in params.items():
            if key in TRANSPORT_PARAMS:
                continue
            problem = per_account_error(key)
            if problem:
                return {"code": CODE_BAD_SETTING, "status": f"parameter {key!r}: {problem}"}
            overrides[key] = values[-1]
        try:
            self.starting[name] = self.supervisor.account_settings(name, overrides)
        except ConfigError as exc:
            return {"code": CODE_BAD_SETTING, "status": str(exc)}
        try:
            # The API (and its check_event buffer) first: nothing the bridge says is missed.
            await self.registry.add(name, local=True)
            self.supervisor.start(name, overrides)
        except (OSError, BridgeError, ConnectionError) as exc:
            log.error("client %s: not started: %s", name, exc)
            await self.registry.forget(name)
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            return {"code": CODE_FAILURE, "status": f"failure: {reason}"}
        finally:
            self.starting.pop(name, None)
        return self._started(name, "success")

    async def stop_client(self, name: str) -> dict[str, Any]:
        """Stop the local bridge of ``name`` (SIGTERM, bounded wait, SIGKILL) and forget it."""
        if name not in self.supervisor.bridges:
            acc = self.registry.accounts.get(name)
            if acc is not None:
                where = acc.presence.host if acc.presence else "another host"
                return {"code": 1, "status": f"client runs on {where}: stop it there"}
            return CLIENT_NOT_EXISTS
        port = self.apis.port(name)
        b = await self.supervisor.stop(name)
        await self.registry.forget(name)
        return {"client": name, "code": 0, "pid": b.pid, "port": port, "status": "success"}

    # --- check, QR code -------------------------------------------------------------------
    def _entry(self, acc: Account) -> dict[str, Any]:
        b = self.supervisor.bridges.get(acc.name)
        p = acc.presence
        s = b.settings if b is not None else None
        upstream = p.upstream if p else (s.upstream if s else None)
        # A local bridge that died (and waits for its restart) is stopped, whatever it said last.
        down = b is not None and not self.supervisor.alive(b)
        entry: dict[str, Any] = {
            "client": acc.name,
            "account": acc.name,
            "state": "stop" if down else acc.state,
            "pid": b.pid if b is not None else None,
            "port": self.apis.port(acc.name),
            "start_time": p.start_time if p else (b.start_time if b else None),
            "version": p.version if p else __version__,
            "host": p.host if p else socket.gethostname(),
            "upstream": upstream,
            "tmpdir": p.tmpdir if p else (str(s.data_dir) if s else None),
            "log_level": s.log_level if s else None,
        }
        if upstream == "sim":
            entry["sim_listen"] = p.sim_listen if p else None
        return entry

    def check_client(self, name: str | None) -> dict[str, Any]:
        """Every client (or one): ``{"code":0,"client":[...]}``."""
        if name is not None:
            acc = self.registry.accounts.get(name)
            if acc is None:
                return CLIENT_NOT_EXISTS
            return {"code": 0, "client": [self._entry(acc)]}
        accounts = sorted(self.registry.accounts.values(), key=lambda a: a.name)
        return {"code": 0, "client": [self._entry(a) for a in accounts]}

    def get_qrcode(self, name: str) -> web.Response:
        """The login QR code PNG while the client waits for a scan; 404 otherwise."""
        acc = self.registry.accounts.get(name)
        if acc is None:
            return _answer(CLIENT_NOT_EXISTS)
        png = acc.qrcode
        b = self.supervisor.bridges.get(name)
        if png is None and b is not None and acc.state == "scaning":
            # Adopted after a controller restart: the QR event came before we listened.
            try:
                png = (b.settings.data_dir / f"mojo_webqq_qrcode_{name}.png").read_bytes()
            except OSError:
                png = None
        if png is None:
            status = f"no QR code: client {name} is {acc.state}, not waiting for a scan"
            return _answer({"code": 1, "status": status}, 404)
        return web.Response(
            body=png,
            headers={
                "Content-Type": "image/png",
                "Cache-Control": "no-cache",
                "Access-Control-Allow-Origin": "*",
            },
        )
