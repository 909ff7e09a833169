"""A node run with ``--no-batcher`` ignores its peers' batch co-signing messages: they are
not the peers' fault (found by the fault scenario's twin step: a ``--no-batcher`` node banned
its only honest peer for its ``BatchProposal`` / ``BatchApproval`` messages)."""

from __future__ import annotations

from pathlib import Path

from sequencer_node.batcher.messages import BatchProposal
from sequencer_node.shell.node_service import Node, NodeSettings, _PeerInput
from sequencer_node.shell.scoring import Offense, Verdict
from sequencer_node.sim.harness import Simulation
from sequencer_node.wire.messages import BatchApproval
from tests.shell.test_store_snapshots import _genesis

PEER = b"\x05" * 32


class Charges:
    def __init__(self) -> None:
        self.charged: list[tuple[bytes, Offense]] = []

    def penalize(self, peer: bytes, offense: Offense) -> Verdict:
        self.charged.append((peer, offense))
        return Verdict.OK


async def test_a_node_without_batcher_does_not_charge_peers_for_batch_messages(
    tmp_path: Path,
) -> None:
    sim = Simulation(1)
    node = Node(NodeSettings(tmp_path, _genesis(sim), key=None, batcher=False))
    node.open()
    try:
        charges = Charges()
        node.pm = charges  # type: ignore[assignment]
        for cls in (BatchProposal, BatchApproval):
            msg = object.__new__(cls)  # only its type matters here
            await node._handle(_PeerInput(PEER, msg))
        assert charges.charged == []
    finally:
        node.close()
