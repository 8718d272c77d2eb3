"""Starting an aiohttp server with a clear error when it cannot listen, and where it listens."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bridge.errors import ConfigError


async def start_site(
    app: web.Application,
    host: str,
    port: int,
    setting: str,
    runner_class: type[web.AppRunner] = web.AppRunner,
    **runner_options: Any,
) -> tuple[web.AppRunner, tuple[str, int]]:
    """Serve ``app`` on host:port; ConfigError naming ``setting`` if the port cannot be had.

    Returns the runner (clean it up to stop) and the address bound (port 0 picks a free one).
    """
    runner = runner_class(app, access_log=None, handle_signals=False, **runner_options)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        msg = f"{setting} {host}:{port}: cannot listen ({exc.strerror or exc})"
        raise ConfigError(msg) from exc
    # aiohttp has no public accessor for the bound socket.
    sockets = getattr(site._server, "sockets", None) or []
    bound = sockets[0].getsockname()[:2] if sockets else (host, port)
    return runner, (str(bound[0]), int(bound[1]))
