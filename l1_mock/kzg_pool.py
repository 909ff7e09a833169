"""Blob KZG verification for the L1 in a worker process.

ckzg holds the GIL while it works (about 2 ms per blob to verify, and 1.6-2.5 s to load the
trusted setup), so a thread would stall block production and every HTTP answer. The worker
(:class:`~sequencer_node.system.worker_pool.WorkerPool`) loads the trusted setup once; the server
calls :meth:`KzgVerifier.warm_up` at start so that happens before the first blob batch.
"""

from __future__ import annotations

from collections.abc import Sequence

from sequencer_node.system.worker_pool import WorkerPool
from sequencer_node.wire import kzg
from sequencer_node.wire.kzg import BlobCheck, verify_blobs_batch


class KzgVerifier:
    """``await verifier.verify(blobs, commitments, proofs)``; ``processes=0`` uses a thread
    (for tests that do not want a child process)."""

    def __init__(self, processes: int = 1) -> None:
        self._pool = WorkerPool(processes, initializer=kzg.trusted_setup)

    async def warm_up(self) -> None:
        await self._pool.warm_up()

    async def verify(
        self, blobs: Sequence[bytes], commitments: Sequence[bytes], proofs: Sequence[bytes]
    ) -> BlobCheck:
        return await self._pool.run(
            verify_blobs_batch, list(blobs), list(commitments), list(proofs)
        )

    def close(self) -> None:
        self._pool.close()
