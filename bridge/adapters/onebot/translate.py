"""Bus events as OneBot v11 events, and OneBot messages as Openqq text (pure, no I/O).

:func:`to_onebot` turns one event of ``<ns>.events`` into the JSON object a OneBot v11 bot
expects (``event/message.md``, ``notice.md``, ``request.md``, ``meta.md`` of the standard), or
None where OneBot has no such event (discuss groups, QR codes, contact reloads, the account's own
sent messages: NapCat reports those only with ``reportSelfMessage``, off by default).
Ids are QQ numbers: ``uid`` when the bus event has one, else ``id``. Message ids become int32
through :class:`MessageIds`, which remembers recent messages for ``get_msg`` and ``reply``.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from bridge.core import cqcode
from bridge.core import events as ev
from bridge.core import members as mb
from bridge.core.contacts import ContactBook
from bridge.core.events import Segment
from bridge.core.model import Friend, Group, GroupMember

Json = dict[str, Any]
INT32_MAX = 2**31 - 1


@dataclass(frozen=True, slots=True)
class Remembered:
    """A message the face passed on: what ``get_msg`` answers."""

    bus_id: int
    event: Json


class MessageIds:
    """Bus message ids (any int) as OneBot int32 ids, with the last ``size`` messages kept.

    Ids that already fit (those of a OneBot upstream) are kept as they are, so a bot sees the
    implementation's own ids; larger ones are folded into 1..2^31-1 the same way every time.
    """

    def __init__(self, size: int = 10_000) -> None:
        self._size = size
        self._recent: OrderedDict[int, Remembered] = OrderedDict()

    @staticmethod
    def to_onebot(bus_id: int) -> int:
        """The int32 id of a bus message id."""
        if 0 < bus_id <= INT32_MAX:
            return bus_id
        return (bus_id % INT32_MAX) or INT32_MAX

    def remember(self, bus_id: int, event: Json) -> None:
        """Keep a message event for get_msg (the oldest is forgotten past ``size``)."""
        ob = self.to_onebot(bus_id)
        self._recent[ob] = Remembered(bus_id, event)
        self._recent.move_to_end(ob)
        while len(self._recent) > self._size:
            self._recent.popitem(last=False)

    def find(self, ob_id: int) -> Remembered | None:
        """The message with this OneBot id, if it is still remembered."""
        return self._recent.get(ob_id)


def qq(uid: int | None, fallback: int) -> int:
    """The QQ number of a contact: its uid, else its id."""
    return uid if uid is not None else fallback


def segments_of(msg: ev.MessageEvent) -> list[Segment]:
    """The original segments when the upstream sent them, else the text as one segment."""
    if isinstance(msg.segments, list) and msg.segments:
        return msg.segments
    return [Segment(type="text", data={"text": msg.content})]


def _array(segments: list[Segment]) -> list[Json]:
    # Segment data values are strings in the standard; keep what the upstream sent.
    return [{"type": s.type, "data": dict(s.data)} for s in segments]


def _member(book: ContactBook, group_uid: int, user_id: int) -> GroupMember | None:
    group = book.find_group(uid=group_uid)
    return book.find_member(group, uid=user_id) if group is not None else None


def _group_of(book: ContactBook, member: GroupMember) -> Group | None:
    # The property-change event names the member only; its group is the one holding it.
    return next((g for g in book.groups if mb.has_id(g.member, member.id)), None)


def _friend(book: ContactBook, user_id: int) -> Friend | None:
    return book.find_friend(uid=user_id)


def sex_of(value: str) -> str:
    """OneBot sex: male, female or unknown."""
    return value if value in ("male", "female") else "unknown"


def group_sender(member: GroupMember | None, user_id: int, nickname: str) -> Json:
    """The ``sender`` object of a group message (``event/message.md``)."""
    return {
        "user_id": user_id,
        "nickname": member.name if member else nickname,
        "card": (member.card or "") if member else "",
        "sex": sex_of(member.sex) if member else "unknown",
        "age": 0,
        "area": member.province if member else "",
        "level": "",
        "role": member.role if member else "member",
        "title": "",
    }


def private_sender(user_id: int, nickname: str, sex: str = "") -> Json:
    """The ``sender`` object of a private message."""
    return {"user_id": user_id, "nickname": nickname, "sex": sex_of(sex), "age": 0}


def _message(msg: ev.MessageEvent, self_id: int, book: ContactBook, ids: MessageIds) -> Json | None:
    segs = segments_of(msg)
    user_id = qq(msg.sender_uid, msg.sender_id)
    base: Json = {
        "time": msg.time,
        "self_id": self_id,
        "post_type": "message",
        "message_id": ids.to_onebot(msg.id),
        "user_id": user_id,
        "message": _array(segs),
        "raw_message": cqcode.encode(segs),
        "font": 0,
    }
    match msg:
        case ev.ReceivedGroupMessage():
            group_id = qq(msg.group_uid, msg.group_id)
            member = _member(book, group_id, user_id)
            out = {
                **base,
                "message_type": "group",
                "sub_type": "normal",
                "group_id": group_id,
                "anonymous": None,
                "sender": group_sender(member, user_id, msg.sender),
            }
        case ev.ReceivedFriendMessage():
            friend = _friend(book, user_id)
            nickname = friend.name if friend else msg.sender
            out = {
                **base,
                "message_type": "private",
                "sub_type": "friend",
                "sender": private_sender(user_id, nickname),
            }
        case ev.ReceivedSessMessage():
            out = {
                **base,
                "message_type": "private",
                "sub_type": "group" if msg.via == "group" else "other",
                "sender": private_sender(user_id, msg.sender),
            }
        case _:
            return None
    ids.remember(msg.id, out)
    return out


def _notice(notice_type: str, self_id: int, time: int, **fields: Any) -> Json:
    return {
        "time": time,
        "self_id": self_id,
        "post_type": "notice",
        "notice_type": notice_type,
        **fields,
    }


def _gid(group: Group) -> int:
    return qq(group.uid, group.id)


def _uid(member: GroupMember | Friend) -> int:
    return qq(member.uid, member.id)


def to_onebot(
    event: ev.Event, self_id: int, time: int, book: ContactBook, ids: MessageIds
) -> Json | None:
    """The OneBot v11 event of a bus event, or None where OneBot has none.

    ``time`` stamps events whose bus body carries no time (every non-message event).
    """
    if isinstance(event, ev.MessageEvent):
        return _message(event, self_id, book, ids)
    match event:
        case ev.NewFriend(params=(friend,)):
            return _notice("friend_add", self_id, time, user_id=_uid(friend))
        case ev.NewGroupMember(params=(member, group)):
            return _notice(
                "group_increase",
                self_id,
                time,
                sub_type="approve",
                group_id=_gid(group),
                operator_id=0,
                user_id=_uid(member),
            )
        case ev.LoseGroupMember(params=(member, group)):
            uid = _uid(member)
            return _notice(
                "group_decrease",
                self_id,
                time,
                sub_type="leave",
                group_id=_gid(group),
                operator_id=uid,
                user_id=uid,
            )
        case ev.NewGroup(params=(group,)):
            return _notice(
                "group_increase",
                self_id,
                time,
                sub_type="approve",
                group_id=_gid(group),
                operator_id=0,
                user_id=self_id,
            )
        case ev.LoseGroup(params=(group,)):
            return _notice(
                "group_decrease",
                self_id,
                time,
                sub_type="kick_me",
                group_id=_gid(group),
                operator_id=0,
                user_id=self_id,
            )
        case ev.GroupMemberShutup(params=(member, group, seconds)):
            return _notice(
                "group_ban",
                self_id,
                time,
                sub_type="ban" if seconds > 0 else "lift_ban",
                group_id=_gid(group),
                operator_id=0,
                user_id=_uid(member),
                duration=seconds,
            )
        case ev.GroupMemberPropertyChange(params=(member, "role", old, new)):
            if (new == "admin") == (old == "admin"):
                return None
            holder = _group_of(book, member)
            return _notice(
                "group_admin",
                self_id,
                time,
                sub_type="set" if new == "admin" else "unset",
                group_id=_gid(holder) if holder is not None else 0,
                user_id=_uid(member),
            )
        case ev.GroupRecall(params=(group, operator, sender, msg_id)):
            return _notice(
                "group_recall",
                self_id,
                time,
                group_id=_gid(group),
                user_id=sender,
                operator_id=operator,
                message_id=ids.to_onebot(msg_id),
            )
        case ev.FriendRecall(params=(friend, msg_id)):
            return _notice(
                "friend_recall",
                self_id,
                time,
                user_id=_uid(friend),
                message_id=ids.to_onebot(msg_id),
            )
        case ev.GroupUpload(params=(group, uploader, file)):
            return _notice(
                "group_upload",
                self_id,
                time,
                group_id=_gid(group),
                user_id=uploader,
                file={
                    "id": str(file.get("id") or ""),
                    "name": str(file.get("name") or ""),
                    "size": _int(file.get("size")),
                    "busid": _int(file.get("busid")),
                },
            )
        case ev.Notify(params=(sub, group_uid, uid, target)):
            if sub.startswith("whole_"):
                return None
            fields: Json = {"sub_type": sub, "user_id": uid}
            if group_uid is not None:
                fields["group_id"] = group_uid
            if sub == "honor":
                fields["honor_type"] = ""
            else:
                fields["target_id"] = target if target is not None else 0
            return _notice("notify", self_id, time, **fields)
        case ev.FriendRequest(params=(uid, comment, flag)):
            return {
                "time": time,
                "self_id": self_id,
                "post_type": "request",
                "request_type": "friend",
                "user_id": uid,
                "comment": comment,
                "flag": flag,
            }
        case ev.GroupRequest(params=(group_uid, uid, sub, comment, flag)):
            return {
                "time": time,
                "self_id": self_id,
                "post_type": "request",
                "request_type": "group",
                "sub_type": sub,
                "group_id": group_uid,
                "user_id": uid,
                "comment": comment,
                "flag": flag,
            }
        case ev.Login():
            return lifecycle("enable", self_id, time)
        case ev.Stop():
            return lifecycle("disable", self_id, time)
        case _:
            return None


def _int(value: object) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return 0


def lifecycle(sub_type: str, self_id: int, time: int) -> Json:
    """A ``meta_event`` lifecycle event: enable, disable or connect."""
    return {
        "time": time,
        "self_id": self_id,
        "post_type": "meta_event",
        "meta_event_type": "lifecycle",
        "sub_type": sub_type,
    }


def heartbeat(self_id: int, time: int, interval_ms: int, *, online: bool) -> Json:
    """A ``meta_event`` heartbeat: ``status`` as get_status answers it."""
    return {
        "time": time,
        "self_id": self_id,
        "post_type": "meta_event",
        "meta_event_type": "heartbeat",
        "status": {"online": online, "good": online},
        "interval": interval_ms,
    }
