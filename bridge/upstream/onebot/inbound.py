"""OneBot event frames to Openqq events: pure functions over the account's Book (no I/O).

Each function reads a typed frame, updates the Book where the event changes the contacts (a
member joins, a card changes), and returns the events to publish (none for a frame that has
no Openqq counterpart). Lookups the implementation must answer first (the new member's card,
the new friend's remark) are the caller's job: it passes what it got as ``details``, or None.
"""

from __future__ import annotations

import logging
import time
from typing import Any, TypeVar

import msgspec

from bridge.core import events as ev
from bridge.core.model import Friend, GroupMember, display_name, member_display
from bridge.upstream.onebot.book import Book
from bridge.upstream.onebot.errors import BadFrame
from bridge.upstream.onebot.frames import (
    OBFriend,
    OBGroup,
    OBHeader,
    OBMember,
    OBMessage,
    OBNotice,
    OBRequest,
    convert,
    items,
    seconds,
)
from bridge.upstream.onebot.translate import (
    content_of,
    friend_of,
    group_of,
    member_of,
    parse_cq,
    segments_of,
)

log = logging.getLogger(__name__)
T = TypeVar("T")


def brief(frame: OBHeader) -> str:
    """What a frame is, for logs (never its content)."""
    parts = (
        frame.post_type,
        frame.message_type,
        frame.notice_type,
        frame.request_type,
        frame.meta_event_type,
        frame.sub_type,
    )
    return "/".join(p for p in parts if p) or "unknown"


def message(f: OBMessage, book: Book) -> ev.Event | None:
    """A received or (``message_sent``) sent message."""
    sent = f.post_type == "message_sent"
    segments = (
        segments_of(f.message) if f.message not in (None, "", []) else parse_cq(f.raw_message)
    )
    common: dict[str, Any] = {
        "id": f.message_id,
        "time": seconds(f.time) or int(time.time()),
        "segments": segments,
    }
    me = book.user
    if f.message_type == "group":
        group = book.group(f.group_id)

        def name_of(qq: str) -> str:
            m = next((x for x in group.member if str(x.uid) == qq), None)
            return member_display(m) if m else qq

        content = content_of(segments, name_of)
        if sent:
            return ev.SentGroupMessage(
                **common,
                content=content,
                code=0,
                info="来自其他设备",
                msg="发送成功",
                source="outer",
                sender=book.member(group, me.uid or 0).card or me.name,
                sender_id=me.id,
                sender_uid=me.uid,
                group=display_name(group),
                group_id=group.id,
                group_uid=group.uid,
            )
        s = f.sender
        from_frame = GroupMember(
            id=f.user_id, uid=f.user_id, name=s.nickname or str(f.user_id), card=s.card or None
        )
        m = book.member(group, f.user_id, from_frame)
        mine = next((x for x in group.member if x.uid == me.uid), None)
        return ev.ReceivedGroupMessage(
            **common,
            content=content,
            sender=member_display(m),
            sender_id=m.id,
            sender_uid=m.uid,
            receiver=member_display(mine) if mine else me.name,
            receiver_id=me.id,
            receiver_uid=me.uid,
            group=display_name(group),
            group_id=group.id,
            group_uid=group.uid,
        )
    content = content_of(segments)
    if sent:
        peer = book.friend(f.target_id or f.user_id)
        return ev.SentFriendMessage(
            **common,
            content=content,
            code=0,
            info="来自其他设备",
            msg="发送成功",
            source="outer",
            sender=me.name,
            sender_id=me.id,
            sender_uid=me.uid,
            receiver=display_name(peer),
            receiver_id=peer.id,
            receiver_uid=peer.uid,
        )
    uid = f.user_id
    friend = book.friend(uid, f.sender.nickname)
    if f.sub_type == "group":
        gid = f.group_id or f.sender.group_id or f.temp_source
        extra: dict[str, Any] = {}
        if gid:
            group = book.group(gid)
            extra = {"group": display_name(group), "group_id": group.id, "group_uid": group.uid}
        return ev.ReceivedSessMessage(
            **common,
            content=content,
            sender=f.sender.nickname or friend.name,
            sender_id=uid,
            sender_uid=uid,
            receiver=me.name,
            receiver_id=me.id,
            receiver_uid=me.uid,
            via="group",
            **extra,
        )
    return ev.ReceivedFriendMessage(
        **common,
        content=content,
        sender=display_name(friend),
        sender_id=friend.id,
        sender_uid=friend.uid,
        receiver=me.name,
        receiver_id=me.id,
        receiver_uid=me.uid,
    )


def lookup_for(f: OBNotice, book: Book) -> tuple[str, dict[str, Any]] | None:
    """The action whose answer makes this notice's event complete, if any."""
    if f.notice_type == "group_increase":
        if f.user_id == book.self_id:
            return "get_group_info", {"group_id": f.group_id}
        return "get_group_member_info", {
            "group_id": f.group_id,
            "user_id": f.user_id,
            "no_cache": True,
        }
    if f.notice_type == "friend_add":
        return "get_friend_list", {}
    return None


def notice(f: OBNotice, book: Book, details: Any = None) -> list[ev.Event]:
    """The events of a notice; ``details`` is the answer to :func:`lookup_for`'s action."""
    kind, sub, gid, uid = f.notice_type, f.sub_type, f.group_id, f.user_id
    if kind == "group_increase":
        if uid == book.self_id:
            info = _details(details, OBGroup) or OBGroup(group_id=gid)
            info = info if info.group_id else OBGroup(group_id=gid)
            group = group_of(info, [], book.self_id)
            book.groups[group.id] = group
            return [ev.NewGroup(params=(group,))]
        group = book.group(gid)
        found = _details(details, OBMember)
        member = member_of(found) if found else GroupMember(id=uid, uid=uid, name=str(uid))
        group = book.put_member(group, member)
        return [ev.NewGroupMember(params=(member, group))]
    if kind == "group_decrease":
        if sub == "kick_me" or uid == book.self_id:
            return [ev.LoseGroup(params=(book.drop_group(gid),))]
        group = book.group(gid)
        member = book.member(group, uid)
        group = book.replace_members(group, [m for m in group.member if m.uid != uid])
        return [ev.LoseGroupMember(params=(member, group))]
    if kind == "friend_add":
        item = next((i for i in items(details, OBFriend) if i.user_id == uid), None)
        friend = friend_of(item) if item else Friend(id=uid, uid=uid, name=str(uid))
        book.friends[uid] = friend
        return [ev.NewFriend(params=(friend,))]
    if kind == "group_ban":
        group = book.group(gid)
        if uid == 0:
            return [ev.Notify(params=(f"whole_{sub or 'ban'}", group.uid, f.operator_id, None))]
        seconds_ = f.duration if sub != "lift_ban" else 0
        return [ev.GroupMemberShutup(params=(book.member(group, uid), group, seconds_))]
    if kind == "group_recall":
        return [ev.GroupRecall(params=(book.group(gid), f.operator_id, uid, f.message_id))]
    if kind == "friend_recall":
        return [ev.FriendRecall(params=(book.friend(uid), f.message_id))]
    if kind in ("group_admin", "group_card"):
        group = book.group(gid)
        old_member = book.member(group, uid)
        old: str | None
        new: str | None
        if kind == "group_admin":
            prop, old, new = "role", old_member.role, "admin" if sub == "set" else "member"
        else:
            prop, old, new = "card", f.card_old or None, f.card_new or None
        member = msgspec.structs.replace(old_member, **{prop: new})
        book.replace_members(group, [member if m.uid == uid else m for m in group.member])
        return [ev.GroupMemberPropertyChange(params=(member, prop, old, new))]
    if kind == "group_upload":
        clean = {
            str(k): v
            for k, v in f.file.items()
            if isinstance(v, str | int | float | bool) or v is None
        }
        return [ev.GroupUpload(params=(book.group(gid), uid, clean))]
    if kind == "notify":
        return [ev.Notify(params=(sub, gid or None, uid, f.target_id or None))]
    log.debug("OneBot notice %s has no Openqq counterpart; ignored", kind)
    return []


def request(f: OBRequest) -> list[ev.Event]:
    """Friend and group requests."""
    if f.request_type == "friend":
        return [ev.FriendRequest(params=(f.user_id, f.comment, str(f.flag)))]
    if f.request_type == "group":
        return [ev.GroupRequest(params=(f.group_id, f.user_id, f.sub_type, f.comment, str(f.flag)))]
    return []


def _details(data: Any, kind: type[T]) -> T | None:
    if isinstance(data, kind):
        return data
    if isinstance(data, dict):
        try:
            return convert(data, kind)
        except BadFrame:
            return None
    return None
