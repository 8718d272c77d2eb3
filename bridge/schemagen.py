"""Generates schemas/: JSON Schema of every bus body, AsyncAPI 3 and OpenAPI 3.1 documents.

``openqq-bridge schemas`` writes the files; ``--check`` (and tests/test_schemas.py) fails
when the committed files differ from what the code generates, so the contract cannot drift.
Every description is cleaned here (``inspect.cleandoc``), so the bytes do not depend on how a
msgspec or Python version lays out docstrings.
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path
from typing import Any

import msgspec

from bridge import __version__
from bridge.adapters.openqq.openapi import openapi
from bridge.core.commands import COMMAND_TYPES, REPLY_TYPES, command_name
from bridge.core.events import EVENT_TYPES
from bridge.core.presence import PRESENCE_KIND, Presence

DIALECT = "https://json-schema.org/draft/2020-12/schema"
REF = "#/components/schemas/{name}"


def _schema(tp: object, title: str, description: str) -> dict[str, Any]:
    schema = msgspec.json.schema(tp)
    return {"$schema": DIALECT, "title": title, "description": description, **schema}


def _doc(cls: type) -> str:
    """The class docstring, cleaned the same way on every Python version."""
    return inspect.getdoc(cls) or ""


def normalise(obj: object) -> Any:
    """``obj`` with every string ``description`` cleaned (indentation, surrounding blanks).

    msgspec versions differ in how they dedent a multi-line docstring (0.23 strips the
    indentation 0.19 keeps); cleaning every description here keeps the files byte-identical.
    """
    if isinstance(obj, dict):
        return {
            k: inspect.cleandoc(v) if k == "description" and isinstance(v, str) else normalise(v)
            for k, v in obj.items()
        }
    if isinstance(obj, list):
        return [normalise(v) for v in obj]
    return obj


def _dump(obj: object) -> bytes:
    clean = normalise(obj)
    return msgspec.json.format(msgspec.json.encode(clean, order="sorted"), indent=2) + b"\n"


def event_schemas() -> dict[str, dict[str, Any]]:
    """``events/<kind>.json`` for every event body."""
    return {
        f"events/{kind}.json": _schema(
            cls, kind, f"Body of {kind}.<account> on <namespace>.events: {_doc(cls)}"
        )
        for kind, cls in EVENT_TYPES.items()
    }


def command_schemas() -> dict[str, dict[str, Any]]:
    """``commands/<name>.json`` and ``replies/<name>.json`` for every command."""
    out: dict[str, dict[str, Any]] = {}
    for cls in COMMAND_TYPES:
        name = command_name(cls)
        out[f"commands/{name}.json"] = _schema(
            cls,
            name,
            f"Command on <namespace>.commands, key {cls.QUEUE}.<account>: {_doc(cls)}",
        )
        out[f"replies/{name}.json"] = _schema(
            REPLY_TYPES[name],
            f"reply to {name}",
            f"Reply body of {name} (Openqq JSON).",
        )
    return out


def asyncapi() -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the exchanges, queues and routing keys."""
    event_types = list(EVENT_TYPES.values())
    (_, components) = msgspec.json.schema_components(
        [*event_types, *COMMAND_TYPES, Presence], ref_template=REF
    )

    def exchange(name: str) -> dict[str, Any]:
        return {
            "name": name,
            "type": "topic",
            "durable": True,
            "autoDelete": False,
            "vhost": "/",
        }

    params = {
        "namespace": {"default": "openqq", "description": "setting namespace"},
        "account": {"default": "default", "description": "setting account"},
    }
    messages: dict[str, Any] = {}
    for kind, cls in EVENT_TYPES.items():
        messages[kind.replace(".", "_")] = {
            "name": kind,
            "title": kind,
            "summary": _doc(cls),
            "contentType": "application/json",
            "payload": {"$ref": REF.format(name=cls.__name__)},
            "bindings": {"amqp": {"messageType": kind, "bindingVersion": "0.3.0"}},
        }
    for cmd in COMMAND_TYPES:
        name = command_name(cmd)
        messages[f"command_{name}"] = {
            "name": name,
            "title": f"command {name}",
            "summary": _doc(cmd),
            "contentType": "application/json",
            "payload": {"$ref": REF.format(name=cmd.__name__)},
        }
    messages["presence_bridge"] = {
        "name": PRESENCE_KIND,
        "title": PRESENCE_KIND,
        "summary": _doc(Presence),
        "contentType": "application/json",
        "payload": {"$ref": REF.format(name="Presence")},
        "bindings": {"amqp": {"messageType": PRESENCE_KIND, "bindingVersion": "0.3.0"}},
    }
    channels: dict[str, Any] = {
        "events": {
            "address": "{post_type}.{type}.{account}",
            "description": (
                "Every message and event of every account on topic exchange"
                " <namespace>.events; bind e.g. receive_message.#, event.*.*, *.*.<account>."
                " Properties: message_id (stable per event), timestamp, type = the first two"
                " words of the key, app_id openqq-bridge, persistent, header account."
            ),
            "parameters": {
                "post_type": {"enum": ["receive_message", "send_message", "event"]},
                "type": {"description": "message type or event name"},
                "account": params["account"],
            },
            "messages": {
                k: {"$ref": f"#/components/messages/{k}"}
                for k in messages
                if not k.startswith(("command_", "presence_"))
            },
            "bindings": {
                "amqp": {
                    "is": "routingKey",
                    "exchange": exchange("<namespace>.events"),
                    "bindingVersion": "0.3.0",
                }
            },
        }
    }
    for kind in ("send", "kick", "shutup", "query", "control"):
        cmds = [command_name(c) for c in COMMAND_TYPES if kind == c.QUEUE]
        channels[f"commands_{kind}"] = {
            "address": f"{kind}.{{account}}",
            "description": (
                f"Commands on topic exchange <namespace>.commands, consumed from queue"
                f" <namespace>.<account>.{kind}. message_id is the idempotency key;"
                " reply_to + correlation_id ask for a reply (the Openqq JSON); expiration"
                " drops stale commands. Undecodable or repeatedly failing commands go to"
                " <namespace>.dead with header x-openqq-reason."
            ),
            "parameters": {"account": params["account"]},
            "messages": {
                f"command_{n}": {"$ref": f"#/components/messages/command_{n}"} for n in cmds
            },
            "bindings": {
                "amqp": {
                    "is": "routingKey",
                    "exchange": exchange("<namespace>.commands"),
                    "bindingVersion": "0.3.0",
                }
            },
        }
    channels["presence"] = {
        "address": f"{PRESENCE_KIND}.{{account}}",
        "description": (
            "Presence of the bridges on topic exchange <namespace>.events: the active bridge"
            " of each account publishes one at start, on every state change, every `interval`"
            " seconds and once with state stop when it stops (standbys are silent);"
            " non-persistent, expiring after three intervals. The first word keeps it out of"
            " message and event bindings (receive_message.#, event.*.*); bind"
            " presence.bridge.* to learn the accounts of a namespace (the controller does)."
        ),
        "parameters": {"account": params["account"]},
        "messages": {"presence_bridge": {"$ref": "#/components/messages/presence_bridge"}},
        "bindings": {
            "amqp": {
                "is": "routingKey",
                "exchange": exchange("<namespace>.events"),
                "bindingVersion": "0.3.0",
            }
        },
    }
    channels["post_api"] = {
        "address": "{post_type}.{type}.{account}",
        "description": (
            "Queue <namespace>.<account>.post_api of the HTTP adapter (durable, single active"
            " consumer, dead letters to <namespace>.dead): bound to the events exchange with"
            " receive_message.*.<account>, send_message.*.<account> and"
            " event.<name>.<account> for each name in post_event_list. Declared only when"
            " post_api is set."
        ),
        "parameters": {
            "post_type": {"enum": ["receive_message", "send_message", "event"]},
            "type": {"description": "message type or event name"},
            "account": params["account"],
        },
        "bindings": {
            "amqp": {
                "is": "queue",
                "queue": {
                    "name": "<namespace>.<account>.post_api",
                    "durable": True,
                    "exclusive": False,
                    "autoDelete": False,
                    "vhost": "/",
                },
                "bindingVersion": "0.3.0",
            }
        },
    }
    channels["dead"] = {
        "address": "{queue}.{account}",
        "description": (
            "Dead letters on topic exchange <namespace>.dead, kept in queue"
            " <namespace>.<account>.dead with routing key <kind>.<account> of the queue it"
            " was taken from (send.bot1, post_api.bot1); the original body and properties,"
            " header x-openqq-reason says why, x-openqq-queue names that queue and"
            " x-openqq-routing-key the key it was published with."
        ),
        "parameters": {"queue": {}, "account": params["account"]},
        "bindings": {
            "amqp": {
                "is": "routingKey",
                "exchange": exchange("<namespace>.dead"),
                "bindingVersion": "0.3.0",
            }
        },
    }
    operations: dict[str, Any] = {
        "publishEvents": {
            "action": "send",
            "channel": {"$ref": "#/channels/events"},
            "summary": "The bridge publishes every upstream message and event, confirmed.",
        }
    }
    operations["publishPresence"] = {
        "action": "send",
        "channel": {"$ref": "#/channels/presence"},
        "summary": "Every bridge announces its account, state and host.",
    }
    for kind in ("send", "kick", "shutup", "query", "control"):
        operations[f"consume_{kind}"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/commands_{kind}"},
            "summary": f"The bridge consumes {kind} commands (manual acks) and replies.",
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "openqq-bridge bus contract",
            "version": __version__,
            "description": (
                "RabbitMQ contract of openqq-bridge (README: The bus contract). Every name"
                " starts with the namespace prefix (default openqq). Payload schemas are also"
                " in events/, commands/ and replies/."
            ),
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"schemas": components, "messages": messages},
    }


def generate() -> dict[str, bytes]:
    """Every file of schemas/, by relative path."""
    files = {path: _dump(s) for path, s in {**event_schemas(), **command_schemas()}.items()}
    files["presence/bridge.json"] = _dump(
        _schema(
            Presence,
            PRESENCE_KIND,
            f"Body of {PRESENCE_KIND}.<account> on <namespace>.events: {_doc(Presence)}",
        )
    )
    files["asyncapi.json"] = _dump(asyncapi())
    files["openapi.json"] = _dump(openapi())
    return files


def main(out: str | Path, *, check: bool = False) -> int:
    """Write the files to ``out``, or with ``check`` report drift (exit 1)."""
    root = Path(out)
    files = generate()
    if check:
        stale = [p for p, data in files.items() if _read(root / p) != data]
        extra = sorted(
            str(p.relative_to(root))
            for p in root.rglob("*.json")
            if str(p.relative_to(root)) not in files
        )
        for p in stale:
            print(f"schemas drift: {root / p} differs from the code", file=sys.stderr)  # noqa: T201
        for p in extra:
            print(f"schemas drift: {root / p} is not generated", file=sys.stderr)  # noqa: T201
        return 1 if stale or extra else 0
    for p, data in files.items():
        target = root / p
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    print(f"wrote {len(files)} files to {root}")  # noqa: T201
    return 0


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


if __name__ == "__main__":
    # ``python -m bridge.schemagen [--check]`` does what ``openqq-bridge schemas`` does; without
    # this the module ran, did nothing and exited 0, which looked like a passed check.
    raise SystemExit(main("schemas", check="--check" in sys.argv[1:]))
