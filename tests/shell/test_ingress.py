"""The node's ingress bound (issue 13, the overload collapse): past saturation an open-loop
load kept being admitted (strict decode, signature check, gossip per transaction) while the
pool grew and the chain certified a fraction of what it did at saturation. The node now
takes client transactions only while its pool and its input queue are below their ingress
bounds, and sheds the rest (429 at the RPC, see ``tests/node_process/test_rpc.py``)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import trio

from sequencer_node.core import api
from sequencer_node.shell.node_service import Node, NodeSettings, Overloaded, _TxRequest
from sequencer_node.sim.harness import CHAIN_ID, Simulation
from sequencer_node.wire.crypto import sign_message
from sequencer_node.wire.messages import Transaction
from tests.shell.test_store_snapshots import _genesis


def _txs(sim: Simulation, user: int, n: int) -> list[Transaction]:
    key = sim.users[user]
    to = sim.users[(user + 1) % len(sim.users)].address
    return [
        sign_message(Transaction(key.public_key, to, 1, nonce, 1, bytes(64)), key, CHAIN_ID)
        for nonce in range(n)
    ]


class Gossip:
    def __init__(self) -> None:
        self.sent: list[object] = []

    def broadcast(self, msg: object) -> None:
        self.sent.append(msg)


async def _handle_next(node: Node) -> _TxRequest:
    item = node._recv.receive_nowait()
    assert isinstance(item, _TxRequest)
    await node._handle(item)
    return item


async def test_ingress_takes_transactions_only_up_to_its_bounds(tmp_path: Path) -> None:
    sim = Simulation(1)
    settings = NodeSettings(tmp_path, _genesis(sim), key=None, batcher=False,
                            ingress_max_pool=5, ingress_max_queued=3)  # fmt: skip
    node = Node(settings)
    node.open()
    gossip = node.pm = Gossip()  # type: ignore[assignment]
    try:
        assert node.ingress_room() == 3  # the queue bound
        txs = _txs(sim, 0, 8)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(node._journal_loop)
            results: list[list[api.TxResult]] = []

            answered = [trio.Event(), trio.Event()]

            async def submit(batch: list[Transaction]) -> None:
                results.append(await node.submit_txs(batch))
                answered[len(results) - 1].set()

            nursery.start_soon(submit, txs[:4])
            await trio.testing.wait_all_tasks_blocked()
            # Three went in as one input; the queue is at its bound: nothing more is taken.
            assert node.ingress_room() == 0
            with pytest.raises(Overloaded):
                await node.submit_tx(txs[4])
            with pytest.raises(Overloaded):
                await node.submit_txs(txs[3:5])
            item = await _handle_next(node)
            assert len(item.txs) == 3
            with trio.fail_after(10):  # the answer waits for the journal's fsync
                await answered[0].wait()
            [got] = results
            assert [r.accepted for r in got] == [True, True, True, False]
            assert got[3].reason == "overloaded"
            # Three in the pool, none queued: the pool bound (5) leaves room for two.
            assert node.ingress_room() == 2
            nursery.start_soon(submit, txs[3:8])
            await trio.testing.wait_all_tasks_blocked()
            assert node.ingress_room() == 0
            await _handle_next(node)
            with trio.fail_after(10):
                await answered[1].wait()
            assert [r.reason for r in results[1]] == [None, None] + ["overloaded"] * 3
            assert node.ingress_room() == 0  # the pool is at its bound
            assert gossip.sent == txs[:5]
            nursery.cancel_scope.cancel()
    finally:
        node.close()


class _Peers(Gossip):
    """Gossip, and the statistics the core task's gauges read."""

    def statistics(self) -> SimpleNamespace:
        return SimpleNamespace(connected=0, offenses={}, bans=0, handshake_failures=0)


class _CountingReceive:
    """The core task's input channel, counting the waits (``receive``) it does."""

    def __init__(self, inner: trio.MemoryReceiveChannel[object]) -> None:
        self.inner = inner
        self.waits = 0
        self.taken = 0

    async def receive(self) -> object:
        self.waits += 1
        item = await self.inner.receive()
        self.taken += 1
        return item

    def receive_nowait(self) -> object:
        item = self.inner.receive_nowait()
        self.taken += 1
        return item


@pytest.mark.parametrize(("queued", "waits"), [(10, 1), (100, 2)])
async def test_queued_inputs_are_taken_in_one_wait_per_batch(
    tmp_path: Path, queued: int, waits: int
) -> None:
    """Issue 13: the core task waited (a receive and a cancel scope) once per input; it now
    takes what is queued behind the first input in the same pass, at most 64 (so a tick is
    never late by more than that), and the input channel keeps its bound. Fails before: one
    wait per input (10 and 100)."""
    sim = Simulation(1)
    settings = NodeSettings(tmp_path, _genesis(sim), key=None, batcher=False, tick_s=3600.0)
    node = Node(settings)
    node.open()
    node.pm = _Peers()  # type: ignore[assignment]
    counting = _CountingReceive(node._recv)
    node._recv = counting  # type: ignore[assignment]
    try:
        reqs = [node._enqueue([tx]) for tx in _txs(sim, 0, queued)]
        assert node._send.statistics().max_buffer_size == settings.inbound_buffer
        async with trio.open_nursery() as nursery:
            nursery.start_soon(node._journal_loop)
            nursery.start_soon(node._core_loop, trio.Event())
            with trio.fail_after(20):
                for req in reqs:
                    await req.done.wait()
            nursery.cancel_scope.cancel()
        assert counting.taken == queued
        assert counting.waits == waits + 1  # + the wait that was cancelled
        assert all(len(r.results) == 1 and r.result is not None for r in reqs)
        assert node._queued_txs == 0
    finally:
        node.close()
