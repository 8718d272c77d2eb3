import msgspec
import pytest

from bridge.core import commands as c
from bridge.core import events as ev
from bridge.core.codec import decode_command, decode_event, encode

SPEC_GROUP_MESSAGE = (
    '{"class":"recv","content":"hi","group":"PERL学习交流","group_id":2617047292,'
    '"group_uid":67890,"id":10856,"post_type":"receive_message","receiver":"小灰卡",'
    '"receiver_id":4072574066,"receiver_uid":123456,"sender":"灰灰","sender_id":2372835507,'
    '"sender_uid":456789,"time":1442542632,"type":"group_message"}'
)


def test_group_message_has_the_openqq_fields_exactly():
    m = ev.ReceivedGroupMessage(
        id=10856,
        time=1442542632,
        content="hi",
        sender="灰灰",
        sender_id=2372835507,
        sender_uid=456789,
        receiver="小灰卡",
        receiver_id=4072574066,
        receiver_uid=123456,
        group="PERL学习交流",
        group_id=2617047292,
        group_uid=67890,
    )
    assert encode(m).decode() == SPEC_GROUP_MESSAGE
    assert decode_event("receive_message.group_message", encode(m)) == m


def test_sent_group_message_key_set_matches_spec():
    m = ev.SentGroupMessage(
        id=82220001,
        time=1795897652,
        content="你好",
        code=0,
        info="发送正常",
        msg="发送成功",
        from_="code",
        sender="小灰卡",
        sender_id=4072574066,
        sender_uid=123456,
        group="PERL学习交流",
        group_id=2617047292,
        group_uid=67890,
    )
    keys = list(msgspec.json.decode(encode(m)))
    assert keys == sorted(
        "class code content from group group_id group_uid id info msg post_type sender"
        " sender_id sender_uid source time ttl type".split()
    )


def test_events_are_post_type_event_with_params():
    assert encode(ev.StateChange(params=("loading", "scaning"))) == (
        b'{"event":"state_change","params":["loading","scaning"],"post_type":"event"}'
    )
    assert encode(ev.Stop()) == b'{"event":"stop","params":[],"post_type":"event"}'


def test_every_event_kind_has_three_word_routing_keys():
    for kind, cls in ev.EVENT_TYPES.items():
        assert kind == cls.KIND
        assert len(kind.split(".")) == 2


def test_commands_decode_by_tag():
    cmd = decode_command(b'{"command":"send_group_message","uid":67890,"content":"hi"}')
    assert cmd == c.SendGroupMessage(uid=67890, content="hi")
    assert cmd.QUEUE == "send"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"not json", "JSON"),
        (b'{"command":"launch_rocket"}', "$.command"),
        (b'{"uid":1,"content":"x"}', "command"),
        (b'{"command":"send_group_message","uid":"abc","content":"x"}', "$.uid"),
        (b'{"command":"send_group_message","uid":1}', "content"),
        (b'{"command":"kick_group_member","member_uid":[-1]}', "$.member_uid[0]"),
        (b'{"command":"shutup_group_member","time":-5}', "$.time"),
        (b"[]", "object"),
    ],
)
def test_bad_commands_say_what_is_wrong(body, fragment):
    with pytest.raises((msgspec.DecodeError, msgspec.ValidationError)) as err:
        decode_command(body)
    assert fragment in str(err.value)


def test_reply_shapes_are_openqq():
    assert encode(c.SendReply(code=101, id=None, status="group not found")) == (
        b'{"code":101,"id":null,"status":"group not found"}'
    )
    assert encode(c.SendReply(code=0, id=82220002, info="发送正常", status="发送成功")) == (
        '{"code":0,"id":82220002,"info":"发送正常","status":"发送成功"}'.encode()
    )
