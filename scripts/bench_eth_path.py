"""Micro-benchmark of an Ethereum transaction's path through one node (issue 13): each step's
cost per transaction, and counts of the expensive operations (keccak, sender recovery) one
node does per transaction.

Steps (microseconds of CPU per transaction, median of ``--repeats``):

* the library steps a decoder is made of: ``rlp.decode`` of the envelope, the re-encoded
  signing payload's keccak, ``keccak(raw)``, eth-keys' sender recovery and coincurve's (the
  floor: libsecp256k1 itself);
* the tree's own steps: the JSON-RPC body parse (one batch of 100 requests), a hex
  parameter, ``decode_eth`` (cold: decoded and recovered; warm: the cache), ``eth_tx_hash``,
  the pool admission, the gossip encoding and decoding of an ``EthTransaction``, the block
  execution (``Ledger.apply_block``), and the whole JSON-RPC batch handler (parse, decode,
  hand-over to a node that accepts at once, answers) under Trio.

Counts: one node's keccak calls and recoveries per transaction when it takes a transaction
from the RPC, pools it, gossips and executes it, and serves a block's hashes.

Usage: ``python scripts/bench_eth_path.py [--out FILE]``; ``--base TREE --rounds N`` runs it
N times on each tree, alternating (``PYTHONPATH=TREE`` for the base), and prints the medians
side by side: on a shared machine one run against another differs by up to 1.5x.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from unittest import mock

import coincurve
import rlp  # type: ignore[import-untyped]
import trio
from eth_hash.auto import keccak
from eth_keys.datatypes import PrivateKey, Signature

from sequencer_node.core import api
from sequencer_node.core.ledger import Ledger
from sequencer_node.core.mempool import Mempool
from sequencer_node.shell import eth_rpc
from sequencer_node.wire import eth as weth
from sequencer_node.wire.codec import decode, encode
from sequencer_node.wire.eth import EthTransaction, decode_eth, eth_tx_hash, sign_dynamic_fee

CHAIN_ID = 901
ACCOUNTS = 16
PER_ACCOUNT = 125  # 2,000 transactions
BATCH = 100


def _keys() -> list[bytes]:
    return [hashlib.sha256(b"bench-eth/%d" % i).digest() for i in range(ACCOUNTS)]


def _sign_all() -> tuple[list[bytes], dict[bytes, int]]:
    raws, balances = [], {}
    for key in _keys():
        sender = bytes(PrivateKey(key).public_key.to_canonical_address())
        balances[sender] = 10**24
        for nonce in range(PER_ACCOUNT):
            raws.append(sign_dynamic_fee(
                key, chain_id=CHAIN_ID, nonce=nonce, to=b"\x11" * 20, value=1,
                max_priority_fee_per_gas=1, max_fee_per_gas=2,
            ))  # fmt: skip
    # account-major order within a batch would be unusual: interleave like a load generator
    order = sorted(range(len(raws)), key=lambda i: (i % PER_ACCOUNT, i // PER_ACCOUNT))
    return [raws[i] for i in order], balances


def _per_tx(
    fn: Callable[[], object], n: int, repeats: int, setup: Callable[[], object] | None = None
) -> float:
    """Median microseconds of CPU per transaction of ``fn`` (which handles ``n``
    transactions): process CPU time, not wall time, so that waiting for a core on a shared
    machine does not count."""
    times = []
    for _ in range(repeats):
        if setup is not None:
            setup()
        t0 = time.process_time()
        fn()
        times.append((time.process_time() - t0) / n * 1e6)
    return statistics.median(times)


def _clear_cache() -> None:
    weth._CACHE.clear()


class _AcceptingNode:
    """The part of a node the JSON-RPC handler calls: every transaction accepted at once;
    counts the inputs it was handed, and the transactions a sender sent after a nonce of its
    that was not handed over yet (out of order)."""

    def __init__(self) -> None:
        self.inputs = 0
        self.out_of_order = 0
        self._next: dict[bytes, int] = {}

    def ingress_room(self) -> int:
        return 1 << 30

    def _take(self, txs: Sequence[Any]) -> list[api.TxResult]:
        self.inputs += 1
        for t in txs:
            e = decode_eth(t.raw)
            if e.nonce != self._next.get(e.sender, 0):
                self.out_of_order += 1
            self._next[e.sender] = max(self._next.get(e.sender, 0), e.nonce + 1)
        return [api.TxResult(eth_tx_hash(t), True, None, "accepted") for t in txs]

    async def submit_tx(self, tx: EthTransaction) -> api.TxResult:
        return self._take([tx])[0]

    async def submit_txs(self, txs: Sequence[Any]) -> list[api.TxResult]:
        return self._take(txs)


def _bodies(raws: list[bytes]) -> list[bytes]:
    out = []
    for i in range(0, len(raws), BATCH):
        reqs = [
            {
                "jsonrpc": "2.0",
                "id": j,
                "method": "eth_sendRawTransaction",
                "params": ["0x" + r.hex()],
            }
            for j, r in enumerate(raws[i : i + BATCH])
        ]
        out.append(json.dumps(reqs).encode())
    return out


def library_steps(raws: list[bytes], repeats: int) -> dict[str, float]:
    n = len(raws)
    items = [rlp.decode(r[1:], strict=True) for r in raws]
    hashes = [bytes(keccak(b"\x02" + rlp.encode(it[:9]))) for it in items]
    sigs = [(int.from_bytes(it[9], "big"), int.from_bytes(it[10], "big"),
             int.from_bytes(it[11], "big")) for it in items]  # fmt: skip
    compact = [r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v]) for v, r, s in sigs]

    def eth_keys_recover() -> None:
        for h, vrs in zip(hashes, sigs, strict=True):
            Signature(vrs=vrs).recover_public_key_from_msg_hash(h).to_canonical_address()

    def coincurve_recover() -> None:
        for h, c in zip(hashes, compact, strict=True):
            pub = coincurve.PublicKey.from_signature_and_message(c, h, hasher=None)
            keccak(pub.format(compressed=False)[1:])

    return {
        "rlp.decode (strict, no sedes)": _per_tx(
            lambda: [rlp.decode(r[1:], strict=True) for r in raws], n, repeats),
        "rlp.encode of the 9 signed fields + keccak": _per_tx(
            lambda: [keccak(b"\x02" + rlp.encode(it[:9])) for it in items], n, repeats),
        "keccak(raw) (the tx hash)": _per_tx(lambda: [keccak(r) for r in raws], n, repeats),
        "recovery, eth-keys (coincurve backend)": _per_tx(eth_keys_recover, n, repeats),
        "recovery, coincurve directly": _per_tx(coincurve_recover, n, repeats),
    }  # fmt: skip


def tree_steps(raws: list[bytes], balances: dict[bytes, int], repeats: int) -> dict[str, float]:
    n = len(raws)
    bodies = _bodies(raws)
    hexes = ["0x" + r.hex() for r in raws]
    msgs = [EthTransaction(r) for r in raws]
    frames = [encode(m) for m in msgs]
    ledger = Ledger.genesis(balances)
    [decode_eth(r) for r in raws]  # warm

    def pool_add() -> None:
        pool = Mempool(chain_id=CHAIN_ID, max_txs=10**6, max_per_sender=10**6, max_nonce_gap=10**6)
        for m in msgs:
            assert pool.add(m, ledger).accepted

    def execute() -> None:
        ledger.apply_block((), (), proposer=b"\x00" * 32, chain_id=CHAIN_ID, eth_txs=msgs)

    rpc = eth_rpc.EthRpc(_AcceptingNode())  # type: ignore[arg-type]

    def rpc_batches() -> None:
        async def run() -> None:
            for b in bodies:
                answer = await rpc.handle_body(b)
                assert len(answer) == BATCH, answer
                assert "result" in answer[0], answer[0]
                json.dumps(answer)

        trio.run(run)

    out = {
        "JSON-RPC body parse (batch of 100)": _per_tx(
            lambda: [json.loads(b) for b in bodies], n, repeats),
        "hex parameter (eth_rpc.parse_data)": _per_tx(
            lambda: [eth_rpc.parse_data(h, "transaction") for h in hexes], n, repeats),
        "decode_eth, cold (decode + recovery)": _per_tx(
            lambda: [decode_eth(r) for r in raws], n, repeats, _clear_cache),
        "decode_eth, warm (cache hit)": _per_tx(lambda: [decode_eth(r) for r in raws], n, repeats),
        "eth_tx_hash": _per_tx(lambda: [eth_tx_hash(m) for m in msgs], n, repeats),
        "EthTransaction(raw)": _per_tx(lambda: [EthTransaction(r) for r in raws], n, repeats),
        "pool admission (Mempool.add, decoded)": _per_tx(pool_add, n, repeats),
        "gossip encode (codec.encode + sha256 seen-id)": _per_tx(
            lambda: [hashlib.sha256(encode(m)).digest() for m in msgs], n, repeats),
        "gossip decode (codec.decode)": _per_tx(
            lambda: [decode(f, EthTransaction) for f in frames], n, repeats),
        "execution (apply_block, decoded)": _per_tx(execute, n, repeats),
        "JSON-RPC batch handler, cold cache (parse..answer)": _per_tx(
            rpc_batches, n, repeats, _clear_cache),
    }  # fmt: skip
    return out


def counts(raws: list[bytes], balances: dict[bytes, int]) -> dict[str, float]:
    """keccak calls and recoveries one node makes per transaction: RPC batch, pool, gossip
    check of its own echo, execution, a block's hashes for its clients."""
    calls = {"keccak": 0, "recover": 0}
    real_recover = weth._recover

    def counting_keccak(data: bytes) -> bytes:
        calls["keccak"] += 1
        return keccak(data)

    def counting_recover(*a: Any) -> bytes:
        calls["recover"] += 1
        return real_recover(*a)

    node = _AcceptingNode()
    with (
        mock.patch.object(weth, "keccak", counting_keccak),
        mock.patch.object(weth, "_recover", counting_recover),
    ):
        _clear_cache()
        rpc = eth_rpc.EthRpc(node)  # type: ignore[arg-type]

        async def run() -> None:
            for b in _bodies(raws):
                await rpc.handle_body(b)

        trio.run(run)
        msgs = [EthTransaction(r) for r in raws]
        pool = Mempool(chain_id=CHAIN_ID, max_txs=10**6, max_per_sender=10**6, max_nonce_gap=10**6)
        ledger = Ledger.genesis(balances)
        for m in msgs:
            pool.add(m, ledger)
            weth.decode_checked(decode(encode(m), EthTransaction), CHAIN_ID)  # a peer's copy
        ledger.apply_block((), (), proposer=b"\x00" * 32, chain_id=CHAIN_ID, eth_txs=msgs)
        for m in msgs:
            eth_tx_hash(m)  # the node's block -> hashes index
    calls["inputs"], calls["out_of_order"] = node.inputs, node.out_of_order
    return {k: v / len(raws) for k, v in calls.items()}


def measure(repeats: int) -> dict[str, float]:
    raws, balances = _sign_all()
    out = {**library_steps(raws, repeats), **tree_steps(raws, balances, repeats)}
    c = counts(raws, balances)
    out["keccak calls per tx, one node (count)"] = c["keccak"]
    out["sender recoveries per tx, one node (count)"] = c["recover"]
    out["node inputs per tx, JSON-RPC batches of 100 (count)"] = c["inputs"]
    out["handed over after a later nonce, per tx (count)"] = c["out_of_order"]
    return out


YARDSTICK = "recovery, coincurve directly"


def _run_tree(tree: str | None, repeats: int) -> dict[str, float]:
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = tree
    cmd = [sys.executable, __file__, "--json", "--repeats", str(repeats)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def compare(base: str, rounds: int, repeats: int) -> str:
    runs: dict[str, list[dict[str, float]]] = {"base": [], "this": []}
    for _ in range(rounds):
        runs["base"].append(_run_tree(base, repeats))
        runs["this"].append(_run_tree(None, repeats))
    lines = [f"base {base} vs this tree ({Path(__file__).resolve().parents[1]}): medians of "
             f"{rounds} alternated runs of {repeats} repeats; us per transaction, and in units "
             f"of one libsecp256k1 recovery measured in the same run ({YARDSTICK!r}: the "
             f"machine's load moves both alike)",
             f"  {'step':<52} {'base us':>8} {'this us':>8} {'base/r':>7} "
             f"{'this/r':>7}"]  # fmt: skip
    for name in runs["this"][0]:
        us, per = [], []
        for k in ("base", "this"):
            rs = [r for r in runs[k] if name in r]
            us.append(statistics.median(r[name] for r in rs))
            per.append(statistics.median(r[name] / r[YARDSTICK] for r in rs))
        if "(count)" in name:
            lines.append(f"  {name:<52} {us[0]:8.2f} {us[1]:8.2f}")
        else:
            lines.append(f"  {name:<52} {us[0]:8.2f} {us[1]:8.2f} {per[0]:7.2f} {per[1]:7.2f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--base", help="another tree to compare with (its root directory)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.json:
        print(json.dumps(measure(args.repeats)))
        return
    if args.base is not None:
        text = compare(args.base, args.rounds, args.repeats)
    else:
        lines = [f"{weth.__file__}: {ACCOUNTS * PER_ACCOUNT} EIP-1559 transfers, {ACCOUNTS} "
                 f"senders, medians of {args.repeats}, us per transaction"]  # fmt: skip
        lines += [f"  {name:<52} {us:8.2f}" for name, us in measure(args.repeats).items()]
        text = "\n".join(lines)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
