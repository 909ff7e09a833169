"""Micro-benchmark of the state root's per-block work (``ledger._with_changes``: the touched
shards and buckets copied and re-hashed), issue 13.

For a ledger of N accounts and a block touching k of them, the median time of one
``_with_changes`` (what ``apply_block``/``build_block`` pay per block on top of execution).
Run it on two commits to compare (``PYTHONPATH=<other worktree> python scripts/...``),
alternating: the machine's load drifts. Usage:
``python scripts/bench_state_root.py [--out FILE]`` (prints a table, also written to FILE).
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import time
from pathlib import Path

from sequencer_node.core.ledger import Account, Ledger, _with_changes

SIZES = ((2_000, 20), (2_000, 150), (2_000, 300), (20_000, 150))
RUNS = 7
REPEAT = 50


def _address(i: int) -> bytes:
    return hashlib.sha256(b"bench-state-root/%d" % i).digest()[:20]


def measure(accounts: int, touched: int) -> tuple[float, str]:
    """Median us per ``_with_changes`` of ``touched`` accounts in a ledger of ``accounts``,
    and the root after it (the same on every commit: the root must not change)."""
    led = Ledger.genesis({_address(i): 10**18 for i in range(accounts)})
    step = max(1, accounts // touched)
    changes = {_address(i): Account(10**18 - 1, 1) for i in range(0, step * touched, step)}
    shards = led._shards
    times = []
    for _ in range(RUNS):
        t0 = time.perf_counter()
        for _ in range(REPEAT):
            _with_changes(shards, changes)
        times.append((time.perf_counter() - t0) / REPEAT)
    new, delta = _with_changes(shards, changes)
    root = Ledger(new, 0, led.account_count() + delta).state_root().hex()
    return statistics.median(times) * 1e6, root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    lines = ["| accounts | touched per block | us per block | us per touched account | root |",
             "|---|---|---|---|---|"]  # fmt: skip
    for accounts, touched in SIZES:
        us, root = measure(accounts, touched)
        lines.append(f"| {accounts:,} | {touched} | {us:,.0f} | {us / touched:.1f} | "
                     f"{root[:16]} |")  # fmt: skip
    text = "\n".join(lines)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
