"""Benchmark L2 execution: apply_block throughput and the cost of the state root.

Measures, as medians over a few runs on one core:

* ``apply_block`` txs/s for a block of transfers among 10k accounts, (a) without signature
  checks (the caller vouches, e.g. the mempool verified them), (b) with ``chain_id`` and a cold
  signature cache (a follower re-verifying everything), (c) with a warm cache (a validator
  whose mempool already verified the block's transactions);
* the state root: building it from scratch (genesis) for 1k/10k/100k accounts, the
  incremental cost inside a block touching ~2k accounts, and for comparison a flat
  ``sha256`` over all accounts sorted by address;
* mempool ``add`` (signature included) and ``select`` rates.

Writes ``bench-results/execution.txt``. Usage: ``python scripts/bench_execution.py``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from sequencer_node.core.ledger import Account, Ledger, _with_changes
from sequencer_node.core.mempool import Mempool
from sequencer_node.wire.crypto import SIGNATURE_CACHE, SigningKey, sign_message
from sequencer_node.wire.messages import Transaction

RUNS = 5
CHAIN_ID = 901


def median_s(fn: Callable[[], object], runs: int = RUNS) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def addresses(n: int) -> list[bytes]:
    return [hashlib.sha256(i.to_bytes(8, "big")).digest()[:20] for i in range(n)]


def _tree_update(led: Ledger, changes: dict[bytes, Account]) -> Ledger:
    shards, delta = _with_changes(led._shards, changes)
    return Ledger(shards, led.forced_index(), led.account_count() + delta)


def flat_root(ledger: Ledger) -> bytes:
    h = hashlib.sha256()
    for addr, acct in ledger.accounts():
        h.update(addr + acct.balance.to_bytes(16, "big") + acct.nonce.to_bytes(8, "big"))
    return h.digest()


def main() -> None:
    lines = [
        "# L2 execution (scripts/bench_execution.py)",
        f"# python {sys.version.split()[0]}; one core; medians of {RUNS} runs",
        "",
    ]

    def out(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    # --- apply_block --------------------------------------------------------------------
    n_senders, block_txs = 1000, 2000
    keys = [SigningKey.deterministic(f"bench-{i}") for i in range(n_senders)]
    others = addresses(10_000 - n_senders)
    proposer = SigningKey.deterministic("bench-proposer").public_key
    balances = {k.address: 10**15 for k in keys} | {a: 10**9 for a in others}
    base = Ledger.genesis(balances)
    txs = []
    for i in range(block_txs):
        k = keys[i % n_senders]
        tx = Transaction(
            k.public_key, others[(i * 7919) % len(others)], 5, i // n_senders, 3, bytes(64)
        )
        txs.append(sign_message(tx, k, CHAIN_ID))

    out(f"apply_block, {block_txs} transfers from {n_senders} senders, 10k accounts:")
    t = median_s(lambda: base.apply_block(txs, [], proposer=proposer))
    out(f"  no signature checks      {block_txs / t:>10,.0f} tx/s  ({t * 1000:.1f} ms/block)")

    # Fresh objects per run, copied before the clock starts: a transaction object remembers
    # that its signature was good.
    fresh_runs = iter([[dataclasses.replace(tx) for tx in txs] for _ in range(3)])

    def cold() -> None:
        SIGNATURE_CACHE.clear()
        base.apply_block(next(fresh_runs), [], proposer=proposer, chain_id=CHAIN_ID)

    t = median_s(cold, runs=3)
    out(f"  verify, cold cache       {block_txs / t:>10,.0f} tx/s  ({t * 1000:.1f} ms/block)")
    t = median_s(lambda: base.apply_block(txs, [], proposer=proposer, chain_id=CHAIN_ID))
    out(f"  verify, warm cache       {block_txs / t:>10,.0f} tx/s  ({t * 1000:.1f} ms/block)")

    # --- state root ---------------------------------------------------------------------
    out("")
    out("state root (account tree: 256 shards x 256 buckets, copy-on-write):")
    out(
        f"  {'accounts':>8} {'genesis build':>14} {'flat sha256':>12} "
        f"{'block of 2k tx':>15} {'tree update':>12}"
    )
    for n in (1_000, 10_000, 100_000):
        addrs = addresses(n)
        bal = {a: 10**9 for a in addrs} | {k.address: 10**15 for k in keys}
        runs = 3 if n == 100_000 else RUNS
        t_gen = median_s(partial(Ledger.genesis, bal), runs=runs)
        led = Ledger.genesis(bal)
        t_flat = median_s(partial(flat_root, led), runs=runs)
        block = [
            sign_message(
                Transaction(k.public_key, addrs[(i * 7919) % n], 5, i // n_senders, 3, bytes(64)),
                k,
                CHAIN_ID,
            )
            for i, k in ((i, keys[i % n_senders]) for i in range(block_txs))
        ]
        t_blk = median_s(partial(led.apply_block, block, [], proposer=proposer))
        # the tree update alone, for the accounts such a block touches
        nxt, _ = led.apply_block(block, [], proposer=proposer)
        touched = {k.address for k in keys} | {tx.to for tx in block}
        changes = {a: Account(nxt.balance(a), nxt.nonce(a)) for a in touched}
        t_tree = median_s(partial(_tree_update, led, changes))
        out(
            f"  {n:>8,} {t_gen * 1000:>11.1f} ms {t_flat * 1000:>9.1f} ms "
            f"{t_blk * 1000:>12.1f} ms {t_tree * 1000:>11.1f} ms"
        )

    # --- mempool ------------------------------------------------------------------------
    out("")
    mp = Mempool(chain_id=CHAIN_ID, max_txs=100_000, max_per_sender=64, max_nonce_gap=64)
    SIGNATURE_CACHE.clear()
    fresh = [dataclasses.replace(tx) for tx in txs]  # objects never checked
    t0 = time.perf_counter()
    for tx in fresh:
        assert mp.add(tx, base).accepted
    t_add = time.perf_counter() - t0
    t_sel = median_s(lambda: mp.select(base, block_txs))
    out(f"mempool add (with signature check): {block_txs / t_add:,.0f} tx/s")
    out(f"mempool select {block_txs} of {len(mp)} pooled: {t_sel * 1000:.1f} ms")

    path = Path("bench-results/execution.txt")
    path.parent.mkdir(exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
