"""What can go wrong talking to a OneBot v11 implementation (imports only bridge.errors)."""

from __future__ import annotations

from bridge.errors import ActionFailed, BridgeError, UpstreamUnavailable


class OneBotActionFailed(ActionFailed):
    """The implementation answered ``status: failed`` (or a non-zero retcode)."""

    def __init__(self, action: str, retcode: int, wording: str) -> None:
        super().__init__(f"{action} failed: retcode {retcode}: {wording or 'no message'}")
        self.action = action
        self.retcode = retcode
        self.wording = wording


class ActionTimeout(BridgeError, TimeoutError):
    """No answer to an action within its timeout (it may still have been carried out)."""


class NotConnected(UpstreamUnavailable):
    """No connection to the OneBot implementation right now (nothing was sent)."""


class ConnectionLost(BridgeError, ConnectionError):
    """The connection dropped while an action waited for its answer."""


class ConnectFailed(BridgeError, ConnectionError):
    """The connection could not be opened (or was closed before the account ran)."""


class TokenRejected(ConnectFailed):
    """The implementation refused the access token (HTTP 401/403, or a retcode 1403 frame)."""


class WrongAccount(ConnectFailed):
    """The implementation logged in another QQ account than the one this bridge serves."""


class BadFrame(BridgeError, ValueError):
    """A frame that is not a OneBot frame (not JSON, nested too deep, wrong field types)."""


#: Errors after which an action may be given up and the event published with what is known.
ACTION_ERRORS = (OneBotActionFailed, ActionTimeout, NotConnected, ConnectionLost)
