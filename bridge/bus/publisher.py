"""EventPublisher: one event -> one persistent, confirmed message on ``<ns>.events``.

Properties (README: bus contract): ``message_id`` (stable for the event, so a re-publish after
a failure can be de-duplicated downstream), ``timestamp``, ``type`` (the routing key's first
two words), ``app_id``, persistent delivery and the ``account`` header. A publish the broker
does not confirm is retried with backoff until it is confirmed or the publisher is stopped:
events are never dropped here. An event nobody is bound for is returned by RabbitMQ; that is
logged (once per routing key at INFO) and counted.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    wait_exponential_jitter,
)

from bridge.bus.base import Bus, OutMessage
from bridge.core.codec import encode
from bridge.core.events import Event
from bridge.core.routing import Names, event_key
from bridge.errors import PublishFailed

log = logging.getLogger(__name__)


class EventPublisher:
    """Publishes one account's events; ``unroutable`` counts events nobody was bound for."""

    def __init__(self, bus: Bus, names: Names, account: str) -> None:
        self._bus = bus
        self._exchange = names.events
        self._account = account
        self.published = 0
        self.unroutable = 0
        self._warned: set[str] = set()
        self._failing = False

    def message(self, event: Event, message_id: str) -> tuple[str, OutMessage]:
        """The routing key and message of an event."""
        return event_key(event.KIND, self._account), OutMessage(
            body=encode(event),
            message_id=message_id,
            type=event.KIND,
            timestamp=datetime.now(UTC),
            headers={"account": self._account},
        )

    async def publish(self, event: Event, message_id: str) -> None:
        """Publish until confirmed (retrying with backoff); raises only when cancelled."""
        key, msg = self.message(event, message_id)
        try:
            # The common case without tenacity's overhead; failures take the retry loop.
            routed = await self._bus.publish(self._exchange, key, msg, mandatory=True)
        except PublishFailed as exc:
            if not self._failing:
                # Once per outage: hundreds of events in flight fail together.
                self._failing = True
                log.warning("events not confirmed by the broker (%s); retrying each", exc)
            routed = await self._retry(key, msg, message_id)
        if self._failing:
            self._failing = False
            log.warning("events are confirmed by the broker again")
        self.published += 1
        if not routed:
            self._returned(key)

    async def _retry(self, key: str, msg: OutMessage, message_id: str) -> bool:
        routed = False

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.debug(
                "event %s (message_id %s) not confirmed by the broker, retry %d: %s",
                key,
                message_id,
                state.attempt_number,
                exc,
            )

        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(PublishFailed),
            wait=wait_exponential_jitter(multiplier=0.05, max=5.0, jitter=0.05),
            before_sleep=before_sleep,
            reraise=True,
        ):
            with attempt:
                routed = await self._bus.publish(self._exchange, key, msg, mandatory=True)
        return routed

    def _returned(self, key: str) -> None:
        self.unroutable += 1
        if key not in self._warned:
            self._warned.add(key)
            log.info(
                "no queue is bound for %s on %s, so the broker dropped it (bind a queue"
                " to keep such events; further ones are logged at DEBUG)",
                key,
                self._exchange,
            )
        else:
            log.debug("event %s returned unroutable", key)
