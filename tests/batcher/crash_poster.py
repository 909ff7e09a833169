"""Run a poster in a child process and SIGKILL it at a fault point (for test_crash_kill).

``python -m tests.batcher.crash_poster L1_URL DATA_DIR POINT``: certifies batch 0 (L2
blocks 1-5 of the test chain), posts it, and kills itself with SIGKILL at ``POINT``.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import trio

from sequencer_node.batcher.builder import make_header
from sequencer_node.batcher.config import BatcherConfig
from sequencer_node.batcher.kzg_worker import KzgWorker, Prepared
from sequencer_node.batcher.poster import Poster
from sequencer_node.batcher.records import BatchRecords
from sequencer_node.clients.l1 import L1Client
from sequencer_node.wire.codec import encode
from sequencer_node.wire.messages import ZERO_HASH, BatchHeader
from tests.batcher.helpers import KEYS, L1_CHAIN, L2_CHAIN, certify, l2_chain

LAST = 5


async def prepare(worker: KzgWorker, first: int, last: int) -> Prepared:
    blocks = [encode(b) for b in l2_chain(LAST, 3)[first - 1 : last]]
    return await worker.prepare(blocks, algorithm=3, da="blobs", max_payload=10**6, fit=False)


def open_poster(l1: L1Client, worker: KzgWorker, data_dir: Path, point: str | None) -> Poster:

    async def rebuild(h: BatchHeader, algorithm: int) -> Prepared:
        return await prepare(worker, h.first_height, h.last_height)

    def fault(at: str) -> None:
        if at == point:
            os.kill(os.getpid(), signal.SIGKILL)

    return Poster(
        records=BatchRecords.open(data_dir),
        l1=l1,
        key=KEYS[0],
        l1_chain_id=L1_CHAIN,
        config=BatcherConfig(),
        rebuild=rebuild,
        fault=fault,
    )


async def main(url: str, data_dir: Path, point: str) -> None:
    async with L1Client(url) as l1, KzgWorker(0) as worker:
        p = await prepare(worker, 1, LAST)
        header = make_header(
            p.draft,
            chain_id=L2_CHAIN,
            batch_number=0,
            parent_batch_hash=ZERO_HASH,
            stake_epoch=0,
            blob_hashes=p.blob_hashes,
        )
        poster = open_poster(l1, worker, data_dir, point)
        await poster.certified(certify(header), p)
        await poster.post(0)
    sys.exit(0)  # the fault point was never reached


if __name__ == "__main__":
    trio.run(main, sys.argv[1], Path(sys.argv[2]), sys.argv[3])
