"""Run a server task until SIGTERM or SIGINT, then stop it gracefully (the ``run`` commands)."""

from __future__ import annotations

import logging
import signal
from collections.abc import Awaitable, Callable

import trio


async def run_until_signal(
    task: Callable[..., Awaitable[object]], *args: object, log: logging.Logger
) -> None:
    """Start ``task(*args)`` and cancel it at the first SIGTERM or SIGINT."""
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(task, *args)
            async for signum in signals:
                log.info("%s received: stopping", signal.Signals(signum).name)
                nursery.cancel_scope.cancel()
                break


__all__ = ["run_until_signal"]
