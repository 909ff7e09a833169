"""CPU-heavy, GIL-holding work (KZG, compression) in a worker process, awaited from Trio.

ckzg and brotli hold the GIL while they work, so running them in a *thread* still stalls the
event loop. :class:`WorkerPool` owns a small ``ProcessPoolExecutor`` (spawned, not forked: the
parent runs Trio and threads) whose workers run an initializer once (e.g. loading the KZG
trusted setup) and die with their parent (:mod:`sequencer_node.system.parent_death`). Results are
awaited in a Trio thread that waits on the future, so the event loop stays free. At most
``processes`` jobs are submitted at once: the executor's own queue is unbounded.

``processes=0`` runs the same functions in a Trio worker thread instead: for tests and tools
where a second process is not worth its start-up time.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
from collections.abc import Callable
from typing import Any, TypeVar

import trio

from sequencer_node.system.parent_death import die_with_parent

T = TypeVar("T")


def _init_worker(parent_pid: int, initializer: Callable[[], object] | None) -> None:
    die_with_parent(parent_pid)
    if initializer is not None:
        initializer()


class WorkerPool:
    """``async with WorkerPool(1, initializer=fn) as pool: result = await pool.run(f, x)``.

    ``initializer`` must be a module-level function (it is pickled by reference).
    """

    def __init__(
        self, processes: int = 1, *, initializer: Callable[[], object] | None = None
    ) -> None:
        if processes < 0:
            raise ValueError("processes must be >= 0")
        self._processes = processes
        self._initializer = initializer
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._limiter = trio.CapacityLimiter(max(1, processes))

    def start(self) -> None:
        if self._processes and self._pool is None:
            self._pool = concurrent.futures.ProcessPoolExecutor(
                max_workers=self._processes,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(os.getpid(), self._initializer),
            )

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a worker (or a thread with ``processes=0``)."""
        async with self._limiter:
            if not self._processes:
                return await trio.to_thread.run_sync(lambda: fn(*args))
            self.start()
            assert self._pool is not None
            fut = self._pool.submit(fn, *args)
            try:
                return await trio.to_thread.run_sync(fut.result, abandon_on_cancel=True)
            except BaseException:
                fut.cancel()
                raise

    async def warm_up(self) -> None:
        """Start the workers and wait until the initializer has run (in a thread when
        ``processes=0``), so the first real job does not pay for it."""
        if self._processes:
            await self.run(_ready)
        elif self._initializer is not None:
            await trio.to_thread.run_sync(self._initializer)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    async def __aenter__(self) -> WorkerPool:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await trio.to_thread.run_sync(self.close)


def _ready() -> bool:
    return True
