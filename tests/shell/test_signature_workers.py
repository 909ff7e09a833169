"""Transfer signatures checked in worker threads, off the event loop (issue 13): the warm-up
decides nothing (the checks that decide find the good signatures remembered), stops at a bad
signature, leaves small batches inline, and is bounded by its thread limit."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import pytest
import trio

from sequencer_node.core import ledger
from sequencer_node.shell import signature_workers
from sequencer_node.shell.node_service import Node, NodeSettings, _TxRequest
from sequencer_node.shell.p2p_messages import TxBatch
from sequencer_node.shell.scoring import Offense
from sequencer_node.shell.signature_workers import SignatureWorkers
from sequencer_node.sim.harness import CHAIN_ID, Simulation
from sequencer_node.wire import eth
from sequencer_node.wire.codec import decode, encode
from sequencer_node.wire.messages import Transaction
from tests.eth.helpers import type2
from tests.shell.test_compact import _block
from tests.shell.test_ingress import Mesh, _behind, _txs
from tests.shell.test_store_snapshots import _genesis


def _fresh(txs: list[Transaction]) -> list[Transaction]:
    """Copies as a peer's frame gives them: decoded objects that remember nothing."""
    return [decode(encode(tx)) for tx in txs]


def _forged(tx: Transaction) -> Transaction:
    return dataclasses.replace(tx, amount=tx.amount + 1)


class _Spy:
    """Wraps the check the workers call: which threads ran it, and how many at once."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.threads: set[int] = set()
        self.calls = 0
        self.active = 0
        self.most_active = 0
        self._lock = threading.Lock()
        real = ledger.verify_tx_signature

        def spy(tx: Transaction, chain_id: int) -> bool:
            with self._lock:
                self.calls += 1
                self.active += 1
                self.most_active = max(self.most_active, self.active)
                self.threads.add(threading.get_ident())
            try:
                return real(tx, chain_id)
            finally:
                with self._lock:
                    self.active -= 1

        monkeypatch.setattr(signature_workers, "verify_tx_signature", spy)


async def test_a_batch_is_checked_in_a_worker_thread_and_remembered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sim = Simulation(1)
    txs = _fresh(_txs(sim, 0, 20))
    spy = _Spy(monkeypatch)
    workers = SignatureWorkers(CHAIN_ID, threads=2)
    await workers.warm(txs)
    assert spy.calls == 20
    assert threading.get_ident() not in spy.threads
    assert all(tx._good_for == CHAIN_ID for tx in txs)
    assert (workers.checked, workers.stopped_at_bad) == (20, 0)
    await workers.warm(txs)  # remembered: nothing to do
    assert spy.calls == 20


async def test_a_small_batch_is_left_to_the_inline_check(monkeypatch: pytest.MonkeyPatch) -> None:
    sim = Simulation(1)
    txs = _fresh(_txs(sim, 0, 7))
    spy = _Spy(monkeypatch)
    workers = SignatureWorkers(CHAIN_ID, min_batch=8)
    await workers.warm(txs)
    assert spy.calls == 0
    assert all(tx._good_for is None for tx in txs)
    # Unchecked ones count, not the batch's size: 8 with one already good is 7 to check.
    more = _fresh(_txs(sim, 0, 8))
    more[0] = txs[0]
    object.__setattr__(txs[0], "_good_for", CHAIN_ID)
    await workers.warm(more)
    assert spy.calls == 0


async def test_the_warm_up_stops_at_the_first_bad_signature(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The validate hook charges a peer per bad transfer and stops at a ban: a hostile batch
    # must not cost more checks in the workers than the lazy check would have spent.
    sim = Simulation(1)
    txs = _fresh(_txs(sim, 0, 21))
    txs[10] = _forged(txs[10])
    spy = _Spy(monkeypatch)
    workers = SignatureWorkers(CHAIN_ID)
    await workers.warm(txs)
    assert spy.calls == 11
    assert (workers.checked, workers.stopped_at_bad) == (11, 1)
    assert [tx._good_for == CHAIN_ID for tx in txs] == [True] * 10 + [False] * 11


async def test_a_long_batch_goes_in_chunks_and_at_most_threads_checks_run_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(signature_workers, "CHUNK", 5)
    sim = Simulation(1)
    batches = [_fresh(_txs(sim, u, 12)) for u in range(3)]
    spy = _Spy(monkeypatch)
    workers = SignatureWorkers(CHAIN_ID, threads=1)
    async with trio.open_nursery() as nursery:
        for batch in batches:
            nursery.start_soon(workers.warm, batch)
    assert spy.calls == 36
    assert spy.most_active == 1
    assert workers.checked == 36


async def test_ethereum_senders_are_recovered_in_a_worker_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    threads: set[int] = set()
    real = eth.decode_eth

    def spy(raw: bytes) -> eth.EthTx:
        threads.add(threading.get_ident())
        return real(raw)

    monkeypatch.setattr(signature_workers, "decode_eth", spy)
    raws = [type2(nonce=70_000 + n) for n in range(12)]
    raws[9] = b"\x02\xc0"  # does not decode: the warm-up stops there
    workers = SignatureWorkers(CHAIN_ID)
    await workers.warm_eth(raws)
    assert threads
    assert threading.get_ident() not in threads
    assert [eth.is_decoded(r) for r in raws] == [True] * 9 + [False] * 3
    assert (workers.checked, workers.stopped_at_bad) == (10, 1)
    # The pool's decode is now a cache hit: the same object.
    assert eth.decode_eth(raws[0]) is eth.decode_eth(raws[0])


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        SignatureWorkers(CHAIN_ID, threads=0)
    with pytest.raises(ValueError, match="min_batch"):
        SignatureWorkers(CHAIN_ID, min_batch=0)
    assert SignatureWorkers(CHAIN_ID).threads >= 1


async def test_a_node_checks_a_peer_batch_before_its_validate_hook_and_charges_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = Simulation(1)
    node = Node(NodeSettings(tmp_path, _genesis(sim), key=None, batcher=False))
    node.open()
    node.pm = Mesh()  # type: ignore[assignment]
    behind = [0]
    _behind(monkeypatch, behind)
    peer = b"\x05" * 32
    spy = _Spy(monkeypatch)
    try:
        good = _fresh(_txs(sim, 0, 10))
        await node.prepare_peer_message(peer, TxBatch(tuple(good)))
        assert all(tx._good_for == CHAIN_ID for tx in good)
        calls = spy.calls
        assert list(node.check_peer_message(peer, TxBatch(tuple(good)))) == []  # type: ignore[arg-type]
        assert spy.calls == calls  # the validate hook found them remembered
        off_loop = node.metrics.registry.get_sample_value(
            "seqnet_tx_signatures_checked_off_loop_total"
        )
        assert off_loop == 10.0
        # A forged transfer is charged exactly as without the warm-up.
        bad = _fresh(_txs(sim, 1, 10))
        bad[3] = _forged(bad[3])
        await node.prepare_peer_message(peer, TxBatch(tuple(bad)))
        found = node.check_peer_message(peer, TxBatch(tuple(bad)))
        assert list(found) == [Offense.INVALID_SIGNATURE]  # type: ignore[arg-type]
        # A block is judged by its proposer's signature first (the validate hook, the core):
        # its transfers are not checked ahead of that, or a replayed or forged block would
        # buy thousands of checks.
        calls = spy.calls
        replayed = _fresh(_txs(sim, 3, 10))
        block = _block(tuple(replayed))
        await node.prepare_peer_message(peer, block)
        assert spy.calls == calls
        assert all(tx._good_for is None for tx in replayed)
        # Catching up, gossiped batches are neither checked nor pooled.
        behind[0] = 20
        node._follow_catch_up()
        calls = spy.calls
        skipped = _fresh(_txs(sim, 2, 10))
        await node.prepare_peer_message(peer, TxBatch(tuple(skipped)))
        assert spy.calls == calls
        assert all(tx._good_for is None for tx in skipped)
    finally:
        node.close()


async def test_client_requests_reach_the_core_in_the_order_they_came(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each request waits for its checks in a worker; a later, smaller one must still not
    # overtake it (one client's nonces in order), and the pool finds them checked.
    sim = Simulation(1)
    node = Node(NodeSettings(tmp_path, _genesis(sim), key=None, batcher=False))
    node.open()
    node.pm = Mesh()  # type: ignore[assignment]
    spy = _Spy(monkeypatch)
    txs = _fresh(_txs(sim, 0, 60))
    requests = [txs[:40], txs[40:50], txs[50:]]
    try:
        async with trio.open_nursery() as nursery:
            for req in requests:
                nursery.start_soon(node.submit_txs, req)
                await trio.lowlevel.checkpoint()  # each handler reaches the node in turn
            got: list[_TxRequest] = []
            with trio.fail_after(10):
                while len(got) < 3:
                    item = await node._recv.receive()
                    assert isinstance(item, _TxRequest)
                    got.append(item)
            assert [list(r.txs) for r in got] == requests
            assert spy.calls == 60
            assert threading.get_ident() not in spy.threads
            for item in got:
                await node._handle(item)
            results = [r for item in got for r in item.results]
            assert len(results) == 60
            assert all(r is not None and r.accepted for r in results)
            nursery.cancel_scope.cancel()
    finally:
        node.close()
