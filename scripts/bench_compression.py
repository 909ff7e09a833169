"""Benchmark batch compression: bytes per transaction and CPU time for each algorithm.

Generates the same deterministic load for every algorithm (signed transfers among many
accounts, executed by the ledger, as ``sequencer_node.batching.sample`` builds them), encodes
batches of several sizes, and reports, as medians over a few runs:

* bytes/tx of the payload (header + compressed body) and of the raw body;
* compression and decompression time in ms per MB of raw body;
* blobs needed and blob fill ratio.

Writes ``bench-results/compression.txt``. Usage: ``python scripts/bench_compression.py``
(about a minute on one core).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

from sequencer_node.batching.blobs import MAX_BLOB_DATA_SIZE, blobs_needed
from sequencer_node.batching.codec import Batch, encode_body
from sequencer_node.batching.compression import LEVELS, Algorithm, compress, decompress
from sequencer_node.batching.sample import sample_chain

RUNS = 5
#: (accounts, skew, blocks, txs per block): small, one-blob-sized and large batches, with
#: senders/recipients uniform (skew 1) or concentrated on a few hot accounts (skew 3).
LOADS = [
    (10_000, 1, 10, 10),
    (10_000, 1, 10, 100),
    (10_000, 1, 20, 250),
    (10_000, 3, 10, 100),
    (10_000, 3, 20, 250),
]
#: Extra settings measured for reference next to the defaults.
EXTRA = [(Algorithm.ZSTD, 3), (Algorithm.BROTLI, 11)]


def measure(body: bytes, algo: Algorithm, level: int) -> tuple[int, float, float]:
    sizes, c_ms, d_ms = [], [], []
    for _ in range(RUNS):
        t0 = time.perf_counter()
        c = compress(body, algo, level=level)
        t1 = time.perf_counter()
        out = decompress(c, algo)
        t2 = time.perf_counter()
        assert out == body
        sizes.append(len(c))
        c_ms.append((t1 - t0) * 1000)
        d_ms.append((t2 - t1) * 1000)
    return sizes[0], statistics.median(c_ms), statistics.median(d_ms)


def main() -> None:
    lines = [
        "# Batch compression (scripts/bench_compression.py)",
        f"# python {sys.version.split()[0]}; medians of {RUNS} runs",
        "# payload = 2-byte header (version, algorithm) + compressed body",
        f"# levels: {', '.join(f'{a.name.lower()}={lvl}' for a, lvl in LEVELS.items())}",
        "# load: signed transfers; sender/recipient uniform (skew 1) or hot-account skewed (3),",
        "#       amounts 1..1e9 (log-uniform), fees 1..2000, real nonces and state roots",
        "",
        f"{'accounts':>8} {'skew':>4} {'txs':>6} {'algorithm':>10} {'bytes/tx':>9} {'ratio':>6} "
        f"{'comp ms/MB':>10} {'decomp ms/MB':>12} {'blobs':>5} {'fill':>6}",
    ]
    settings = [(a, LEVELS[a]) for a in Algorithm] + EXTRA
    for accounts, skew, blocks, per_block in LOADS:
        _, chain = sample_chain(
            accounts=accounts, blocks=blocks, txs_per_block=per_block, skew=skew
        )
        batch = Batch.from_certified(chain)
        body = encode_body(batch)
        ntx = batch.tx_count()
        mb = len(body) / 1e6
        for algo, level in settings:
            size, c_ms, d_ms = measure(body, algo, level)
            name = algo.name.lower() + (f"-{level}" if algo is not Algorithm.NONE else "")
            payload = 2 + size
            n_blobs = blobs_needed(payload)
            lines.append(
                f"{accounts:>8} {skew:>4} {ntx:>6} {name:>10} {payload / ntx:>9.1f} "
                f"{len(body) / size:>6.3f} {c_ms / mb:>10.1f} {d_ms / mb:>12.1f} "
                f"{n_blobs:>5} {payload / (n_blobs * MAX_BLOB_DATA_SIZE):>6.1%}"
            )
        print("\n".join(lines[-len(settings) :]), flush=True)
    out = Path("bench-results/compression.txt")
    out.parent.mkdir(exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
