"""Prints each message in one readable line, like Mojo::Webqq's ShowMsg plugin."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from bridge.core import events as ev


def format_line(event: ev.Event, now: float | None = None) -> str | None:
    """One line for a message or a contact event; None for events not worth a line."""
    stamp = time.strftime("%y/%m/%d %H:%M:%S", time.localtime(now))
    match event:
        case ev.ReceivedFriendMessage():
            what = f"[好友消息] {event.sender} : {event.content}"
        case ev.ReceivedGroupMessage():
            what = f"[群消息] {event.sender}|{event.group} : {event.content}"
        case ev.ReceivedDiscussMessage():
            what = f"[讨论组消息] {event.sender}|{event.discuss} : {event.content}"
        case ev.ReceivedSessMessage():
            where = event.group if event.via == "group" else event.discuss
            what = f"[临时消息] {event.sender}|{where} : {event.content}"
        case ev.SentFriendMessage():
            what = f"[好友消息] 我->{event.receiver} : {event.content}"
        case ev.SentGroupMessage():
            what = f"[群消息] 我->{event.group} : {event.content}"
        case ev.SentDiscussMessage():
            what = f"[讨论组消息] 我->{event.discuss} : {event.content}"
        case ev.SentSessMessage():
            what = f"[临时消息] 我->{event.receiver} : {event.content}"
        case ev.NewGroupMember(params=(m, g)):
            what = f"[群成员] {m.name} 加入 {g.name}"
        case ev.LoseGroupMember(params=(m, g)):
            what = f"[群成员] {m.name} 离开 {g.name}"
        case ev.StateChange(params=(old, new)):
            what = f"[状态] {old} -> {new}"
        case _:
            return None
    # One line per message: a person reads a newline in content as "\n".
    return f"[{stamp}] " + what.replace("\r", "\\r").replace("\n", "\\n")


def show(event: ev.Event, out: TextIO | None = None) -> None:
    """Print the event's line, if it has one."""
    line = format_line(event)
    if line is not None:
        print(line, file=out or sys.stdout, flush=True)
