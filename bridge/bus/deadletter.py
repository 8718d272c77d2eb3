"""Copying a delivery to ``<ns>.dead`` with the reason, keeping its body and properties."""

from __future__ import annotations

import logging

from bridge.bus.base import QUEUE_HEADER, REASON_HEADER, Bus, Delivery, OutMessage
from bridge.core.routing import Names

log = logging.getLogger(__name__)


async def dead_letter(bus: Bus, names: Names, d: Delivery, reason: str, queue: str) -> None:
    """Publish the copy (confirmed); raises PublishFailed if the broker did not take it."""
    headers = {**d.headers, REASON_HEADER: reason[:1000], QUEUE_HEADER: queue}
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
    if not await bus.publish(names.dead, d.routing_key, msg, mandatory=True):
        log.error(
            "dead letter from %s had no queue to go to (bind one to %s); reason was: %s",
            queue,
            names.dead,
            reason,
        )
