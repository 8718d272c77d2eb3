import pytest

from bridge.core.routing import Names, command_key, event_key, topic_matches, valid_name


@pytest.mark.parametrize(
    ("pattern", "key", "expected"),
    [
        ("receive_message.#", "receive_message.group_message.default", True),
        ("event.*.*", "event.new_group_member.default", True),
        ("*.*.default", "send_message.friend_message.default", True),
        ("receive_message.group_message.*", "receive_message.group_message.bot2", True),
        ("receive_message.group_message.*", "receive_message.friend_message.bot2", False),
        ("event.*", "event.state_change.default", False),
        ("#", "a.b.c", True),
        ("a.#", "a", True),
        ("a.#.c", "a.c", True),
        ("a.#.c", "a.x.y.c", True),
        ("a.#.c", "a.x.y.d", False),
        ("a.*", "a", False),
        ("send.default", "send.default", True),
    ],
)
def test_topic_matching_follows_amqp(pattern, key, expected):
    assert topic_matches(pattern, key) is expected


def test_names_follow_design():
    n = Names()
    assert (n.events, n.commands, n.dead) == ("openqq.events", "openqq.commands", "openqq.dead")
    assert n.command_queue("default", "send") == "openqq.default.send"
    assert n.dead_queue("bot") == "openqq.bot.dead"
    assert command_key("kick", "bot") == "kick.bot"
    assert event_key("receive_message.group_message", "default") == (
        "receive_message.group_message.default"
    )


@pytest.mark.parametrize("bad", ["", "a.b", "a*", "#", "a b", "x" * 65])
def test_bad_names_are_refused(bad):
    assert not valid_name(bad)
    with pytest.raises(ValueError, match="namespace"):
        Names(bad)
