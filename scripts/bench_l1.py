"""Benchmark of the mock L1: blob verifications per second and blocks per second with full blobs.

Writes bench-results/l1.txt. Run: .venv/bin/python scripts/bench_l1.py [--blocks N]
Measures (single process, wall clock):
  1. verify_blobs_batch (shape + field elements + ckzg batch proof) for 1, 6 and 21 blobs;
  2. the pure ledger mining blocks that are full of blob batches (no KZG: already verified);
  3. the whole node path (KZG in a worker thread + ledger + SQLite fsync per block) per block.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from l1_mock.chain.machine import Chain
from l1_mock.server import L1Service, L1Settings
from sequencer_node.wire.blobs import BLOB_SCHEDULE, kzg_to_versioned_hash
from sequencer_node.wire.kzg import (
    blob_to_commitment_and_proof,
    trusted_setup,
    verify_blobs_batch,
)
from sequencer_node.wire.l1calls import SubmitBatch, make_call
from sequencer_node.wire.messages import L1Call, batch_hash
from tests.l1 import helpers


def random_blob(seed: int) -> bytes:
    return b"".join(
        b"\x00" + hashlib.sha256(b"%d/%d" % (seed, i)).digest()[1:] for i in range(4096)
    )


def bench_verify(blob: bytes, c: bytes, p: bytes, n: int, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        assert verify_blobs_batch([blob] * n, [c] * n, [p] * n).ok
        times.append(time.perf_counter() - t)
    return n / statistics.median(times)


def full_block_batches(
    chain: Chain, blob: bytes, c: bytes, p: bytes, fork: str
) -> list[SubmitBatch]:
    """Batches filling one block: max blobs per block split into max-per-tx transactions,
    each extending the one before (they execute in nonce order from one sender)."""
    params = BLOB_SCHEDULE[fork]
    vh = kzg_to_versioned_hash(c)
    prev = chain.batches[-1].header if chain.batches else None
    left, out = params.max, []
    while left:
        n = min(left, params.max_per_tx)
        left -= n
        h = helpers.batch_header(chain, blobs=n)
        first = prev.last_height + 1 if prev else 1
        h = dataclasses.replace(
            h,
            batch_number=prev.batch_number + 1 if prev else 0,
            parent_batch_hash=batch_hash(prev) if prev else bytes(32),
            first_height=first,
            last_height=first + 9,
            blob_hashes=(vh,) * n,
        )
        sp = helpers.batch_params(h, max_fee=10**15)
        out.append(
            dataclasses.replace(sp, blobs=(blob,) * n, commitments=(c,) * n, proofs=(p,) * n)
        )
        prev = h
    return out


def bench_ledger(blob: bytes, c: bytes, p: bytes, fork: str, blocks: int) -> float:
    chain = helpers.new_chain(forks=((0, fork),))
    vh = kzg_to_versioned_hash(c)
    elapsed = 0.0
    for _ in range(blocks):
        batches = full_block_batches(chain, blob, c, p, fork)
        nonce = chain.pending_nonce(helpers.OWNERS[0].address)
        calls = [
            make_call(b, helpers.OWNERS[0], nonce + i, helpers.L1_CHAIN)
            for i, b in enumerate(batches)
        ]  # signing is the client's work: not timed
        t = time.perf_counter()
        for call, b in zip(calls, batches, strict=True):
            chain.submit(call, (vh,) * len(b.blobs))
        helpers.mine(chain)
        elapsed += time.perf_counter() - t
        assert chain.head.blob_gas_used == BLOB_SCHEDULE[fork].max_blob_gas
        assert all(r.status == 1 for r in chain.blocks[-1].receipts), chain.blocks[-1].receipts
    return blocks / elapsed


async def bench_node(blob: bytes, c: bytes, p: bytes, fork: str, blocks: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        g = helpers.genesis(forks=((0, fork),))
        node = L1Service.open(g, L1Settings(Path(tmp), 2, auto_mine=False))
        elapsed = 0.0
        for _ in range(blocks):
            batches = full_block_batches(node.chain, blob, c, p, fork)
            calls: list[L1Call] = []
            for b in batches:
                nonce = node.chain.pending_nonce(helpers.OWNERS[0].address) + len(calls)
                calls.append(make_call(b, helpers.OWNERS[0], nonce, helpers.L1_CHAIN))
            t = time.perf_counter()
            for call in calls:
                await node.submit(call)
            await node.mine(1)
            elapsed += time.perf_counter() - t
            assert node.chain.head.blob_gas_used == BLOB_SCHEDULE[fork].max_blob_gas
        node.store.close()
        return blocks / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--blocks", type=int, default=10, help="full blocks per measurement")
    ap.add_argument("--out", default="bench-results/l1.txt")
    args = ap.parse_args()
    lines = [f"# scripts/bench_l1.py on {platform.platform()}, Python {platform.python_version()}"]
    t = time.perf_counter()
    trusted_setup()
    lines.append(f"trusted setup load: {time.perf_counter() - t:.2f} s")
    blob = random_blob(1)
    t = time.perf_counter()
    c, p = blob_to_commitment_and_proof(blob)
    lines.append(f"commitment + proof of one blob: {(time.perf_counter() - t) * 1000:.0f} ms")
    for n, rounds in ((1, 30), (6, 10), (21, 5)):
        rate = bench_verify(blob, c, p, n, rounds)
        lines.append(
            f"blob verification, batches of {n:2d}: {rate:7.0f} blobs/s (median of {rounds})"
        )
    for fork in ("cancun", "bpo2"):
        mx = BLOB_SCHEDULE[fork].max
        rate = bench_ledger(blob, c, p, fork, args.blocks)
        lines.append(f"ledger only, {fork} full blocks ({mx} blobs): {rate:7.1f} blocks/s")
        rate = trio.run(bench_node, blob, c, p, fork, args.blocks)
        lines.append(
            f"node path (KZG thread + ledger + SQLite), {fork} full blocks ({mx} blobs): "
            f"{rate:6.1f} blocks/s"
        )
    text = "\n".join(lines) + "\n"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text, end="")


if __name__ == "__main__":
    main()
