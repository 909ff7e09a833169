"""End checks of a fault run (Jepsen/CometBFT style), from the outside only.

* agreement: the same block hash at every height on every node;
* the set check: every transaction the RPC acknowledged is in the certified chain exactly once;
* L1: the derivation follower, reading only the L1, rebuilds the chain: its state root and
  last block hash equal the nodes' block at its height, and it covers every acknowledged
  transaction (so each one is in an L1 batch);
* memory: every process's peak RSS stays under a cap.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import trio

from sequencer_node.clients.l1 import L1Client, L1Error
from sequencer_node.derivation.deriver import DerivationError, DerivationGenesis, Deriver
from sequencer_node.genesis import load_genesis
from tests.faults.load import Ack, History
from tests.faults.network import FaultNet

FETCH_CONCURRENCY = 8


@dataclass
class Chain:
    """The certified blocks of one node, by height."""

    blocks: dict[int, dict[str, Any]] = field(default_factory=dict)

    @property
    def height(self) -> int:
        return max(self.blocks, default=0)

    def tx_heights(self) -> dict[bytes, list[int]]:
        out: dict[bytes, list[int]] = defaultdict(list)
        for h, b in self.blocks.items():
            for tx in b["transactions"]:
                out[bytes.fromhex(tx["hash"].removeprefix("0x"))].append(h)
        return out

    def throughput(self, start: float, end: float) -> tuple[float, float]:
        """(blocks/s, transactions/s) certified with timestamps in [start, end) (unix s)."""
        lo, hi = start * 1000, end * 1000
        inside = [b for b in self.blocks.values() if lo <= b["timestamp_ms"] < hi]
        dt = max(end - start, 1e-9)
        return len(inside) / dt, sum(b["tx_count"] for b in inside) / dt


async def fetch_chain(net: FaultNet, i: int, upto: int, into: Chain | None = None) -> Chain:
    """Blocks 1..upto of node ``i`` (those already in ``into`` are not fetched again)."""
    chain = into or Chain()
    todo = [h for h in range(1, upto + 1) if h not in chain.blocks]
    limiter = trio.Semaphore(FETCH_CONCURRENCY)

    async def one(h: int) -> None:
        async with limiter:
            b = await net.block(i, h)
        if b is not None:
            chain.blocks[h] = b

    async with trio.open_nursery() as nursery:
        for h in todo:
            nursery.start_soon(one, h)
    return chain


def forks(chains: list[Chain]) -> list[str]:
    """Heights where two nodes hold different blocks (or a node misses one below its head)."""
    out = []
    top = min(c.height for c in chains)
    for h in range(1, top + 1):
        hashes = {c.blocks[h]["hash"] if h in c.blocks else "missing" for c in chains}
        if len(hashes) > 1:
            out.append(f"height {h}: {sorted(hashes)}")
    return out


@dataclass
class SetCheck:
    acked: int
    lost: list[str]
    duplicated: list[str]
    maybe_included: int
    #: The first lost transaction of each account (the later ones wait behind its nonce).
    roots: list[Ack] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.lost and not self.duplicated


def set_check(history: History, chain: Chain, acked_before: float | None = None) -> SetCheck:
    """Acknowledgements (those answered before ``acked_before``, unix s) against ``chain``."""
    where = chain.tx_heights()
    acked = {h: a for h, a in history.acked.items() if acked_before is None or a.at < acked_before}
    lost = [h.hex() for h in acked if h not in where]
    dup = [f"{h.hex()} at {hs}" for h, hs in where.items() if len(hs) > 1]
    maybe = sum(1 for h in history.maybe if h in where)
    first: dict[int, Ack] = {}
    for h, ack in acked.items():
        if h not in where and (ack.account not in first or ack.nonce < first[ack.account].nonce):
            first[ack.account] = ack
    roots = sorted(first.values(), key=lambda a: a.at)
    return SetCheck(len(acked), lost, dup, maybe, roots)


async def wait_all_certified(
    net: FaultNet, history: History, chain: Chain, node: int, limit_s: float
) -> SetCheck:
    """Fetch ``node``'s chain until every transaction acknowledged before this call is in it
    (or time is up). The ``limit_s`` counts from the end of the first fetch: fetching a long
    chain the first time can outlast it, and the transactions acknowledged in the last second
    are in blocks above the height read at the start. (A soak's check after six whole-network
    restarts fetched 1,870 blocks for longer than its 20 s, never read the head again, and
    reported 11 accounts' transactions lost that every node had certified: seed 1757611582.)"""
    now = time.time()
    end: float | None = None
    while True:
        hs = await net.heights()
        top = hs[node] or chain.height
        await fetch_chain(net, node, top, chain)
        if end is None:
            end = trio.current_time() + limit_s
        result = set_check(history, chain, acked_before=now)
        if not result.lost or trio.current_time() > end:
            return result
        await trio.sleep(1.0)


@dataclass
class Derived:
    height: int = 0
    batches: int = 0
    error: str | None = None
    mismatch: str | None = None


async def derive(net: FaultNet, node: int, want_height: int, limit_s: float) -> Derived:
    """Run the derivation follower on the real L1 until it reaches ``want_height``, then
    compare what it rebuilt with node ``node``'s block at the follower's height."""
    genesis = DerivationGenesis.from_l2(load_genesis(net.cfg.l2_genesis))
    out = Derived()
    end = time.monotonic() + limit_s
    async with L1Client(net.cfg.l1_url) as l1:
        # the follower keeps its state on disk, so a later check resumes where this one ended
        follower = Deriver(l1, genesis, data_dir=net.root / "follower")
        while follower.height < want_height and time.monotonic() < end:
            try:
                got = await follower.derive_available()
            except DerivationError as e:
                out.error = str(e)
                break
            except L1Error as e:
                out.error = f"L1 error: {e}"
                got = []
            out.batches += len(got)
            if not got:
                await trio.sleep(1.0)
    out.height = follower.height
    if out.height:
        out.mismatch = await _compare(net, node, follower)
    return out


async def _compare(net: FaultNet, node: int, follower: Deriver) -> str | None:
    h = follower.height
    b = None
    end = time.monotonic() + 20
    while b is None and time.monotonic() < end:  # the node may still be catching up
        b = await net.block(node, h)
        if b is None:
            await trio.sleep(0.5)
    if b is None:
        return f"node-{node} has no block at the follower's height {h}"
    if b["hash"] != "0x" + follower.last_block_hash.hex():
        return f"block hash at {h} differs from the follower's"
    if b["state_root"] != "0x" + follower.state_root().hex():
        return f"state root at {h} differs from the follower's"
    return None


def memory_problems(net: FaultNet, node_cap_mb: int, l1_cap_mb: int) -> list[str]:
    net.sample_memory()
    out = [
        f"node-{n.index} peaked at {n.peak_rss_kb // 1024} MB (cap {node_cap_mb} MB)"
        for n in net.nodes
        if n.peak_rss_kb > node_cap_mb * 1024
    ]
    out += [  # the same cap per process: a node's batch worker is a process of its own
        f"node-{n.index}'s batch worker peaked at {n.worker_peak_rss_kb // 1024} MB (cap "
        f"{node_cap_mb} MB)"
        for n in net.nodes
        if n.worker_peak_rss_kb > node_cap_mb * 1024
    ]
    if net.l1_peak_rss_kb > l1_cap_mb * 1024:
        out.append(f"the L1 peaked at {net.l1_peak_rss_kb // 1024} MB (cap {l1_cap_mb} MB)")
    return out


def acked_heights(history: History, chain: Chain) -> Counter[int]:
    where = chain.tx_heights()
    return Counter(where[h][0] for h in history.acked if h in where)
