"""Request parameters as Mojolicious sees them (reference/openqq-spec.md §1.7).

Parameters are the urlencoded or multipart body pairs followed by the query pairs; a name given
twice holds a list, which makes every lookup on it fail; JSON bodies are ignored. Values are
percent-decoded, then decoded with the body's charset (UTF-8 by default); bytes that are not
valid in it become U+FFFD, so they never match and never crash.
"""

from __future__ import annotations

import asyncio
import codecs
import re
from collections.abc import Iterable
from urllib.parse import parse_qsl

from aiohttp import web

Params = dict[str, list[str]]

MAX_FIELDS = 1000
_QQ = re.compile(r"(0|[1-9][0-9]{0,18})")


class BadRequest(Exception):
    """The request cannot be read as parameters (too many fields, broken multipart)."""


def _pairs(raw: str, charset: str) -> Iterable[tuple[str, str]]:
    try:
        decoded = parse_qsl(
            raw, keep_blank_values=True, encoding="latin-1", max_num_fields=MAX_FIELDS
        )
    except ValueError as exc:
        msg = f"more than {MAX_FIELDS} parameters"
        raise BadRequest(msg) from exc
    for k, v in decoded:
        # latin-1 maps bytes 1:1, so this recovers the raw bytes before decoding them.
        yield (
            k.encode("latin-1", "replace").decode(charset, "replace"),
            v.encode("latin-1", "replace").decode(charset, "replace"),
        )


def _charset(request: web.Request) -> str:
    name = request.charset or "utf-8"
    try:
        return codecs.lookup(name).name
    except LookupError:
        return "utf-8"


class TooLarge(BadRequest):
    """The body is larger than the limit (HTTP 413)."""


async def read_params(request: web.Request, *, max_bytes: int, timeout: float = 30.0) -> Params:  # noqa: ASYNC109
    """Body pairs, then query pairs, by name.

    A body announced larger than ``max_bytes`` is refused before it is read; a body that does
    not arrive within ``timeout`` seconds is refused too (a client must not hold a handler).
    """
    pairs: list[tuple[str, str]] = []
    form = None
    ctype = request.content_type
    if request.content_length is not None and request.content_length > max_bytes:
        msg = f"request body of {request.content_length} bytes is over the {max_bytes} limit"
        raise TooLarge(msg)
    if request.can_read_body and ctype in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        try:
            async with asyncio.timeout(timeout):
                if ctype == "application/x-www-form-urlencoded":
                    raw = await request.read()
                    pairs += _pairs(raw.decode("latin-1"), _charset(request))
                else:
                    form = await request.post()
        except TimeoutError as exc:
            msg = f"request body not received within {timeout:g}s"
            raise BadRequest(msg) from exc
        except ValueError as exc:
            msg = f"unreadable body: {exc}"
            raise BadRequest(msg) from exc
        if form is not None:
            for k, v in form.items():
                # A file part stands for its file name, as a text field would.
                pairs.append((k, v if isinstance(v, str) else getattr(v, "filename", "") or ""))
    pairs += _pairs(request.rel_url.raw_query_string, "utf-8")
    if len(pairs) > MAX_FIELDS:
        msg = f"more than {MAX_FIELDS} parameters"
        raise BadRequest(msg)
    params: Params = {}
    for k, v in pairs:
        params.setdefault(k, []).append(v)
    return params


def single(params: Params, name: str) -> str | None:
    """The value of a parameter given once; None when absent or repeated."""
    values = params.get(name)
    return values[0] if values is not None and len(values) == 1 else None


def last(params: Params, name: str) -> str | None:
    """The last value of a parameter (Mojolicious ``param``), None when absent."""
    values = params.get(name)
    return values[-1] if values else None


def qq(value: str | None) -> int | None:
    """A QQ number or id written exactly as the number's decimal text, else None.

    The original compares ids as text: ``0123`` or ``+123`` never equal 123.
    """
    if value is None or not _QQ.fullmatch(value):
        return None
    return int(value)


def truthy(value: str | None) -> bool:
    """Perl truthiness of a parameter: false only when missing, empty or exactly ``0``."""
    return value not in (None, "", "0")
