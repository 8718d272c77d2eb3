"""Copying a delivery to ``<ns>.dead`` with the reason, keeping its body and properties.

A dead letter carries ``x-openqq-reason`` (why), ``x-openqq-queue`` (the queue it was taken
from) and ``x-openqq-routing-key`` (the routing key it was published with). It is published
with the key ``<kind>.<account>`` of its queue (``send.bot1``, ``post_api.bot1``), so the
account's dead-letter queue, bound with ``*.<account>``, always holds it.
"""

from __future__ import annotations

import logging

from bridge.bus.base import QUEUE_HEADER, REASON_HEADER, Bus, Delivery, OutMessage
from bridge.core.commands import QUEUE_KINDS
from bridge.core.routing import Names

log = logging.getLogger(__name__)

#: Header on a dead letter: the routing key it was published with.
ROUTING_KEY_HEADER = "x-openqq-routing-key"


def command_queue_of(names: Names, account: str, d: Delivery) -> str:
    """The command queue a delivery came from: each is bound with one key (README: bus contract)."""
    if not d.exchange:
        # Published straight to the queue through the default exchange.
        return d.routing_key
    kind = d.routing_key.split(".", 1)[0]
    for known in QUEUE_KINDS:
        if kind == known:
            return names.command_queue(account, known)
    return d.routing_key


def dead_key(names: Names, queue: str, fallback: str) -> str:
    """``<kind>.<account>`` of a queue named ``<ns>.<account>.<kind>``; else ``fallback``."""
    account, _, kind = queue.removeprefix(f"{names.prefix}.").partition(".")
    if not queue.startswith(f"{names.prefix}.") or not kind or "." in kind:
        return fallback
    return f"{kind}.{account}"


async def dead_letter(bus: Bus, names: Names, d: Delivery, reason: str, queue: str) -> None:
    """Publish the copy (confirmed); raises PublishFailed if the broker did not take it."""
    headers = {
        **d.headers,
        REASON_HEADER: reason[:1000],
        QUEUE_HEADER: queue,
        ROUTING_KEY_HEADER: d.routing_key,
    }
    msg = OutMessage(
        body=d.body,
        message_id=d.message_id,
        correlation_id=d.correlation_id,
        reply_to=d.reply_to,
        type=d.type,
        headers=headers,
        content_type=d.content_type or "application/octet-stream",
        app_id=d.app_id or "openqq-bridge",
    )
    if not await bus.publish(
        names.dead, dead_key(names, queue, d.routing_key), msg, mandatory=True
    ):
        log.error(
            "dead letter from %s had no queue to go to (bind one to %s); reason was: %s",
            queue,
            names.dead,
            reason,
        )
