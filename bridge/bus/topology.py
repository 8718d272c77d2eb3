"""Declares the names of the README's bus contract on a bus; every call is idempotent."""

from __future__ import annotations

from typing import Any, Literal

from bridge.bus.base import Bus
from bridge.core.commands import QUEUE_KINDS
from bridge.core.routing import Names, command_key

QueueType = Literal["classic", "quorum"]


async def declare_exchanges(bus: Bus, names: Names) -> None:
    """The three topic exchanges every process of a namespace uses."""
    for exchange in (names.events, names.commands, names.dead):
        await bus.declare_exchange(exchange)


def command_queue_arguments(names: Names, queue_type: QueueType) -> dict[str, Any]:
    """Arguments of a command queue: dead letters go to ``<ns>.dead``."""
    args: dict[str, Any] = {"x-dead-letter-exchange": names.dead}
    if queue_type == "quorum":
        args["x-queue-type"] = "quorum"
        # A standby bridge may consume too; only one is active at a time.
        args["x-single-active-consumer"] = True
    return args


def post_api_queue_arguments(names: Names, queue_type: QueueType) -> dict[str, Any]:
    """Arguments of an account's post_api queue: ordered (one consumer at a time), dead
    letters to ``<ns>.dead``; a quorum queue when ``queue_type`` is quorum, so the reports
    waiting in it survive the loss of a cluster node.
    """
    args: dict[str, Any] = {
        "x-dead-letter-exchange": names.dead,
        "x-single-active-consumer": True,
    }
    if queue_type == "quorum":
        args["x-queue-type"] = "quorum"
    return args


async def declare_account(
    bus: Bus, names: Names, account: str, queue_type: QueueType = "classic"
) -> None:
    """Exchanges, the five command queues and the dead-letter queue of one account."""
    await declare_exchanges(bus, names)
    args = command_queue_arguments(names, queue_type)
    for kind in QUEUE_KINDS:
        queue = await bus.declare_queue(names.command_queue(account, kind), arguments=args)
        await bus.bind(queue, names.commands, command_key(kind, account))
    dead_args: dict[str, Any] = {"x-queue-type": "quorum"} if queue_type == "quorum" else {}
    dead = await bus.declare_queue(names.dead_queue(account), arguments=dead_args)
    await bus.bind(dead, names.dead, f"*.{account}")
