"""The journal replay after a restart and the node's ingress bounds (issue 13, a resumed
devnet after an overload): the replayed transactions are queued inputs like a client's, so
once the core has taken them the bounds are what they were. Before, the core task took each
replayed one off a count it had never been added to: a node restarted with ``N`` journaled
transactions took ``N`` more than its bounds from its clients for as long as it ran."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import trio

from sequencer_node.shell.node_service import Node, NodeSettings, _TxRequest
from sequencer_node.sim.harness import Simulation
from sequencer_node.wire.codec import encode
from sequencer_node.wire.messages import tx_hash as transaction_hash
from tests.shell.test_ingress import Gossip, _txs
from tests.shell.test_store_snapshots import _genesis


@dataclass
class _Stats:
    connected: int = 1


class ConnectedGossip(Gossip):
    """A peer manager with one peer connected (the replay waits for one)."""

    def statistics(self) -> _Stats:
        return _Stats()


async def test_replayed_journal_leaves_the_ingress_bounds_as_they_were(tmp_path: Path) -> None:
    sim = Simulation(1)
    settings = NodeSettings(tmp_path, _genesis(sim), key=None, batcher=False,
                            ingress_max_pool=50, ingress_max_queued=3)  # fmt: skip
    node = Node(settings)
    node.open()
    assert node.store is not None
    journaled = _txs(sim, 0, 20)
    node.store.journal_txs([(transaction_hash(tx), encode(tx)) for tx in journaled])
    node.pm = ConnectedGossip()  # type: ignore[assignment]
    try:
        assert node.ingress_room() == 3
        async with trio.open_nursery() as nursery:
            replayed = trio.Event()

            async def replay() -> None:
                await node._resubmit_journal()
                replayed.set()

            nursery.start_soon(replay)
            with trio.fail_after(10):
                while not replayed.is_set():
                    with trio.move_on_after(0.5):
                        item = await node._recv.receive()
                        assert isinstance(item, _TxRequest)
                        assert item.replayed
                        # While it waits for the core, a replayed one takes a place in the queue.
                        assert node.ingress_room() <= 2
                        await node._handle(item)
            nursery.cancel_scope.cancel()
        assert node.core is not None
        assert node.core.mempool_size == 20
        # Twenty in the pool (bound 50), none queued: the queue bound (3) applies, as before
        # the restart (the old code said 23).
        assert node.ingress_room() == 3
    finally:
        node.close()
