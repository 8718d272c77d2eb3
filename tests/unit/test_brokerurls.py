"""Masking passwords in broker URLs: one URL, a list, and text that quotes URLs."""

import pytest

from bridge.brokerurls import join, redact, split


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("amqp://guest:guest@h:5672/", "amqp://guest:***@h:5672/"),
        ("amqp://h:5672/", "amqp://h:5672/"),
        ("amqp://user@h/", "amqp://user@h/"),
        (
            "amqp://guest:***@h:5681/,amqp://guest:guest@h:5682/",
            "amqp://guest:***@h:5681/,amqp://guest:***@h:5682/",
        ),
        ("AMQPS://u:p@w@h/vh?heartbeat=5", "AMQPS://u:***@h/vh?heartbeat=5"),
        (
            "RabbitMQ at 'amqp://u:s3cret@a/' refused; tried amqp://u:t0p@b:5673/ too",
            "RabbitMQ at 'amqp://u:***@a/' refused; tried amqp://u:***@b:5673/ too",
        ),
        ("no url here: password=x", "no url here: password=x"),
    ],
)
def test_redact(text, shown):
    assert redact(text) == shown


def test_split_and_join_keep_commas_in_passwords():
    urls = ["amqp://u:a,b@h1/", "amqp://u:c@h2/"]
    assert split(join(urls)) == ["amqp://u:a%2Cb@h1/", "amqp://u:c@h2/"]
    assert split(" amqp://h1/ ,, amqp://h2/ ") == ["amqp://h1/", "amqp://h2/"]
