"""Benchmark a node restart: full replay of the stored chain vs. snapshot + suffix.

Builds one synthetic chain of valid certified blocks directly (a single validator signs every
proposal and vote; every block carries ``--txs`` signed transfers among ``--accounts``
funded accounts, executed by :class:`~sequencer_node.core.ledger.Ledger`), and writes it into
node stores of 1k, 10k and 100k blocks. Each store holds the snapshot the node would have
written ``--suffix`` blocks below its head (the node writes one every 1,000 heights, so 500 is
the average suffix). A restart is :meth:`Node.open` on that data directory (lock, read the
watermark, the snapshot and the blocks, rebuild the core, re-index transactions), timed in a
fresh process (cold signature cache) for both ways:

* ``full``: the snapshots table emptied, so every block is re-executed from genesis;
* ``snapshot``: the node's own path, the newest snapshot + the blocks above it.

The blocks carry no epoch proofs (issue 11 reconfiguration): a replay trusts its own stored
chain and checks none, so they change nothing measured here. Medians of ``--runs`` (3). Both
ways must end at the same head and state root. Writes
``bench-results/restart.json`` and prints a markdown table. Usage:
``python scripts/bench_restart.py [--sizes 1000,10000,100000]``.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sequencer_node.core import api
from sequencer_node.core.ledger import Ledger, tx_root
from sequencer_node.genesis import L2Genesis
from sequencer_node.shell.node_service import FOLLOWER_IDENTITY, Node, NodeSettings
from sequencer_node.shell.store import DB_FILENAME, Store
from sequencer_node.wire.crypto import SigningKey, sign_message
from sequencer_node.wire.messages import (
    Block,
    BlockHeader,
    CertifiedBlock,
    Endorsement,
    Proposal,
    QuorumCertificate,
    Transaction,
    Vote,
    block_hash,
)

CHAIN_ID = 4242
VALIDATOR = SigningKey.deterministic("bench-restart-validator")
EPOCH_LENGTH = 1_000
BLOCK_MS = 100


def genesis(accounts: int) -> tuple[L2Genesis, list[SigningKey]]:
    users = [SigningKey.deterministic(f"bench-restart-user-{i}") for i in range(accounts)]
    g = L2Genesis(
        chain_id=CHAIN_ID,
        l1_chain_id=1,
        validators=((VALIDATOR.public_key, 10**22),),
        balances=tuple((u.address, 10**18) for u in users),
        params={"epoch_length": EPOCH_LENGTH},
    )
    return g, users


class ChainBuilder:
    """Certified blocks of one honest validator, one per round, with random transfers."""

    def __init__(self, g: L2Genesis, users: list[SigningKey], txs: int, seed: int = 1) -> None:
        self.users = users
        self.txs = txs
        self.rng = random.Random(seed)
        self.nonces = [0] * len(users)
        self.ledger = Ledger.genesis(dict(g.balances))
        head = BlockHeader(0, 0, 0, bytes(32), 0, bytes(32), bytes(32),
                           self.ledger.state_root(), 0, 0)  # fmt: skip
        self.parent = block_hash(head)
        self.justify: QuorumCertificate | None = None
        self.height = 0
        self.anchors: dict[int, BlockHeader] = {}

    def _transfers(self) -> list[Transaction]:
        out = []
        for i in self.rng.sample(range(len(self.users)), self.txs):
            to = self.users[self.rng.randrange(len(self.users))].address
            tx = Transaction(self.users[i].public_key, to, 1 + self.rng.randrange(1000),
                             self.nonces[i], 1, bytes(64))  # fmt: skip
            out.append(sign_message(tx, self.users[i], CHAIN_ID))
            self.nonces[i] += 1
        return out

    def next(self) -> CertifiedBlock:
        h = self.height + 1
        epoch = (h - 1) // EPOCH_LENGTH
        txs = self._transfers()
        ledger, _ = self.ledger.apply_block(txs, [], proposer=VALIDATOR.public_key)
        header = BlockHeader(h, h, epoch, self.parent, h * BLOCK_MS, VALIDATOR.public_key,
                             tx_root(txs, []), ledger.state_root(), 0, 0)  # fmt: skip
        proposal = sign_message(Proposal(header, bytes(64)), VALIDATOR, CHAIN_ID)
        block = Block(proposal, tuple(txs), (), self.justify, None)
        bh = block_hash(header)
        vote = sign_message(Vote(bh, h, h, epoch, VALIDATOR.public_key, bytes(64)),
                            VALIDATOR, CHAIN_ID)  # fmt: skip
        endorsement = Endorsement(VALIDATOR.public_key, vote.signature)
        qc = QuorumCertificate(bh, h, h, epoch, (endorsement,))
        if h == epoch * EPOCH_LENGTH + 1:
            self.anchors[epoch] = header
        self.ledger, self.parent, self.justify, self.height = ledger, bh, qc, h
        return CertifiedBlock(block, qc)

    def snapshot(self, head: CertifiedBlock) -> api.ChainSnapshot:
        epoch = (self.height - 1) // EPOCH_LENGTH
        anchors = tuple(self.anchors[e] for e in sorted(self.anchors)
                        if e > epoch - api.MAX_SNAPSHOT_ANCHORS)  # fmt: skip
        return api.ChainSnapshot(head, anchors, self.ledger)


def build(work: Path, sizes: list[int], accounts: int, txs: int, suffix: int) -> dict[int, Path]:
    """Data directories with ``size`` blocks each, and the snapshot ``suffix`` below the top."""
    g, users = genesis(accounts)
    chain = ChainBuilder(g, users, txs)
    live = work / "live"
    store = Store.open(live, chain_id=CHAIN_ID, identity=FOLLOWER_IDENTITY)
    dirs: dict[int, Path] = {}
    pending: list[CertifiedBlock] = []
    t0 = time.perf_counter()
    for size in sorted(sizes):
        while chain.height < size:
            cb = chain.next()
            pending.append(cb)
            snap = chain.snapshot(cb) if chain.height == size - suffix else None
            if snap is not None or len(pending) >= 500 or chain.height == size:
                blob = None if snap is None else (snap.height, snap.to_bytes())
                store.put_blocks(pending, (), blob)
                pending = []
        dirs[size] = work / f"n{size}"
        dirs[size].mkdir(mode=0o700)
        src, dst = sqlite3.connect(live / DB_FILENAME), sqlite3.connect(dirs[size] / DB_FILENAME)
        src.backup(dst)
        src.close()
        dst.close()
        print(f"  built {size} blocks ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    store.close()
    return dirs


def measure_once(data_dir: Path, accounts: int) -> dict[str, Any]:
    """One restart in this (fresh) process: Node.open() on ``data_dir``."""
    g, _ = genesis(accounts)
    node = Node(NodeSettings(data_dir, g, key=None))
    t0, c0 = time.perf_counter(), time.process_time()
    node.open()
    took, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert node.core is not None
    st = node.core.status()
    node.close()
    return {"seconds": took, "cpu": cpu, "height": st.committed_height, "root": st.state_root.hex(),
            "replayed": st.committed_height - node._snapshot_floor}  # fmt: skip


def measure(data_dir: Path, accounts: int, runs: int) -> dict[str, Any]:
    results = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, __file__, "--measure", str(data_dir), "--accounts", str(accounts)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert len({(r["height"], r["root"]) for r in results}) == 1
    return {**results[0], "seconds": statistics.median(float(r["seconds"]) for r in results),
            "cpu": statistics.median(float(r["cpu"]) for r in results),
            "runs": [round(float(r["seconds"]), 3) for r in results]}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1000,10000,100000")
    p.add_argument("--accounts", type=int, default=10_000)
    p.add_argument("--txs", type=int, default=2, help="signed transfers per block")
    p.add_argument("--suffix", type=int, default=500)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument(
        "--large",
        type=int,
        default=50_000,
        help="above this many blocks the full replay runs --large-runs times",
    )
    p.add_argument(
        "--large-runs",
        type=int,
        default=1,
        help="full replays of a large store (each takes minutes)",
    )
    p.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.measure is not None:
        print(json.dumps(measure_once(a.measure, a.accounts)))
        return
    sizes = [int(s) for s in a.sizes.split(",")]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-restart-") as tmp:
        dirs = build(Path(tmp), sizes, a.accounts, a.txs, a.suffix)
        for size in sizes:
            full_dir = Path(tmp) / f"full{size}"
            shutil.copytree(dirs[size], full_dir)
            with sqlite3.connect(full_dir / DB_FILENAME) as db:
                db.execute("DELETE FROM snapshots")
            full = measure(full_dir, a.accounts, a.runs if size <= a.large else a.large_runs)
            snap = measure(dirs[size], a.accounts, a.runs)
            assert (
                (full["height"], full["root"])
                == (snap["height"], snap["root"])
                == (size, full["root"])
            )
            assert snap["replayed"] == a.suffix
            assert full["replayed"] == size
            rows.append({"blocks": size, "full_replay_s": round(float(full["seconds"]), 3),
                         "snapshot_s": round(float(snap["seconds"]), 3),
                         "full_replay_cpu_s": round(float(full["cpu"]), 3),
                         "snapshot_cpu_s": round(float(snap["cpu"]), 3),
                         "full_runs": full["runs"], "snapshot_runs": snap["runs"]})  # fmt: skip
            print(f"  {size}: full {full['seconds']:.2f} s, snapshot {snap['seconds']:.2f} s",
                  file=sys.stderr)  # fmt: skip
    setup = {"accounts": a.accounts, "txs_per_block": a.txs, "suffix_blocks": a.suffix,
             "runs": a.runs, "large_full_runs": a.large_runs, "large": a.large,
             "epoch_length": EPOCH_LENGTH,
             "measured": "Node.open() in a fresh process, median"}  # fmt: skip
    out = Path(__file__).resolve().parent.parent / "bench-results" / "restart.json"
    out.write_text(json.dumps({"setup": setup, "results": rows}, indent=2) + "\n")
    print(f"Restart (Node.open), {a.accounts} accounts, {a.txs} signed transfers per block, "
          f"snapshot {a.suffix} blocks below the head; wall (CPU) seconds, median of "
          f"{a.runs} (full replay above {a.large} blocks: {a.large_runs} run):\n")  # fmt: skip
    print("| blocks | full replay | snapshot + suffix | speed-up (CPU) |")
    print("|---:|---:|---:|---:|")
    for r in rows:
        f, s = float(str(r["full_replay_s"])), float(str(r["snapshot_s"]))
        fc, sc = float(str(r["full_replay_cpu_s"])), float(str(r["snapshot_cpu_s"]))
        print(f"| {r['blocks']:,} | {f:.2f} s ({fc:.2f}) | {s:.2f} s ({sc:.2f}) | {fc / sc:.0f}x |")


if __name__ == "__main__":
    main()
