"""Benchmark what the shared good-signature cache saves on the consensus hot path.

A vote is checked by the node's relay filter, by the core, and again inside the QC that the
next block carries. Measured side by side in one process, medians of 5 runs:

* ``verify`` of 1,000 distinct votes with an empty cache (each signature checked once);
* the same 1,000 votes checked again (the core after the relay filter: cache hits);
* ``verify_qc`` of 250 QCs of 4 votes each whose votes were already seen (the normal case),
  against the same QCs with an empty cache (what every QC cost before the cache).

Writes ``bench-results/signatures.txt``. Usage: ``python scripts/bench_signatures.py``.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

from sequencer_node.wire.certificates import verify_qc
from sequencer_node.wire.crypto import SIGNATURE_CACHE, SigningKey, sign_message, verify_message
from sequencer_node.wire.messages import Endorsement, QuorumCertificate, Vote

CHAIN = 901
RUNS = 5
KEYS = [SigningKey.deterministic(f"bench-sig-{i}") for i in range(4)]
STAKES = {k.public_key: 25 for k in KEYS}


def _votes(n_rounds: int) -> list[list[Vote]]:
    out = []
    for r in range(1, n_rounds + 1):
        digest = r.to_bytes(32, "big")
        out.append(
            [sign_message(Vote(digest, r, r, 0, k.public_key, bytes(64)), k, CHAIN) for k in KEYS]
        )
    return out


def _qc(votes: list[Vote]) -> QuorumCertificate:
    v = votes[0]
    sigs = tuple(Endorsement(x.voter, x.signature) for x in votes)
    return QuorumCertificate(v.block_hash, v.height, v.round, v.epoch, sigs)


def _time(fn: object) -> float:
    t = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - t


def main() -> None:
    rounds = _votes(250)
    flat = [v for vs in rounds for v in vs]
    qcs = [_qc(vs) for vs in rounds]

    def check_votes() -> None:
        for v in flat:
            assert verify_message(v, v.voter, CHAIN)

    def check_qcs() -> None:
        for qc in qcs:
            verify_qc(qc, STAKES, CHAIN)

    cold, warm, qc_cold, qc_seen = [], [], [], []
    for _ in range(RUNS):
        SIGNATURE_CACHE.clear()
        cold.append(_time(check_votes))
        warm.append(_time(check_votes))
        qc_seen.append(_time(check_qcs))
        SIGNATURE_CACHE.clear()
        qc_cold.append(_time(check_qcs))
    m = statistics.median
    n = len(flat)
    lines = [
        f"# scripts/bench_signatures.py: medians of {RUNS} runs, one process, "
        f"python {sys.version.split()[0]}",
        f"votes verified, empty cache:        {n / m(cold):10.0f} /s  "
        f"({m(cold) / n * 1e6:.1f} us each)",
        f"same votes again (cache hits):      {n / m(warm):10.0f} /s  "
        f"({m(warm) / n * 1e6:.2f} us each)",
        f"QCs of 4 votes, votes not seen:     {len(qcs) / m(qc_cold):10.0f} /s",
        f"QCs of 4 votes, votes already seen: {len(qcs) / m(qc_seen):10.0f} /s",
        f"hit vs verify: {m(cold) / m(warm):.0f}x; seen QC vs unseen QC: "
        f"{m(qc_cold) / m(qc_seen):.0f}x",
    ]
    out = Path(__file__).resolve().parent.parent / "bench-results" / "signatures.txt"
    out.parent.mkdir(exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
