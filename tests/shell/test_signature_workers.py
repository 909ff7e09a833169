"""Transfer signatures checked in worker threads, off the event loop (issue 13): the warm-up
decides nothing (the checks that decide find the good signatures remembered), stops at a bad
signature, leaves small batches inline, is bounded by its thread limit, and keeps client
requests in the order they came."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest
import trio

from sequencer_node.core import ledger, mempool
from sequencer_node.shell import node_service, signature_workers
from sequencer_node.shell.node_service import Node, NodeSettings, Overloaded, _TxRequest
from sequencer_node.shell.p2p_messages import TxBatch
from sequencer_node.shell.scoring import Offense
from sequencer_node.shell.signature_workers import SignatureWorkers
from sequencer_node.sim.harness import CHAIN_ID, Simulation
from sequencer_node.wire.codec import decode, encode
from sequencer_node.wire.messages import Transaction
from tests.shell.test_compact import _block
from tests.shell.test_ingress import Mesh, _behind, _txs
from tests.shell.test_store_snapshots import _genesis


def _fresh(txs: list[Transaction]) -> list[Transaction]:
    """Copies as a peer's frame gives them: decoded objects that remember nothing."""
    return [decode(encode(tx)) for tx in txs]


def _node(tmp_path: Path, sim: Simulation, **settings: object) -> Node:
    """An opened node on a full mesh whose 4 workers it waits for as long as a test may take
    (the 100 ms bound is for a busy event loop; a loaded test machine must not make these
    tests check inline)."""
    node = Node(NodeSettings(tmp_path, _genesis(sim), key=None, batcher=False,
                             **settings))  # type: ignore[arg-type]  # fmt: skip
    node.open()
    node.pm = Mesh()  # type: ignore[assignment]
    node.signatures = SignatureWorkers(CHAIN_ID, threads=4, wait_s=30.0)
    return node


def _forged(tx: Transaction) -> Transaction:
    return dataclasses.replace(tx, amount=tx.amount + 1)


class _Spy:
    """Wraps ``verify_tx_signature`` wherever it is called from (the workers, the validate
    hook, the pool, execution): which threads checked, how many at once, and how many real
    checks (the transfer not yet remembered good) ran on the event loop's thread."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.loop_thread = threading.get_ident()
        self.worker_calls = 0
        self.loop_checks = 0
        self.threads: set[int] = set()
        self.active = 0
        self.most_active = 0
        self._lock = threading.Lock()
        real = ledger.verify_tx_signature

        def spy(tx: Transaction, chain_id: int) -> bool:
            me = threading.get_ident()
            with self._lock:
                if me == self.loop_thread:
                    self.loop_checks += tx._good_for != chain_id
                else:
                    self.worker_calls += 1
                    self.threads.add(me)
                self.active += 1
                self.most_active = max(self.most_active, self.active)
            try:
                return real(tx, chain_id)
            finally:
                with self._lock:
                    self.active -= 1

        for module in (signature_workers, node_service, mempool, ledger):
            monkeypatch.setattr(module, "verify_tx_signature", spy)


async def test_a_batch_is_checked_in_a_worker_thread_and_remembered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sim = Simulation(1)
    txs = _fresh(_txs(sim, 0, 20))
    spy = _Spy(monkeypatch)
    workers = SignatureWorkers(CHAIN_ID, threads=2, wait_s=30.0)
    assert await workers.warm(txs) == 20
    assert spy.worker_calls == 20
    assert spy.loop_checks == 0
    assert all(tx._good_for == CHAIN_ID for tx in txs)
    assert (workers.checked, workers.stopped_at_bad) == (20, 0)
    assert await workers.warm(txs) == 0  # remembered: nothing to do
    assert spy.worker_calls == 20


async def test_a_small_batch_is_left_to_the_inline_check(monkeypatch: pytest.MonkeyPatch) -> None:
    sim = Simulation(1)
    txs = _fresh(_txs(sim, 0, 7))
    spy = _Spy(monkeypatch)
    workers = SignatureWorkers(CHAIN_ID, min_batch=8)
    assert await workers.warm(txs) == 0
    assert spy.worker_calls == 0
    assert all(tx._good_for is None for tx in txs)
    # Unchecked ones count, not the batch's size: 8 with one already good is 7 to check.
    more = _fresh(_txs(sim, 1, 8))
    object.__setattr__(more[0], "_good_for", CHAIN_ID)
    assert await workers.warm(more) == 0
    assert spy.worker_calls == 0


async def test_the_warm_up_stops_at_the_first_bad_signature(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The validate hook charges a peer per bad transfer and stops at a ban: a hostile batch
    # must not cost more checks in the workers than the lazy check would have spent.
    sim = Simulation(1)
    txs = _fresh(_txs(sim, 0, 21))
    txs[10] = _forged(txs[10])
    spy = _Spy(monkeypatch)
    workers = SignatureWorkers(CHAIN_ID, wait_s=30.0)
    assert await workers.warm(txs) == 11
    assert spy.worker_calls == 11
    assert (workers.checked, workers.stopped_at_bad) == (11, 1)
    assert [tx._good_for == CHAIN_ID for tx in txs] == [True] * 10 + [False] * 11


async def test_a_long_batch_goes_in_chunks_and_at_most_threads_checks_run_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(signature_workers, "CHUNK", 5)
    chunks: list[int] = []
    real_chunk = signature_workers._check_until_bad

    def chunk(
        txs: Sequence[Transaction], chain_id: int, stop: threading.Event | None = None
    ) -> tuple[int, bool]:
        chunks.append(len(txs))
        return real_chunk(txs, chain_id, stop)

    monkeypatch.setattr(signature_workers, "_check_until_bad", chunk)
    sim = Simulation(1)
    batches = [_fresh(_txs(sim, u, 12)) for u in range(3)]
    spy = _Spy(monkeypatch)
    workers = SignatureWorkers(CHAIN_ID, threads=1, wait_s=30.0)
    async with trio.open_nursery() as nursery:
        for batch in batches:
            nursery.start_soon(workers.warm, batch)
    assert sorted(chunks) == sorted([5, 5, 2] * 3)
    assert spy.worker_calls == 36
    assert spy.most_active == 1
    assert workers.checked == 36


async def test_a_starved_worker_is_not_waited_for_past_its_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A worker takes the GIL back after each check and loses it to a loop that is busy for
    # good: the caller gives up after wait_s and its own check does the rest.
    release = threading.Event()
    real_chunk = signature_workers._check_until_bad

    finished = threading.Event()

    results: list[tuple[int, bool]] = []

    def starved(
        txs: Sequence[Transaction], chain_id: int, stop: threading.Event | None = None
    ) -> tuple[int, bool]:
        release.wait(10)
        try:
            results.append(real_chunk(txs, chain_id, stop))
            return results[-1]
        finally:
            finished.set()

    monkeypatch.setattr(signature_workers, "_check_until_bad", starved)
    gave_up: list[int] = []
    workers = SignatureWorkers(CHAIN_ID, wait_s=0.05, on_give_up=lambda: gave_up.append(1))
    sim = Simulation(1)
    txs = _fresh(_txs(sim, 0, 10))
    with trio.fail_after(5):
        assert await workers.warm(txs) == 0
    assert (workers.gave_up, gave_up) == (1, [1])
    assert all(tx._good_for is None for tx in txs)
    # The abandoned worker, let go, stops before its next check: the caller's own checks
    # do them, not both.
    release.set()
    assert await trio.to_thread.run_sync(finished.wait, 10)
    assert results == [(0, False)]
    assert all(tx._good_for is None for tx in txs)


async def test_no_threads_means_every_check_stays_inline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sim = Simulation(1)
    txs = _fresh(_txs(sim, 0, 20))
    spy = _Spy(monkeypatch)
    workers = SignatureWorkers(CHAIN_ID, threads=0)
    assert await workers.warm(txs) == 0
    assert spy.worker_calls == 0
    assert all(tx._good_for is None for tx in txs)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="0 \\(off\\) or more"):
        SignatureWorkers(CHAIN_ID, threads=-1)
    with pytest.raises(ValueError, match="min_batch"):
        SignatureWorkers(CHAIN_ID, min_batch=0)
    with pytest.raises(ValueError, match="wait_s"):
        SignatureWorkers(CHAIN_ID, wait_s=0)
    assert SignatureWorkers(CHAIN_ID).threads >= 1


async def test_a_node_checks_a_peer_batch_before_its_validate_hook_and_charges_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = Simulation(1)
    node = _node(tmp_path, sim)
    behind = [0]
    _behind(monkeypatch, behind)
    peer = b"\x05" * 32
    spy = _Spy(monkeypatch)
    try:
        good = _fresh(_txs(sim, 0, 10))
        await node.prepare_peer_message(peer, TxBatch(tuple(good)))
        assert spy.worker_calls == 10
        assert list(node.check_peer_message(peer, TxBatch(tuple(good)))) == []  # type: ignore[arg-type]
        assert spy.loop_checks == 0  # the validate hook found them remembered
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
        calls = spy.worker_calls
        replayed = _fresh(_txs(sim, 3, 10))
        await node.prepare_peer_message(peer, _block(tuple(replayed)))
        assert spy.worker_calls == calls
        assert all(tx._good_for is None for tx in replayed)
        # Catching up, gossiped batches are neither checked nor pooled.
        behind[0] = 20
        node._follow_catch_up()
        skipped = _fresh(_txs(sim, 2, 10))
        await node.prepare_peer_message(peer, TxBatch(tuple(skipped)))
        assert spy.worker_calls == calls
        assert all(tx._good_for is None for tx in skipped)
    finally:
        node.close()


async def test_client_requests_reach_the_core_in_the_order_they_came(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each batch waits for its checks in a worker; a later, smaller one, or a single
    # transaction, must still not overtake it (one client's nonces in order), and the pool
    # finds every signature checked.
    sim = Simulation(1)
    node = _node(tmp_path, sim)
    spy = _Spy(monkeypatch)
    txs = _fresh(_txs(sim, 0, 61))
    requests = [txs[:40], txs[40:50], [txs[50]], txs[51:]]
    try:
        async with trio.open_nursery() as nursery:
            for req in requests:
                if len(req) == 1:
                    nursery.start_soon(node.submit_tx, req[0])
                else:
                    nursery.start_soon(node.submit_txs, req)
                # each reaches the node before the next (in a worker, or waiting its turn)
                await trio.testing.wait_all_tasks_blocked()
            got: list[_TxRequest] = []
            with trio.fail_after(10):
                while len(got) < len(requests):
                    item = await node._recv.receive()
                    assert isinstance(item, _TxRequest)
                    got.append(item)
            assert [list(r.txs) for r in got] == requests
            assert spy.worker_calls == 60  # the single one is checked by the pool
            for item in got:
                await node._handle(item)
            results = [r for item in got for r in item.results]
            assert len(results) == 61
            assert all(r is not None and r.accepted for r in results)
            assert spy.loop_checks == 1
            nursery.cancel_scope.cancel()
    finally:
        node.close()


async def test_a_request_refused_in_its_turn_has_cost_no_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Both requests find room when they arrive; the first fills the queue while the second
    # waits its turn. Room is read again in turn, before the checks: refused, nothing spent.
    sim = Simulation(1)
    node = _node(tmp_path, sim, ingress_max_queued=12)
    spy = _Spy(monkeypatch)
    first, second = _fresh(_txs(sim, 0, 12)), _fresh(_txs(sim, 1, 12))
    refused: list[str] = []
    answered = trio.Event()

    async def late() -> None:
        try:
            await node.submit_txs(second)
        except Overloaded as e:
            refused.append(str(e))
        answered.set()

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(node.submit_txs, first)
            await trio.testing.wait_all_tasks_blocked()  # first in its turn (in a worker)
            nursery.start_soon(late)
            with trio.fail_after(10):
                item = await node._recv.receive()
                await answered.wait()
            assert isinstance(item, _TxRequest)
            assert list(item.txs) == first
            assert spy.worker_calls == 12
            assert all(tx._good_for is None for tx in second)
            assert "ingress is full" in refused[0]
            nursery.cancel_scope.cancel()
    finally:
        node.close()


async def test_a_request_whose_turn_comes_after_its_deadline_is_not_handed_over(
    tmp_path: Path,
) -> None:
    # The wait for the turn counts in tx_wait_s: past it, the client is answered "timeout"
    # and the core never sees the request (before, the deadline covered only the answer).
    sim = Simulation(1)
    node = _node(tmp_path, sim, tx_wait_s=0.2)
    held, done = trio.Event(), trio.Event()

    async def earlier_request() -> None:
        async with node._client_turn:  # an earlier request holds the turn
            held.set()
            await done.wait()

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(earlier_request)
            await held.wait()
            with trio.fail_after(10):
                results = await node.submit_txs(_fresh(_txs(sim, 0, 9)))
            with pytest.raises(trio.TooSlowError), trio.fail_after(10):
                await node.submit_tx(_fresh(_txs(sim, 1, 1))[0])
            done.set()
        assert [r.reason for r in results] == ["timeout"] * 9
        assert node._recv.statistics().current_buffer_used == 0
        assert node.ingress_room() == node.settings.ingress_max_queued
    finally:
        node.close()
