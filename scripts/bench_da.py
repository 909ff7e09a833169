"""Benchmark data availability: bytes per transaction, blob fill and L1 cost per transaction
for blob batches versus calldata batches on the same load, under several forks' fee rules.

The load is deterministic signed transfers among 10,000 accounts
(``sequencer_node.batching.sample``). Batches are cut by the batcher's own builder
(``fit_draft``: the longest run of blocks whose brotli-9 payload fits 6 blobs) and, for the
low-load case, by age (a few dozen transactions per batch). Costs use the L1 mock's fee rules
(``l1_mock.chain.fees.calldata_gas`` with the EIP-7623 floor from Prague on, and
``blobs * 131072 * blob base fee``), exactly what its ledger charges a ``submitBatch``
(checked against a receipt in tests/batcher/test_poster.py). The CPU cost of preparing a
batch (encode, compress, pack, KZG commitments and proofs) is timed in the batcher's worker
process.

Writes ``bench-results/da.txt``. Usage: ``python scripts/bench_da.py`` (about a minute).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import trio

from l1_mock.chain import CALL_EXECUTION_GAS
from l1_mock.chain.fees import blob_base_fee, calldata_gas
from sequencer_node.batcher.builder import Draft, draft_batch, fit_draft
from sequencer_node.batcher.kzg_worker import KzgWorker
from sequencer_node.batching.blobs import MAX_BLOB_DATA_SIZE
from sequencer_node.batching.sample import sample_chain
from sequencer_node.wire.blobs import BLOB_SCHEDULE, GAS_PER_BLOB
from sequencer_node.wire.codec import encode

GWEI = 10**9
#: (name, accounts, skew, blocks, txs per block, how the batch is cut)
LOADS = [
    ("busy, uniform", 10_000, 1, 40, 250, "size"),
    ("busy, skewed", 10_000, 3, 40, 250, "size"),
    ("quiet (age cut)", 10_000, 1, 10, 5, "age"),
]
FORKS = ["cancun", "prague", "osaka", "bpo2"]
#: (execution base fee, blob base fee) in wei: this L1's constant 1 gwei with an empty blob
#: market (the 1 wei minimum), and a congested blob market.
FEES = [(1 * GWEI, 1), (1 * GWEI, 1 * GWEI), (20 * GWEI, 10 * GWEI)]
PREP_RUNS = 3


def costs(d: Draft, fork: str, base_fee: int, blob_fee: int) -> tuple[int, int]:
    """(blob batch fee, calldata batch fee) in wei for the same payload."""
    params = BLOB_SCHEDULE[fork]
    blob = calldata_gas(b"", params, CALL_EXECUTION_GAS) * base_fee
    blob += len(d.blobs) * GAS_PER_BLOB * blob_fee
    calldata = calldata_gas(d.payload, params, CALL_EXECUTION_GAS) * base_fee
    return blob, calldata


def fmt_wei(w: float) -> str:
    if w >= 10**15:
        return f"{w / 10**18:.6f} ETH"
    if w >= GWEI:
        return f"{w / GWEI:.1f} gwei"
    return f"{w:,.0f} wei"


async def prep_time(blocks: list[bytes]) -> list[float]:
    out = []
    async with KzgWorker(1) as w:
        await w.commit([])  # start the worker and load the trusted setup before timing
        for _ in range(PREP_RUNS):
            t = time.perf_counter()
            await w.prepare(blocks, algorithm=3, da="blobs", max_payload=10**7, fit=False)
            out.append(time.perf_counter() - t)
    return out


def main() -> None:
    lines: list[str] = []

    def say(s: str = "") -> None:
        print(s)
        lines.append(s)

    say("# DA benchmark: blobs vs calldata on the same batches (scripts/bench_da.py)")
    say(f"# python {sys.version.split()[0]}; brotli-9 payloads; 6 blobs per transaction max")
    say("# posted bytes: whole blobs (131,072 B each) or the calldata; fee: what the L1 charges")
    say()
    prepared: dict[str, tuple[Draft, list[bytes]]] = {}
    for name, accounts, skew, blocks, per_block, cut in LOADS:
        _, chain = sample_chain(
            accounts=accounts, blocks=blocks, txs_per_block=per_block, skew=skew
        )
        if cut == "size":
            d = fit_draft(chain, algorithm=3, da="blobs", max_payload=6 * MAX_BLOB_DATA_SIZE)
        else:
            d = draft_batch(chain, algorithm=3, da="blobs", max_payload=6 * MAX_BLOB_DATA_SIZE)
        n = d.last_height - d.first_height + 1
        prepared[name] = (d, [encode(b) for b in chain[:n]])
        say(
            f"## load: {name}: {d.tx_count} txs in {n} blocks -> payload {len(d.payload):,} B, "
            f"{len(d.blobs)} blobs, fill {d.blob_fill:.1%}"
        )
        say(
            f"   payload bytes/tx {len(d.payload) / d.tx_count:.1f}; posted bytes/tx: blobs "
            f"{len(d.blobs) * 131072 / d.tx_count:.1f}, calldata {len(d.payload) / d.tx_count:.1f}"
        )
        say(
            f"   {'fork':<7} {'base fee':>9} {'blob fee':>9} | {'blob $/tx':>14} "
            f"{'calldata $/tx':>14} | calldata/blob"
        )
        for fork in FORKS:
            for base, bfee in FEES:
                b, c = costs(d, fork, base, bfee)
                say(
                    f"   {fork:<7} {fmt_wei(base):>9} {fmt_wei(bfee):>9} | "
                    f"{fmt_wei(b / d.tx_count):>14} {fmt_wei(c / d.tx_count):>14} | "
                    f"{c / b:8.1f}x"
                )
        say()
    d, _ = prepared["busy, uniform"]
    say("## blob market spike: blob base fee after k consecutive full blocks (from 1 wei),")
    say("## by fork parameters, and the busy-uniform batch's blob cost per tx at that fee")
    say(
        f"   {'fork':<7} {'k':>3} | {'blob base fee':>14} | {'blob $/tx':>14} {'calldata $/tx':>14}"
    )
    for fork in FORKS:
        params = BLOB_SCHEDULE[fork]
        for k in (50, 100, 200):
            excess = k * (params.max - params.target) * GAS_PER_BLOB
            bfee = blob_base_fee(excess, params)
            b, c = costs(d, fork, 1 * GWEI, bfee)
            say(
                f"   {fork:<7} {k:>3} | {fmt_wei(bfee):>14} | {fmt_wei(b / d.tx_count):>14} "
                f"{fmt_wei(c / d.tx_count):>14}"
            )
    say()
    d, encoded = prepared["busy, uniform"]
    times = trio.run(prep_time, encoded)
    say(
        f"## batch preparation in the worker process ({len(d.blobs)} blobs, {d.tx_count} txs): "
        f"median {statistics.median(times) * 1000:.0f} ms over {PREP_RUNS} runs "
        f"(min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f}); "
        f"{statistics.median(times) * 1000 / len(d.blobs):.0f} ms per blob incl. compression"
    )
    out = Path(__file__).resolve().parent.parent / "bench-results" / "da.txt"
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
