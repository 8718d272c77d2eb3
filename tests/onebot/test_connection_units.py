"""Back-off and undecodable-frame counting, without sockets."""

from __future__ import annotations

import logging

import pytest

from bridge.upstream.onebot.connection import Backoff, FrameCounters
from bridge.upstream.onebot.errors import BadFrame
from bridge.upstream.onebot.frames import decode_frame


def test_backoff_doubles_with_jitter_up_to_the_cap_and_resets():
    b = Backoff(0.5, 4.0)
    delays = [b.next_delay() for _ in range(6)]
    ceilings = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    b.reset()
    assert b.next_delay() <= 0.5


def test_bad_frames_are_all_counted_and_logged_once_per_interval(caplog):
    counters = FrameCounters()
    with caplog.at_level(logging.WARNING, logger="bridge.upstream.onebot"):
        for _ in range(1000):
            counters.bad("not JSON")
    assert counters.bad_frames == 1000
    assert len(caplog.records) == 1


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"[" * 5000 + b"]" * 5000, "nested too deeply"),
        (b"not json", "not JSON"),
        (b"[1, 2]", "not an object"),
        (b'"\\ud83d"', "not an object"),
    ],
)
def test_decode_frame_raises_only_bad_frame(raw: bytes, why: str):
    with pytest.raises(BadFrame, match=why):
        decode_frame(raw)


def test_lone_surrogates_are_replaced_and_pairs_and_escaped_backslashes_kept():
    frame = decode_frame(
        b'{"a": "x\\ud83d", "b": "\\ud83d\\ude00", "c": "\\\\ud83d", "d": "\\udc00y"}'
    )
    assert frame == {"a": "x\ufffd", "b": "\U0001f600", "c": "\\ud83d", "d": "\ufffdy"}
