"""Encoders and decoders of bus bodies, built once (msgspec perf tips).

Bodies are compact UTF-8 JSON with keys sorted, so the same object always gives the same
bytes (and the HTTP adapter can reuse them byte for byte).
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from bridge.core.commands import Command
from bridge.core.events import EVENT_TYPES, Event
from bridge.core.members import enc_hook

# enc_hook: a group's packed members (bridge.core.members) encode as their plain list would.
ENCODER: Final = msgspec.json.Encoder(order="sorted", enc_hook=enc_hook)
COMMAND_DECODER: Final = msgspec.json.Decoder(Command)
EVENT_DECODERS: Final = {kind: msgspec.json.Decoder(cls) for kind, cls in EVENT_TYPES.items()}


def encode(obj: Any) -> bytes:
    """Compact JSON with sorted keys."""
    return ENCODER.encode(obj)


def decode_command(body: bytes) -> Command:
    """Decode and validate a command body; raises ``msgspec.ValidationError``/``DecodeError``."""
    cmd: Command = COMMAND_DECODER.decode(body)
    return cmd


def decode_event(kind: str, body: bytes) -> Event:
    """Decode an event body by its kind (the AMQP ``type``); KeyError for unknown kinds."""
    return EVENT_DECODERS[kind].decode(body)
