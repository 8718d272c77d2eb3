"""Settings: defaults, then a TOML file (``--config``), then environment variables (env wins).

Every setting has an environment variable ``OPENQQ_<NAME>`` (``AMQP_URL`` for the broker).
Values are validated at start; an error names the setting and where it came from, in one
line. Secrets (the AMQP password) are never logged: use :func:`bridge.bus.amqp.redact`.
"""

from __future__ import annotations

import os
import tempfile
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from bridge.core.events import EVENT_TYPES
from bridge.core.routing import valid_name
from bridge.errors import ConfigError

PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
EVENT_NAMES = tuple(k.split(".", 1)[1] for k in EVENT_TYPES if k.startswith("event."))
#: The original's default post_event_list.
DEFAULT_EVENTS = (
    "login",
    "stop",
    "state_change",
    "input_qrcode",
    "new_group",
    "new_friend",
    "new_group_member",
    "lose_group",
    "lose_friend",
    "lose_group_member",
)
Seconds = Annotated[float, msgspec.Meta(ge=0)]


class Settings(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Every setting of openqq-bridge (see ``openqq-bridge --help``)."""

    account: str = "default"
    namespace: str = "openqq"
    amqp_url: str | None = None
    upstream: Literal["sim", "onebot"] = "sim"
    queue_type: Literal["classic", "quorum"] = "classic"
    prefetch: PositiveInt = 64
    connect_retry_seconds: Seconds = 30.0
    event_buffer: PositiveInt = 10_000
    buffer_wait: Seconds = 5.0
    ready_wait: Seconds = 30.0
    send_interval: Seconds | None = None
    send_interval_per_target: Seconds | None = None
    tmpdir: str = ""
    show_message: bool = True
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    idempotency_hours: Annotated[float, msgspec.Meta(gt=0)] = 168.0
    sim_listen: str = "127.0.0.1:5001"
    sim_login_delay: Seconds = 0.2
    sim_friends: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)] = 0
    sim_groups: Annotated[int, msgspec.Meta(ge=0, le=100_000)] = 0
    sim_members: Annotated[int, msgspec.Meta(ge=0, le=10_000)] = 0
    sim_load_rate: Seconds = 0.0
    sim_load_seconds: Annotated[float, msgspec.Meta(gt=0)] = 60.0
    onebot_url: str = "ws://127.0.0.1:3001"
    onebot_token: str | None = None
    onebot_mode: Literal["forward", "reverse"] = "forward"
    onebot_listen: str = "127.0.0.1:8080"
    onebot_path: str = "/onebot/v11/ws"
    onebot_action_timeout: Annotated[float, msgspec.Meta(gt=0, le=600)] = 30.0
    onebot_risk_retcodes: list[int] = msgspec.field(default_factory=list)
    onebot_self_id: Annotated[int, msgspec.Meta(ge=0)] = 0
    onebot_lookup_timeout: Annotated[float, msgspec.Meta(gt=0, le=600)] = 3.0
    onebot_input_status: bool = False
    listen: str = "127.0.0.1:5000"
    access_token: str | None = None
    max_request_bytes: Annotated[int, msgspec.Meta(ge=1024, le=1 << 30)] = 1 << 20
    rpc_timeout: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    shutup_unit: Literal["seconds", "minutes"] = "seconds"
    check_event_list_max_size: PositiveInt = 20
    check_event_timeout: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 30.0
    post_api: str | None = None
    post_event: bool = True
    post_event_list: list[str] = msgspec.field(default_factory=lambda: list(DEFAULT_EVENTS))
    post_stdout: bool = False
    post_api_retry_seconds: Seconds = 600.0
    post_api_timeout: Annotated[float, msgspec.Meta(gt=0)] = 120.0
    poll_api: str | None = None
    poll_interval: Annotated[float, msgspec.Meta(gt=0)] = 5.0

    def __repr__(self) -> str:
        """Like the default, with the broker password hidden."""
        fields = {f: getattr(self, f) for f in self.__struct_fields__}
        if self.amqp_url:
            fields["amqp_url"] = _redact_url(self.amqp_url)
        for secret in ("access_token", "onebot_token"):
            if fields.get(secret):
                fields[secret] = "***"
        return "Settings(" + ", ".join(f"{k}={v!r}" for k, v in fields.items()) + ")"

    @property
    def data_dir(self) -> Path:
        """Where the client data files live (state JSON, QR code, pid file, records)."""
        return Path(self.tmpdir or tempfile.gettempdir())


#: One line of help per setting, shown by ``--help``.
HELP: dict[str, str] = {
    "account": "account name: routing keys, queue names, data files (letters, digits, _ -)",
    "namespace": "prefix of every exchange and queue name (letters, digits, _ -)",
    "amqp_url": "RabbitMQ URL, e.g. amqp://guest:guest@127.0.0.1:5672/ (unset: in-memory bus)",
    "upstream": "the QQ side: sim (simulated account) or onebot (NapCat, LLBot, ...)",
    "queue_type": "classic or quorum command queues (quorum: clusters, standby bridges)",
    "prefetch": "unacknowledged commands per queue the bridge works on at once",
    "connect_retry_seconds": "how long to retry the first broker connection before exiting",
    "event_buffer": "events held while the broker is away; the upstream waits when full",
    "buffer_wait": "seconds an upstream event may wait for buffer room before refused",
    "ready_wait": "seconds a command waits for the account to be running",
    "send_interval": "min seconds between any two sends (default: 0 for sim)",
    "send_interval_per_target": "min seconds between sends to one conversation (sim: 0)",
    "tmpdir": "directory of the state JSON, QR code PNG, pid file (default: system temp)",
    "show_message": "print each message in one readable line on stdout (true/false)",
    "log_level": "debug, info, warning or error",
    "idempotency_hours": "how long a command's message_id is remembered",
    "sim_listen": "host:port of the simulated account's control endpoint (/sim/inject)",
    "sim_login_delay": "seconds the simulated login spends in each state",
    "sim_friends": "extra generated friends in the simulated world",
    "sim_groups": "extra generated groups in the simulated world",
    "sim_members": "members of each generated group",
    "sim_load_rate": "group messages per second the simulated account generates",
    "sim_load_seconds": "how long the generated load lasts",
    "onebot_url": "forward WebSocket URL of the OneBot v11 implementation",
    "onebot_token": "OneBot access token (sent as Authorization: Bearer; checked in reverse)",
    "onebot_mode": "forward (the bridge connects) or reverse (the implementation connects)",
    "onebot_listen": "host:port the bridge listens on for reverse WebSocket",
    "onebot_path": "path of the reverse WebSocket endpoint",
    "onebot_action_timeout": "seconds a OneBot action may take (a send that times out fails)",
    "onebot_risk_retcodes": "retcodes treated as risk control (风控), comma-separated",
    "onebot_self_id": "QQ number served; 0: the first that logs in (others are refused)",
    "onebot_lookup_timeout": "seconds an event waits for a lookup before it is published",
    "onebot_input_status": "publish NapCat input_status (a friend typing) as notify",
    "listen": "host:port of the Openqq HTTP API (/openqq/*)",
    "access_token": "token the HTTP API requires (access_token param or Bearer header)",
    "max_request_bytes": "largest HTTP request body the API accepts",
    "rpc_timeout": "seconds the HTTP API waits for the bridge's reply",
    "shutup_unit": "unit of shutup_group_member's time: seconds (seed doc) or minutes",
    "check_event_list_max_size": "items the check_event buffer keeps",
    "check_event_timeout": "seconds a check_event long poll waits",
    "post_api": "URL every message and listed event is POSTed to",
    "post_event": "also report events (true/false)",
    "post_event_list": "events reported and recorded, comma-separated",
    "post_stdout": "print each reported item as a JSON line on stdout",
    "post_api_retry_seconds": "how long a report is retried before dead-lettered",
    "post_api_timeout": "seconds one post_api request may take",
    "poll_api": "URL of the poll_api heartbeat (redirects are followed)",
    "poll_interval": "seconds between poll_api requests",
}


def _redact_url(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if not at or ":" not in creds:
        return url
    return f"{scheme}{sep}{creds.split(':', 1)[0]}:***@{host}"


_LISTS = frozenset({"post_event_list", "onebot_risk_retcodes"})


def env_name(field: str) -> str:
    """The environment variable of a setting."""
    return "AMQP_URL" if field == "amqp_url" else f"OPENQQ_{field.upper()}"


def parse_hostport(value: str, setting: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:5000`` for IPv6) -> (host, port), or ConfigError."""
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        msg = f"setting {setting!r}: {value!r} is not host:port"
        raise ConfigError(msg)
    return host, int(port)


def load_settings(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Defaults < TOML file < environment. Raises ConfigError naming the setting."""
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    origin: dict[str, str] = {}
    if path is not None:
        try:
            with Path(path).open("rb") as fh:
                data = tomllib.load(fh)
        except OSError as exc:
            msg = f"config file {path}: {exc.strerror or exc}"
            raise ConfigError(msg) from exc
        except tomllib.TOMLDecodeError as exc:
            msg = f"config file {path}: not valid TOML: {exc}"
            raise ConfigError(msg) from exc
        for key, value in data.items():
            if key not in HELP:
                msg = f"config file {path}: unknown setting {key!r}"
                raise ConfigError(msg)
            raw[key] = value
            origin[key] = f"config file {path}"
    for field in HELP:
        name = env_name(field)
        if name in env and env[name] != "":
            text = env[name]
            raw[field] = (
                [v.strip() for v in text.split(",") if v.strip()] if field in _LISTS else text
            )
            origin[field] = f"environment {name}"
    try:
        settings = msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        bad = _field_of(str(exc))
        where = origin.get(bad, "default") if bad else "settings"
        msg = f"setting {bad!r} ({where}): {exc}" if bad else f"{where}: {exc}"
        raise ConfigError(msg) from exc
    _check(settings, origin)
    return settings


def _field_of(error: str) -> str | None:
    marker = "at `$."
    if marker not in error:
        return None
    return error.split(marker, 1)[1].split("`", 1)[0].split("[", 1)[0]


def _check(s: Settings, origin: Mapping[str, str]) -> None:
    def where(field: str) -> str:
        return origin.get(field, "default")

    for field in ("account", "namespace"):
        value = getattr(s, field)
        if not valid_name(value):
            msg = (
                f"setting {field!r} ({where(field)}): {value!r} must be 1-64 letters,"
                " digits, '_' or '-' (it becomes part of routing keys)"
            )
            raise ConfigError(msg)
    if s.amqp_url is not None and not s.amqp_url.startswith(("amqp://", "amqps://")):
        msg = f"setting 'amqp_url' ({where('amqp_url')}): must start with amqp:// or amqps://"
        raise ConfigError(msg)
    parse_hostport(s.sim_listen, "sim_listen")
    parse_hostport(s.listen, "listen")
    parse_hostport(s.onebot_listen, "onebot_listen")
    if not s.onebot_url.startswith(("ws://", "wss://")):
        msg = f"setting 'onebot_url' ({where('onebot_url')}): must start with ws:// or wss://"
        raise ConfigError(msg)
    if not s.onebot_path.startswith("/"):
        msg = f"setting 'onebot_path' ({where('onebot_path')}): must start with /"
        raise ConfigError(msg)
    for field in ("post_api", "poll_api"):
        url = getattr(s, field)
        if url is not None and not url.startswith(("http://", "https://")):
            msg = f"setting {field!r} ({where(field)}): must be an http:// or https:// URL"
            raise ConfigError(msg)
    unknown = [n for n in s.post_event_list if n not in EVENT_NAMES]
    if unknown:
        msg = (
            f"setting 'post_event_list' ({where('post_event_list')}): unknown event(s)"
            f" {', '.join(unknown)}; known: {', '.join(EVENT_NAMES)}"
        )
        raise ConfigError(msg)
