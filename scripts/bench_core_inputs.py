"""Micro-benchmark of the core-owning task's per-input machinery (issue 13): how long the
node's ``_core_loop`` takes per input when inputs are queued behind each other (a node
under load), with the core's own work made small (transactions whose signatures are
cached, re-submissions that need no journal write).

Usage: ``python scripts/bench_core_inputs.py [--out FILE]``; run it on two commits to
compare (``PYTHONPATH=<other worktree> python scripts/bench_core_inputs.py``), alternating.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import trio

from sequencer_node.core.ledger import verify_tx_signature
from sequencer_node.genesis import L2Genesis
from sequencer_node.shell import node_service
from sequencer_node.shell.node_service import Node, NodeSettings
from sequencer_node.sim.harness import CHAIN_ID, Simulation
from sequencer_node.wire.crypto import sign_message
from sequencer_node.wire.messages import Transaction

INPUTS = 2_000
RUNS = 5


class _NoGossip:
    """The peer manager's part the core task uses: gossip goes nowhere, no peers."""

    def broadcast(self, msg: object) -> None:
        pass

    def statistics(self) -> SimpleNamespace:
        return SimpleNamespace(connected=0, offenses={}, bans=0, handshake_failures=0)


def _genesis(sim: Simulation) -> L2Genesis:
    params = {k: int(v) for k, v in sim.config_kw.items() if k != "chain_id"}
    return L2Genesis.of_core(sim.genesis, int(sim.config_kw["chain_id"]), params)


def one_run(data_dir: Path) -> float:
    """Seconds per input for INPUTS queued single-transaction inputs."""
    sim = Simulation(1)
    node = Node(NodeSettings(data_dir, _genesis(sim), key=None, batcher=False, tick_s=3600.0,
                             core_overrides={"mempool_max_per_sender": INPUTS}))  # fmt: skip
    node.open()
    node.pm = _NoGossip()  # type: ignore[assignment]
    txs = []
    for user in range(len(sim.users)):
        key = sim.users[user]
        to = sim.users[(user + 1) % len(sim.users)].address
        for nonce in range(INPUTS // len(sim.users)):
            unsigned = Transaction(key.public_key, to, 1, nonce, 1, bytes(64))
            tx = sign_message(unsigned, key, CHAIN_ID)
            assert verify_tx_signature(tx, CHAIN_ID)  # cached: the core's check is a lookup
            txs.append(tx)
    reqs = [node_service._TxRequest((tx,), replayed=True) for tx in txs]
    elapsed = 0.0

    async def run() -> None:
        nonlocal elapsed
        for r in reqs:
            node._send.send_nowait(r)
        async with trio.open_nursery() as nursery:
            t0 = time.perf_counter()
            nursery.start_soon(node._core_loop, trio.Event())
            await reqs[-1].done.wait()
            elapsed = time.perf_counter() - t0
            nursery.cancel_scope.cancel()

    try:
        trio.run(run)
    finally:
        node.close()
    return elapsed / len(reqs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    times = []
    for _ in range(RUNS):
        with tempfile.TemporaryDirectory() as tmp:
            times.append(one_run(Path(tmp)))
    text = (f"{node_service.__file__}: core task, {INPUTS} queued single-transaction inputs: "
            f"median {statistics.median(times) * 1e6:.1f} us per input (runs: "
            + ", ".join(f"{t * 1e6:.1f}" for t in times) + ")")  # fmt: skip
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
