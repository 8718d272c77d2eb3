"""The simulated login: loading, scaning (with a QR code PNG), confirming, updating, running.

``sequence`` publishes the states as a real client does and builds the world; ``Login`` runs it
as a task a stop can cancel, so that nothing of the login is published after the stop.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from bridge.core import events as ev
from bridge.core.ports import Emit
from bridge.upstream.sim.png import qr_like, write_png
from bridge.upstream.sim.settings import SimSettings
from bridge.upstream.sim.world import World, default_world


def _mime_base64(data: bytes) -> str:
    # Perl's MIME::Base64: a newline every 76 characters and at the end.
    b64 = base64.b64encode(data).decode()
    return "".join(b64[i : i + 76] + "\n" for i in range(0, len(b64), 76))


async def sequence(
    settings: SimSettings,
    set_state: Callable[[str], Awaitable[None]],
    emit: Emit,
    use_world: Callable[[World], None],
) -> None:
    """Go through the login states; the new world is in use before ``running`` is announced."""
    delay = settings.login_delay
    await set_state("loading")
    await asyncio.sleep(delay)
    await set_state("scaning")
    png = write_png(qr_like(f"openqq-bridge sim login {time.time()}"))
    await emit(ev.InputQrcode(params=[str(settings.qrcode_path), _mime_base64(png)]))
    await asyncio.sleep(delay)
    await set_state("confirming")
    await asyncio.sleep(delay)
    await set_state("updating")
    s = settings
    # Building a big world takes a while; keep the loop responsive meanwhile.
    world = await asyncio.to_thread(
        default_world, s.extra_friends, s.extra_groups, s.members_per_group
    )
    use_world(world)
    await set_state("running")
    await emit(ev.Login(params=(1,)))


class Login:
    """Runs the login sequence as a task that ``cancel()`` (the account's stop) ends."""

    def __init__(self, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self._run = run
        self._task: asyncio.Task[None] | None = None
        self.stopping = False

    async def once(self) -> bool:
        """Log in as a task cancel() can end; True when the login went through."""
        if self.stopping:
            return False
        task = asyncio.get_running_loop().create_task(self._run())
        self._task = task
        try:
            # wait() does not raise when cancel() ends the login, only when once() is cancelled.
            await asyncio.wait([task])
        finally:
            if not task.done():
                task.cancel()
            self._task = None
        if task.cancelled():
            return False
        task.result()
        return True

    async def cancel(self) -> None:
        """No login from now on; one under way ends before it publishes anything more."""
        self.stopping = True
        task = self._task
        if task is not None and not task.done():
            # A login under way must not announce confirming/running/login after the stop.
            task.cancel()
            await asyncio.wait([task])
