"""The node's ingress bound (issue 13, the overload collapse): past saturation an open-loop
load kept being admitted (strict decode, signature check, gossip per transaction) while the
pool grew and the chain certified a fraction of what it did at saturation. The node now
takes client transactions only while its pool and its input queue are below their ingress
bounds, and sheds the rest (429 at the RPC, see ``tests/node_process/test_rpc.py``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import trio

from sequencer_node.core import api
from sequencer_node.core.sequencer import SequencerCore
from sequencer_node.shell.compact import batch_digest
from sequencer_node.shell.node_service import (
    Node,
    NodeSettings,
    Overloaded,
    _PeerInput,
    _TxRequest,
)
from sequencer_node.shell.p2p_messages import TxBatch
from sequencer_node.shell.peers import PeerConfig
from sequencer_node.shell.scoring import Offense
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


class Mesh(Gossip):
    """A full-mesh peer manager as far as the node's checks look (``fanout=None``)."""

    def __init__(self) -> None:
        super().__init__()
        self.config = PeerConfig()
        self.inbound_send, self.inbound = trio.open_memory_channel[tuple[bytes, object]](16)


def _behind(monkeypatch: pytest.MonkeyPatch, blocks: list[int]) -> None:
    """Make every core report ``blocks[0]`` certified blocks behind (change it in place)."""
    monkeypatch.setattr(SequencerCore, "blocks_behind", property(lambda self: blocks[0]))


async def test_a_node_far_behind_takes_no_client_transaction_until_it_is_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # docs/protocol.md section 7: a node more than catch_up_blocks behind spends its CPU on
    # the blocks; its clients are told to use another node (503 CATCHING_UP at the RPC).
    sim = Simulation(1)
    node = Node(NodeSettings(tmp_path, _genesis(sim), key=None, batcher=False,
                             catch_up_blocks=8))  # fmt: skip
    node.open()
    node.pm = Mesh()  # type: ignore[assignment]
    behind = [2]
    _behind(monkeypatch, behind)
    try:
        node._follow_catch_up()  # what the core task does after each input and tick
        assert not node.catching_up
        assert node.ingress_closed() is None
        assert node.ingress_room() > 0
        behind[0] = 9
        assert not node.catching_up  # a plain read: the state moves with the core's passes
        node._follow_catch_up()
        assert node.catching_up
        assert node.ingress_room() == 0
        why = node.ingress_closed()
        assert why is not None
        assert "9 certified blocks behind" in why
        with pytest.raises(Overloaded, match="catching up"):
            await node.submit_txs(_txs(sim, 0, 1))
        assert node._recv.statistics().current_buffer_used == 0  # nothing reached the core
        refused = node.metrics.registry.get_sample_value(
            "seqnet_rpc_transactions_total", {"outcome": "catching_up"}
        )
        assert refused == 1.0
        behind[0] = 3  # within the hysteresis: still catching up
        node._follow_catch_up()
        assert node.catching_up
        behind[0] = 2  # a quarter of the bound: back
        node._follow_catch_up()
        assert not node.catching_up
        assert node.ingress_room() > 0
        node.pm = None  # the status reads more of a real peer manager than Mesh has
        status = node.views.status()
        assert (status["blocks_behind"], status["catching_up"]) == (2, False)
    finally:
        node.close()


async def test_a_node_far_behind_leaves_gossiped_transactions_unchecked_and_unpooled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Their signature checks and pool admission cost it what they cost the nodes that keep up:
    # under load it never caught up. They are in the certified blocks it executes, or still
    # in its peers' pools; on a full mesh nobody relays them, so nothing unchecked goes on.
    sim = Simulation(1)
    node = Node(NodeSettings(tmp_path, _genesis(sim), key=None, batcher=False))
    node.open()
    mesh = node.pm = Mesh()  # type: ignore[assignment]
    behind = [1]
    _behind(monkeypatch, behind)
    [good] = _txs(sim, 0, 1)
    forged = dataclasses.replace(good, amount=2)
    peer = b"\x05" * 32
    try:
        found = node.check_peer_message(peer, TxBatch((forged,)))
        assert found is not None
        assert not isinstance(found, Offense)
        assert list(found) == [Offense.INVALID_SIGNATURE]
        behind[0] = 20
        node._follow_catch_up()
        assert node.check_peer_message(peer, TxBatch((forged,))) is None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(node._forward_peers)
            request = api.SyncRequest(1, 5)
            for msg in (TxBatch((good,)), good, request):
                await mesh.inbound_send.send((peer, msg))
            with trio.fail_after(10):
                item = await node._recv.receive()
            assert isinstance(item, _PeerInput)
            assert item.message == request
            assert node._recv.statistics().current_buffer_used == 0
            nursery.cancel_scope.cancel()
        # The batch was still indexed: a compact block naming it can be rebuilt later.
        assert node.compact.index.batch(batch_digest((good,))) == (good,)
    finally:
        node.close()
