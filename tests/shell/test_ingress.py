"""The node's ingress bound (issue 13, the overload collapse): past saturation an open-loop
load kept being admitted (strict decode, signature check, gossip per transaction) while the
pool grew and the chain certified a fraction of what it did at saturation. The node now
takes client transactions only while its pool and its input queue are below their ingress
bounds, and sheds the rest (429 at the RPC, see ``tests/node_process/test_rpc.py``)."""

from __future__ import annotations

from pathlib import Path

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
