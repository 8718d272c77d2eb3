"""The exception tree of openqq-bridge; imports nothing from the package."""

from __future__ import annotations


class BridgeError(Exception):
    """Root of every error this package raises on purpose."""


class ConfigError(BridgeError, ValueError):
    """A setting is missing or wrong; the message names the setting."""


class BrokerUnavailable(BridgeError, ConnectionError):
    """RabbitMQ could not be reached (after the bounded start-up retries)."""


class PublishFailed(BridgeError):
    """The broker refused (nacked) a publish, or the channel died before the confirm."""


class BrokerAway(PublishFailed):
    """The broker connection is down (reconnecting): nothing was published, it may be retried."""


class PoisonMessage(BridgeError):
    """A command that can never succeed (undecodable, wrong shape); dead-lettered."""


class UpstreamUnavailable(BridgeError):
    """The QQ side is not ready (not logged in, disconnected); retryable."""


class ActionFailed(BridgeError):
    """The QQ side refused an action (no rights, target is an admin, ...); final."""


class AlreadyRunning(BridgeError):
    """Another bridge for the same account holds the pid file."""


class BufferFull(BridgeError):
    """The bridge's event buffer stayed full (broker away too long): refused upstream."""


class RpcTimeout(BridgeError, TimeoutError):
    """No reply arrived for a command within its timeout."""


class NoRoute(BridgeError):
    """A mandatory publish was returned: nothing is bound to that routing key."""


#: Errors after which the same work may succeed if tried again later.
RETRYABLE: tuple[type[BaseException], ...] = (
    BrokerUnavailable,
    PublishFailed,
    UpstreamUnavailable,
    ConnectionError,
    TimeoutError,
)
