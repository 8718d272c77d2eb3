"""Settings: defaults, then a TOML file (``--config``), then environment variables (env wins).

Each setting is declared once, as a field of :class:`Settings` with its help text in its
``Meta(description=...)``: ``--help``, the README check and every component read that one
declaration, under that one name. Every setting has an environment variable
``OPENQQ_<NAME>`` (``AMQP_URL`` for the broker). Values are validated at start; an error
names the setting and where it came from, in one line. Secrets (the AMQP password) are never
logged: use :func:`bridge.bus.amqp.redact`.
"""

from __future__ import annotations

import os
import tempfile
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_type_hints

import msgspec
from msgspec import Meta

from bridge.core.events import DEFAULT_EVENTS, EVENT_NAMES
from bridge.core.routing import valid_name
from bridge.errors import ConfigError

PositiveInt = Annotated[int, Meta(ge=1)]
Seconds = Annotated[float, Meta(ge=0)]


class Settings(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Every setting of openqq-bridge (see ``openqq-bridge --help``)."""

    account: Annotated[
        str,
        Meta(
            description="account name: routing keys, queue names, data files (letters, digits, _ -)"
        ),
    ] = "default"
    namespace: Annotated[
        str, Meta(description="prefix of every exchange and queue name (letters, digits, _ -)")
    ] = "openqq"
    amqp_url: Annotated[
        str | None,
        Meta(
            description=(
                "RabbitMQ URL, e.g. amqp://guest:guest@127.0.0.1:5672/ (unset: in-memory bus)"
            )
        ),
    ] = None
    upstream: Annotated[
        Literal["sim", "onebot"],
        Meta(description="the QQ side: sim (simulated account) or onebot (NapCat, LLBot, ...)"),
    ] = "sim"
    queue_type: Annotated[
        Literal["classic", "quorum"],
        Meta(description="classic or quorum command queues (quorum: clusters, standby bridges)"),
    ] = "classic"
    prefetch: Annotated[
        PositiveInt,
        Meta(description="unacknowledged commands per queue the bridge works on at once"),
    ] = 64
    connect_retry_seconds: Annotated[
        Seconds, Meta(description="how long to retry the first broker connection before exiting")
    ] = 30.0
    event_buffer: Annotated[
        PositiveInt,
        Meta(description="events held while the broker is away; the upstream waits when full"),
    ] = 10_000
    buffer_wait: Annotated[
        Seconds,
        Meta(description="seconds an upstream event may wait for buffer room before refused"),
    ] = 5.0
    ready_wait: Annotated[
        Seconds, Meta(description="seconds a command waits for the account to be running")
    ] = 30.0
    send_interval: Annotated[
        Seconds | None, Meta(description="min seconds between any two sends (default: 0 for sim)")
    ] = None
    send_interval_per_target: Annotated[
        Seconds | None, Meta(description="min seconds between sends to one conversation (sim: 0)")
    ] = None
    tmpdir: Annotated[
        str,
        Meta(
            description="directory of the state JSON, QR code PNG, pid file (default: system temp)"
        ),
    ] = ""
    show_message: Annotated[
        bool, Meta(description="print each message in one readable line on stdout (true/false)")
    ] = True
    log_level: Annotated[
        Literal["debug", "info", "warning", "error"],
        Meta(description="debug, info, warning or error"),
    ] = "info"
    idempotency_hours: Annotated[
        float, Meta(gt=0, description="how long a command's message_id is remembered")
    ] = 168.0
    sim_listen: Annotated[
        str, Meta(description="host:port of the simulated account's control endpoint (/sim/inject)")
    ] = "127.0.0.1:5001"
    sim_login_delay: Annotated[
        Seconds, Meta(description="seconds the simulated login spends in each state")
    ] = 0.2
    sim_friends: Annotated[
        int, Meta(ge=0, le=1_000_000, description="extra generated friends in the simulated world")
    ] = 0
    sim_groups: Annotated[
        int, Meta(ge=0, le=100_000, description="extra generated groups in the simulated world")
    ] = 0
    sim_members: Annotated[
        int, Meta(ge=0, le=10_000, description="members of each generated group")
    ] = 0
    sim_load_rate: Annotated[
        Seconds, Meta(description="group messages per second the simulated account generates")
    ] = 0.0
    sim_load_seconds: Annotated[
        float, Meta(gt=0, description="how long the generated load lasts")
    ] = 60.0
    onebot_url: Annotated[
        str, Meta(description="forward WebSocket URL of the OneBot v11 implementation")
    ] = "ws://127.0.0.1:3001"
    onebot_token: Annotated[
        str | None,
        Meta(description="OneBot access token (sent as Authorization: Bearer; checked in reverse)"),
    ] = None
    onebot_mode: Annotated[
        Literal["forward", "reverse"],
        Meta(description="forward (the bridge connects) or reverse (the implementation connects)"),
    ] = "forward"
    onebot_listen: Annotated[
        str, Meta(description="host:port the bridge listens on for reverse WebSocket")
    ] = "127.0.0.1:8080"
    onebot_path: Annotated[str, Meta(description="path of the reverse WebSocket endpoint")] = (
        "/onebot/v11/ws"
    )
    onebot_action_timeout: Annotated[
        float,
        Meta(
            gt=0,
            le=600,
            description="seconds a OneBot action may take (a send that times out fails)",
        ),
    ] = 30.0
    onebot_risk_retcodes: Annotated[
        list[int], Meta(description="retcodes treated as risk control (风控), comma-separated")
    ] = msgspec.field(default_factory=list)
    listen: Annotated[str, Meta(description="host:port of the Openqq HTTP API (/openqq/*)")] = (
        "127.0.0.1:5000"
    )
    access_token: Annotated[
        str | None,
        Meta(description="token the HTTP API requires (access_token param or Bearer header)"),
    ] = None
    max_request_bytes: Annotated[
        int, Meta(ge=1024, le=1 << 30, description="largest HTTP request body the API accepts")
    ] = 1 << 20
    rpc_timeout: Annotated[
        float, Meta(gt=0, description="seconds the HTTP API waits for the bridge's reply")
    ] = 30.0
    shutup_unit: Annotated[
        Literal["seconds", "minutes"],
        Meta(description="unit of shutup_group_member's time: seconds (seed doc) or minutes"),
    ] = "seconds"
    check_event_list_max_size: Annotated[
        PositiveInt, Meta(description="items the check_event buffer keeps")
    ] = 20
    check_event_timeout: Annotated[
        float, Meta(gt=0, le=3600, description="seconds a check_event long poll waits")
    ] = 30.0
    post_api: Annotated[
        str | None, Meta(description="URL every message and listed event is POSTed to")
    ] = None
    post_event: Annotated[bool, Meta(description="also report events (true/false)")] = True
    post_event_list: Annotated[
        list[str], Meta(description="events reported and recorded, comma-separated")
    ] = msgspec.field(default_factory=lambda: list(DEFAULT_EVENTS))
    post_stdout: Annotated[
        bool, Meta(description="print each reported item as a JSON line on stdout")
    ] = False
    post_api_retry_seconds: Annotated[
        Seconds, Meta(description="how long a report is retried before dead-lettered")
    ] = 600.0
    post_api_timeout: Annotated[
        float, Meta(gt=0, description="seconds one post_api request may take")
    ] = 120.0
    poll_api: Annotated[
        str | None, Meta(description="URL of the poll_api heartbeat (redirects are followed)")
    ] = None
    poll_interval: Annotated[float, Meta(gt=0, description="seconds between poll_api requests")] = (
        5.0
    )

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


def _descriptions() -> dict[str, str]:
    hints = get_type_hints(Settings, include_extras=True)
    out: dict[str, str] = {}
    for field in Settings.__struct_fields__:
        metas = [m for m in getattr(hints[field], "__metadata__", ()) if isinstance(m, Meta)]
        texts = [m.description for m in metas if m.description]
        if not texts:
            msg = f"setting {field!r} has no description"
            raise TypeError(msg)
        out[field] = texts[-1]
    return out


#: One line of help per setting (its ``Meta.description``), in declaration order.
HELP: dict[str, str] = _descriptions()


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
