"""OneBot event frames to Openqq events: pure functions over the account's Book (no I/O).

Each function reads a typed frame, updates the Book where the event changes the contacts (a
member joins, a card changes), and returns the events to publish (none for a frame that has
no Openqq counterpart). Lookups the implementation must answer first (the new member's card,
the new friend's remark) are the caller's job: it passes what it got as ``details``, or None.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Literal, TypeVar

import msgspec

from bridge.core import cqcode
from bridge.core import events as ev
from bridge.core import members as mb
from bridge.core import messages as msgs
from bridge.core.model import Friend, GroupMember, member_display
from bridge.core.segtext import content_of
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
    friend_of,
    group_of,
    member_of,
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


#: What a message the account sent from elsewhere (the phone, another client) reports.
_OUTER: dict[str, Any] = {"code": 0, "info": "来自其他设备", "msg": "发送成功", "source": "outer"}
#: NapCat's group number for a temporary chat whose group it does not know: not a group.
UNKNOWN_TEMP_GROUP = 284840486


def is_own(f: OBMessage, book: Book) -> bool:
    """A message the account sent: ``message_sent``, or Lagrange's ``message`` from itself."""
    return f.post_type == "message_sent" or (book.self_id != 0 and f.user_id == book.self_id)


def message(f: OBMessage, book: Book) -> ev.Event | None:
    """A received message, or one the account sent from elsewhere (``source: outer``).

    BadFrame for a message without the ids it needs (it cannot be attributed).
    """
    sent = is_own(f, book)
    if f.message_type == "group" and not f.group_id:
        msg = "a group message without group_id"
        raise BadFrame(msg)
    if not sent and not f.user_id:
        msg = "a message without user_id"
        raise BadFrame(msg)
    segments = (
        segments_of(f.message) if f.message not in (None, "", []) else cqcode.decode(f.raw_message)
    )
    at = seconds(f.time) or int(time.time())

    def said(content: str) -> msgs.Said:
        return msgs.Said(f.message_id, at, content, segments)

    def outer(content: str) -> msgs.Report:
        return msgs.Report(f.message_id, at, content, **_OUTER, segments=segments)

    me = book.user
    if f.message_type == "group":
        group = book.group(f.group_id)

        def name_of(qq: str) -> str:
            # Only a number's exact ASCII decimal text names it (as the text compare did).
            number = int(qq) if qq.isascii() and qq.isdecimal() else None
            m = mb.first(group.member, uid=number) if str(number) == qq else None
            return member_display(m) if m else qq

        content = content_of(segments, name_of)
        if sent:
            return msgs.sent_group(
                outer(content),
                msgs.of_user(me, book.member(group, me.uid or 0).card or me.name),
                group,
            )
        s = f.sender
        if f.anonymous is not None and f.anonymous.name:
            # sender.nickname is the literal 匿名消息; the anonymous name is the sender's.
            s = msgspec.structs.replace(s, nickname=f.anonymous.name, card="")
        from_frame = GroupMember(
            id=f.user_id, uid=f.user_id, name=s.nickname or str(f.user_id), card=s.card or None
        )
        m = from_frame if f.anonymous is not None else book.member(group, f.user_id, from_frame)
        return msgs.received_group(
            said(content),
            msgs.of_member(m, book.friends),
            msgs.of_user(me, msgs.own_name_in(group, me)),
            group,
        )
    content = content_of(segments)
    if sent:
        peer = book.friend(f.target_id or f.user_id)
        return msgs.sent_friend(outer(content), msgs.of_user(me), msgs.of_friend(peer))
    uid = f.user_id
    friend = book.friend(uid, f.sender.nickname)
    if f.sub_type == "group":
        gid = f.group_id or f.sender.group_id or f.temp_source
        via = book.group(gid) if gid and gid != UNKNOWN_TEMP_GROUP else None
        return msgs.received_sess(
            said(content),
            msgs.Party(f.sender.nickname or friend.name, uid, uid),
            msgs.of_user(me),
            via,
        )
    return msgs.received_friend(said(content), msgs.of_friend(friend), msgs.of_user(me))


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


#: Notices deliberately not published, and why (README "OneBot" lists them too).
DROPPED = {
    "online_file_send": "NapCat online-file transfer steps: no file data, only the peer",
    "online_file_receive": "NapCat online-file transfer steps: no file data, only the peer",
    "client_status": "another client of the same account went on or offline, not the account",
    "bot_offline": "handled as the account's state (loading), not published as a notice",
    "bot_online": "handled as the account's state (running), not published as a notice",
}
#: notify sub_types deliberately not published unless a setting asks for them.
DROPPED_NOTIFY = {
    "gray_tip": "NapCat's unparsed grey tips: a JSON blob with no stable meaning",
}


def _scalars(**fields: Any) -> dict[str, ev.Scalar]:
    return {
        k: v
        for k, v in fields.items()
        if v not in (None, "") and isinstance(v, str | int | float | bool)
    }


def _need(what: str, *ids: int) -> None:
    if not all(ids):
        msg = f"a {what} notice without its ids"
        raise BadFrame(msg)


def notice(
    f: OBNotice, book: Book, details: Any = None, *, input_status: bool = False
) -> list[ev.Event]:
    """The events of a notice; ``details`` is the answer to :func:`lookup_for`'s action.

    BadFrame for a notice without the ids it needs; [] for one deliberately dropped.
    """
    kind, sub, gid, uid = f.notice_type, f.sub_type, f.group_id, f.user_id
    if kind == "group_dismiss" or (kind == "group_decrease" and sub == "disband"):
        # LLOneBot's group_dismiss; NapCat's disband has user_id 0, Lagrange's the account.
        _need(kind, gid)
        return [ev.LoseGroup(params=(book.drop_group(gid),))]
    if kind == "group_increase":
        _need(kind, gid, uid)
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
        _need(kind, gid, uid)
        if sub == "kick_me" or uid == book.self_id:
            return [ev.LoseGroup(params=(book.drop_group(gid),))]
        group = book.group(gid)
        member = book.member(group, uid)
        group = book.replace_members(group, [m for m in group.member if m.uid != uid])
        return [ev.LoseGroupMember(params=(member, group))]
    if kind == "friend_add":
        _need(kind, uid)
        item = next((i for i in items(details, OBFriend) if i.user_id == uid), None)
        friend = friend_of(item) if item else Friend(id=uid, uid=uid, name=str(uid))
        book.friends[uid] = friend
        return [ev.NewFriend(params=(friend,))]
    if kind == "group_ban":
        _need(kind, gid)
        group = book.group(gid)
        if uid == 0:
            return [ev.Notify(params=(f"whole_{sub or 'ban'}", group.uid, f.operator_id, None))]
        seconds_ = f.duration if sub != "lift_ban" else 0
        return [ev.GroupMemberShutup(params=(book.member(group, uid), group, seconds_))]
    if kind == "group_recall":
        _need(kind, gid, uid)
        return [ev.GroupRecall(params=(book.group(gid), f.operator_id, uid, f.message_id))]
    if kind == "friend_recall":
        _need(kind, uid)
        return [ev.FriendRecall(params=(book.friend(uid), f.message_id))]
    if kind == "group_admin":
        _need(kind, gid, uid)
        return _admin(f, book)
    if kind == "group_card":
        _need(kind, gid, uid)
        group = book.group(gid)
        old = book.member(group, uid)
        member = msgspec.structs.replace(old, card=f.card_new or None)
        book.replace_members(group, [member if m.uid == uid else m for m in group.member])
        return [
            ev.GroupMemberPropertyChange(
                params=(member, "card", f.card_old or None, f.card_new or None)
            )
        ]
    if kind == "group_upload":
        _need(kind, gid, uid)
        clean = {
            str(k): v
            for k, v in f.file.items()
            if isinstance(v, str | int | float | bool) or v is None
        }
        return [ev.GroupUpload(params=(book.group(gid), uid, clean))]
    if kind == "group_name_change" or (kind == "notify" and sub == "group_name"):
        _need(kind, gid)
        return _rename(book, gid, f.name or f.name_new)
    if kind == "notify":
        return _notify(f, input_status=input_status)
    return _extension(f)


def _admin(f: OBNotice, book: Book) -> list[ev.Event]:
    group = book.group(f.group_id)
    old_member = book.member(group, f.user_id)
    new: Literal["admin", "member"] = "admin" if f.sub_type == "set" else "member"
    member = msgspec.structs.replace(old_member, role=new)
    group = book.replace_members(group, [member if m.uid == f.user_id else m for m in group.member])
    out: list[ev.Event] = [
        ev.GroupMemberPropertyChange(params=(member, "role", old_member.role, new))
    ]
    if f.user_id == book.self_id and group.role != "create":
        # The account's own role in the group (what it may do there) changed too.
        role: Literal["manage", "attend"] = "manage" if new == "admin" else "attend"
        if role != group.role:
            old_role = group.role
            group = msgspec.structs.replace(group, role=role)
            if group.id in book.groups:
                book.groups[group.id] = group
            out.append(ev.GroupPropertyChange(params=(group, "role", old_role, role)))
    return out


def _rename(book: Book, gid: int, name: str) -> list[ev.Event]:
    group = book.group(gid)
    if not name or name == group.name:
        return []
    old = group.name
    group = msgspec.structs.replace(group, name=name)
    if gid in book.groups:
        book.groups[gid] = group
    return [ev.GroupPropertyChange(params=(group, "name", old, name))]


def _notify(f: OBNotice, *, input_status: bool) -> list[ev.Event]:
    sub, gid = f.sub_type, f.group_id or None
    if sub in DROPPED_NOTIFY or (sub == "input_status" and not input_status):
        return []
    data = _scalars(
        title=f.title,
        honor_type=f.honor_type,
        times=f.times or None,
        operator_nick=f.operator_nick,
        status_text=f.status_text,
        event_type=f.event_type,
        sender_id=f.sender_id or None,
    )
    # profile_like names its liker operator_id and has no user_id.
    uid = f.user_id or f.operator_id
    return [ev.Notify(params=(sub, gid, uid, f.target_id or None), data=data or msgspec.UNSET)]


def _extension(f: OBNotice) -> list[ev.Event]:
    kind, sub, gid = f.notice_type, f.sub_type, f.group_id or None
    if kind == "essence":
        # NapCat and LLOneBot name the author user_id and sender_id; Lagrange sender_id only.
        data = _scalars(sub_type=sub, message_id=f.message_id)
        author = f.sender_id or f.user_id
        return [ev.Notify(params=("essence", gid, author, f.operator_id or None), data=data)]
    if kind in ("group_msg_emoji_like", "reaction"):
        # NapCat/LLOneBot: likes [{emoji_id, count}] and is_add; Lagrange: code, sub_type.
        emoji = (
            f.code
            if kind == "reaction"
            else next((str(x.get("emoji_id", "")) for x in f.likes if isinstance(x, dict)), "")
        )
        added = sub != "remove" if kind == "reaction" else f.is_add is not False
        data = _scalars(message_id=f.message_id, emoji_id=str(emoji), is_add=added)
        who = f.user_id or f.operator_id
        return [ev.Notify(params=("emoji_like", gid, who, None), data=data)]
    if kind == "offline_file":
        data = _scalars(**{str(k): v for k, v in f.file.items()})
        return [ev.Notify(params=("offline_file", None, f.user_id, None), data=data)]
    if kind == "flash_file":
        data = _scalars(sub_type=sub, title=f.title, share_link=f.share_link)
        return [ev.Notify(params=("flash_file", None, f.user_id, None), data=data)]
    if kind in DROPPED:
        log.debug("OneBot notice %s dropped: %s", kind, DROPPED[kind])
    else:
        log.info("OneBot notice %s has no Openqq counterpart; ignored", kind)
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
