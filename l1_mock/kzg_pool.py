"""Blob KZG verification in a worker process.

ckzg holds the GIL while it works (about 2 ms per blob to verify, and 1.6-2.5 s to load the
trusted setup), so running it in a *thread* still stalls the event loop: block production and
every HTTP answer wait behind it. A spawned worker process has its own interpreter; the event
loop only waits on the result. The worker loads the trusted setup once, when it starts, and
:meth:`KzgVerifier.warm_up` makes that happen at node start instead of on the first blob.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
from collections.abc import Sequence

import trio

from sequencer_node.parent_death import die_with_parent
from sequencer_node.wire import kzg
from sequencer_node.wire.kzg import BlobCheck, verify_blobs_batch


def _init_worker(parent_pid: int) -> None:
    die_with_parent(parent_pid)
    kzg.trusted_setup()


def _ready() -> bool:
    return True


class KzgVerifier:
    """``await verifier.verify(blobs, commitments, proofs)``; ``processes=0`` uses a thread
    (for tests that do not want a child process)."""

    def __init__(self, processes: int = 1) -> None:
        if processes < 0:
            raise ValueError("processes must be >= 0")
        self._processes = processes
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        # One verification at a time per worker: the pool's own queue is unbounded.
        self._limiter = trio.CapacityLimiter(max(1, processes))

    def start(self) -> None:
        if self._processes and self._pool is None:
            self._pool = concurrent.futures.ProcessPoolExecutor(
                max_workers=self._processes,
                # spawn, not fork: the parent runs Trio and threads
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(os.getpid(),),
            )

    async def warm_up(self) -> None:
        """Start the worker and wait until it has loaded the trusted setup."""
        if self._processes:
            self.start()
            assert self._pool is not None
            fut = self._pool.submit(_ready)
            await trio.to_thread.run_sync(fut.result, abandon_on_cancel=True)
        else:
            await trio.to_thread.run_sync(kzg.trusted_setup)

    async def verify(
        self, blobs: Sequence[bytes], commitments: Sequence[bytes], proofs: Sequence[bytes]
    ) -> BlobCheck:
        args = (list(blobs), list(commitments), list(proofs))
        async with self._limiter:
            if not self._processes:
                return await trio.to_thread.run_sync(lambda: verify_blobs_batch(*args))
            self.start()
            assert self._pool is not None
            fut = self._pool.submit(verify_blobs_batch, *args)
            try:
                return await trio.to_thread.run_sync(fut.result, abandon_on_cancel=True)
            except BaseException:
                fut.cancel()
                raise

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
