"""The OpenAPI 3.1 document of the Openqq HTTP API, generated from the routes and reply types."""

from __future__ import annotations

from typing import Any

import msgspec

from bridge import __version__
from bridge.adapters.openqq.routes import FRIEND_SEARCH, GROUP_SEARCH, ROUTES
from bridge.core import commands as c

REF = "#/components/schemas/{name}"

LOOKUP = {
    "id": "id of the contact (changes with each QR login)",
    "uid": "QQ number (group number for groups)",
    "name": "exact name",
    "displayname": "markname if set, else name",
}
CONTENT = {"content": f"message text (empty or over {c.MAX_CONTENT} characters: error -5 发送失败)"}
ASYNC = {"async": "anything but missing, empty or 0: answer at once, send in the background"}
GROUP = {"group_id": "group id", "group_uid": "group number"}
MEMBERS = {
    "member_id": "comma-separated member ids (wins over member_uid when present)",
    "member_uid": "comma-separated member QQ numbers",
}
PARAMS: dict[str, dict[str, str]] = {
    "send_friend_message": LOOKUP | CONTENT | ASYNC,
    "send_group_message": LOOKUP | CONTENT | ASYNC,
    "send_discuss_message": {"id": "discuss id"} | CONTENT | ASYNC,
    "send_sess_message": GROUP
    | {"discuss_id": "discuss id", "id": "member id", "uid": "member QQ number"}
    | CONTENT,
    "search_friend": dict.fromkeys(sorted(FRIEND_SEARCH), "exact value (text comparison)")
    | {"type": "friend (alone: every friend)"},
    "search_group": dict.fromkeys(sorted(GROUP_SEARCH), "exact value (text comparison)")
    | {"type": "group (alone: every group)", "number": "group number (as uid)"},
    "kick_group_member": GROUP | MEMBERS,
    "shutup_group_member": GROUP
    | MEMBERS
    | {"time": "mute duration: seconds, at least 60, default 60 (setting shutup_unit=minutes)"},
}
COMMON = {
    "datatype": "jsonp: wrap the answer in callback(...)",
    "callback": "JSONP function name (letters, digits, _ $ .)",
    "access_token": "the access token, when the adapter has one (or Authorization: Bearer)",
}
REPLIES: dict[str, Any] = {
    "check_event": list[dict[str, Any]],
    # Only the commands the HTTP API has an endpoint for (get_contacts_page is bus-only).
    **{name: reply for name, reply in c.REPLY_TYPES.items() if name in ROUTES},
}
ERROR_SHAPES: dict[str, Any] = {
    name: (c.SendReply if name.startswith("send_") else c.StatusReply) for name in ROUTES
}


def _param(name: str, text: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": text,
        "schema": {"type": "string"},
    }


def openapi() -> dict[str, Any]:
    """The document."""
    # dict.fromkeys: unique, in a stable order (a set would reorder the output per run).
    types = list(dict.fromkeys([*REPLIES.values(), c.SendReply, c.StatusReply]))
    schemas, components = msgspec.json.schema_components(types, ref_template=REF)
    by_type = dict(zip(types, schemas, strict=True))
    paths: dict[str, Any] = {}
    for name, (methods, handler) in sorted(ROUTES.items()):
        params = PARAMS.get(name, {}) | COMMON
        ok = by_type[REPLIES[name]]
        error = by_type[ERROR_SHAPES[name]]
        op: dict[str, Any] = {
            "operationId": name,
            "summary": (handler.__doc__ or name).strip().splitlines()[0],
            "parameters": [_param(k, v) for k, v in params.items()],
            "responses": {
                "200": {
                    "description": "the Openqq JSON (HTTP 200 for errors too)",
                    "content": {"application/json": {"schema": {"anyOf": [ok, error]}}},
                },
                "403": {
                    "description": "api not found (unknown path or method)",
                    "content": {"text/html;charset=UTF-8": {"schema": {"const": "api not found"}}},
                },
                "413": {"description": "request body over max_request_bytes"},
            },
        }
        item = {"get": op}
        if "POST" in methods:
            form = {
                "type": "object",
                "properties": {k: {"type": "string", "description": v} for k, v in params.items()},
            }
            item["post"] = {
                **op,
                "operationId": f"{name}_post",
                "parameters": [],
                "requestBody": {
                    "content": {
                        "application/x-www-form-urlencoded": {"schema": form},
                        "multipart/form-data": {"schema": form},
                    }
                },
            }
        paths[f"/openqq/{name}"] = item
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "openqq-bridge Openqq HTTP API",
            "version": __version__,
            "description": (
                "Mojo::Webqq compatible HTTP API served from the bus. Parameters are strings"
                " (query or form); JSON request bodies are ignored. Every answer carries"
                " Access-Control-Allow-Origin: *. Errors are JSON with HTTP 200."
            ),
        },
        "servers": [{"url": "http://127.0.0.1:5000"}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "token": {"type": "apiKey", "in": "query", "name": "access_token"},
            },
        },
        "security": [{}, {"bearer": []}, {"token": []}],
    }
