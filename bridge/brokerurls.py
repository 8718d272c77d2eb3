"""Broker addresses: the list in ``amqp_url`` (AMQP_URL), its validation, and masking passwords.

``amqp_url`` holds one AMQP URL or several, comma-separated (a TOML list is joined the same
way): the nodes of one RabbitMQ cluster, tried in order on connect and on every reconnect,
as RabbitMQ's own clients do with an address list. A comma inside a password must be written
``%2C``. :func:`redact` is the one function that hides passwords: in one URL, in a list, and
in any text (an error message) that quotes URLs. It imports nothing from the package but
``bridge.errors``, so settings and the bus both use it.
"""

from __future__ import annotations

import re

from yarl import URL

_SCHEMES = ("amqp", "amqps")
#: A URL inside any text, up to whitespace, a comma or a quote (any scheme: a mistyped
#: ``http://`` broker URL carries the same password).
_URL_IN_TEXT = re.compile(r"[a-z][a-z0-9+.-]*://[^\s,'\"<>]*", re.IGNORECASE)


def split(text: str) -> list[str]:
    """The URLs of a comma-separated ``amqp_url`` value, blanks dropped."""
    return [part.strip() for part in text.split(",") if part.strip()]


def join(urls: list[str]) -> str:
    """The comma-separated value of a list (a comma inside a URL becomes ``%2C``)."""
    return ",".join(u.strip().replace(",", "%2C") for u in urls)


def _mask_one(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    # The last "@" ends the user info: a raw "@" in a password must not leave its tail shown.
    creds, at, host = rest.rpartition("@")
    if not at:
        return url
    user, colon, _password = creds.partition(":")
    return f"{scheme}{sep}{user}:***@{host}" if colon else url


def redact(text: str) -> str:
    """The text with the password of every URL in it replaced by ``***``.

    Works on one URL, on a comma-separated list, and on messages that quote URLs.
    """
    return _URL_IN_TEXT.sub(lambda m: _mask_one(m.group(0)), text)


def problem(url: str) -> str | None:
    """Why one AMQP URL cannot be used (one line, password hidden), or None."""
    shown = repr(redact(url))
    try:
        u = URL(url)
        port = u.explicit_port
    except (ValueError, TypeError) as exc:
        return f"{shown} is not a URL ({exc})"
    if u.scheme not in _SCHEMES:
        return f"{shown} must start with amqp:// or amqps://"
    if not u.host:
        return f"{shown} names no host"
    if port == 0:
        return f"{shown} has port 0"
    if "://" in u.path or "://" in u.query_string:
        return f"{shown} contains another URL: separate broker URLs with commas"
    return None
