"""schemas/ is generated from the code: it must not drift, and real bodies must validate."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import msgspec
import pytest

from bridge import schemagen
from bridge.core import commands as c
from bridge.core import events as ev
from bridge.core.codec import encode
from bridge.core.presence import Presence
from bridge.upstream.sim.world import default_world

ROOT = Path(__file__).resolve().parent.parent / "schemas"


def test_committed_schemas_match_the_code():
    assert schemagen.main(ROOT, check=True) == 0, "run: openqq-bridge schemas"


def test_drift_is_detected(tmp_path):
    schemagen.main(tmp_path)
    target = tmp_path / "events" / "receive_message.group_message.json"
    target.write_text(target.read_text().replace("group_uid", "group_number"))
    (tmp_path / "stray.json").write_text("{}")
    assert schemagen.main(tmp_path, check=True) == 1


def _descriptions(obj: object) -> list[str]:
    if isinstance(obj, dict):
        own = [v for k, v in obj.items() if k == "description" and isinstance(v, str)]
        return own + [d for v in obj.values() for d in _descriptions(v)]
    if isinstance(obj, list):
        return [d for v in obj for d in _descriptions(v)]
    return []


def test_descriptions_do_not_depend_on_docstring_layout():
    # msgspec 0.19 keeps a docstring's indentation in descriptions, 0.23 strips it: every
    # description is cleaned, so both (and every Python version) write the same bytes.
    found: list[str] = []
    for path, data in schemagen.generate().items():
        for d in _descriptions(msgspec.json.decode(data)):
            found.append(d)
            assert d == d.strip(), (path, d)
            assert not any(line[:1].isspace() for line in d.splitlines()), (path, d)
    assert any("\n\nparams [action" in d for d in found), "RiskControl's docstring has 2 paragraphs"


def test_normalise_cleans_every_description_and_nothing_else():
    raw = {
        "description": "Title.\n\n    body\n    ",
        "properties": {"description": {"type": "string", "description": "  x\n"}},
        "examples": ["  kept  "],
    }
    assert schemagen.normalise(raw) == {
        "description": "Title.\n\nbody",
        "properties": {"description": {"type": "string", "description": "x"}},
        "examples": ["  kept  "],
    }


def validate(path: str, obj: object) -> None:
    schema = msgspec.json.decode((ROOT / path).read_bytes())
    jsonschema.validate(msgspec.json.decode(encode(obj)), schema)


def test_real_bodies_validate_against_their_schemas():
    w = default_world()
    group = w.groups[2617047292]
    member = group.member[2]
    validate("events/event.new_group_member.json", ev.NewGroupMember(params=(member, group)))
    validate("events/event.state_change.json", ev.StateChange(params=("init", "loading")))
    validate("replies/get_group_info.json", list(w.groups.values()))
    validate("replies/search_friend.json", c.StatusReply(code=100, status="object not found"))
    validate(
        "replies/send_group_message.json", c.SendReply(code=101, id=None, status="group not found")
    )
    validate("commands/send_group_message.json", c.SendGroupMessage(uid=67890, content="hi"))
    validate(
        "presence/bridge.json",
        Presence(
            account="bot1",
            state="running",
            host="h",
            pid=1,
            start_time=2,
            version="0",
            upstream="sim",
            interval=10.0,
            sim_listen="127.0.0.1:5001",
        ),
    )


def test_bad_bodies_are_rejected_by_the_schemas():
    schema = msgspec.json.decode((ROOT / "commands/kick_group_member.json").read_bytes())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"command": "kick_group_member", "member_uid": ["x"]}, schema)


def test_asyncapi_lists_every_channel_and_message():
    doc = msgspec.json.decode((ROOT / "asyncapi.json").read_bytes())
    assert doc["asyncapi"] == "3.0.0"
    assert set(doc["channels"]) == {
        "events",
        "commands_send",
        "commands_kick",
        "commands_shutup",
        "commands_query",
        "commands_control",
        "dead",
        "post_api",
        "presence",
    }
    messages = doc["components"]["messages"]
    assert {m["name"] for m in messages.values()} >= set(ev.EVENT_TYPES)
    for m in messages.values():
        ref = m["payload"]["$ref"].rsplit("/", 1)[1]
        assert ref in doc["components"]["schemas"]


def test_openapi_document_is_valid_and_lists_every_endpoint():
    from openapi_spec_validator import validate

    from bridge.adapters.openqq.routes import ROUTES

    doc = msgspec.json.decode((ROOT / "openapi.json").read_bytes())
    validate(doc)
    assert {p.removeprefix("/openqq/") for p in doc["paths"]} == set(ROUTES)
    assert "post" not in doc["paths"]["/openqq/get_user_info"]
    assert "post" in doc["paths"]["/openqq/send_group_message"]
