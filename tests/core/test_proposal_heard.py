"""A proposal heard before its transactions (``api.ProposalHeard``: the p2p link carried the
block by reference to batches this node does not hold yet). The core takes what needs only the
proposer's signature and the certificates, and nothing else: a proposer that sends some nodes
a block nobody can rebuild still leaves evidence of its double proposal, and its QC still
moves the node on; the block is neither voted for nor judged (its body is not here)."""

from __future__ import annotations

from sequencer_node.core import api
from sequencer_node.core.sequencer import SequencerCore
from sequencer_node.sim.harness import CHAIN_ID, Simulation
from sequencer_node.wire.certificates import verify_evidence
from sequencer_node.wire.crypto import sign_message
from sequencer_node.wire.messages import (
    ZERO_HASH,
    Block,
    BlockHeader,
    DoubleProposal,
    Proposal,
    Vote,
)


def _bare(header: BlockHeader, sim: Simulation, signer: int) -> Block:
    proposal = sign_message(Proposal(header, bytes(64)), sim.keys[signer], CHAIN_ID)
    return Block(proposal, (), (), None, None)


def test_two_heard_proposals_of_one_round_are_evidence() -> None:
    sim = Simulation(4)
    core = SequencerCore(sim.config_for(sim.instances[1]), sim.genesis)
    pk = sim.keys[0].public_key
    a, b = (
        _bare(BlockHeader(1, 7, 0, ZERO_HASH, t, pk, ZERO_HASH, ZERO_HASH, 0, 0), sim, 0)
        for t in (1, 2)
    )  # two blocks nobody can rebuild: only their signed headers are here
    out = core.handle(api.MessageReceived(pk, api.ProposalHeard(a)), 0)
    out += core.handle(api.MessageReceived(pk, api.ProposalHeard(b)), 0)
    [found] = [e for e in out if isinstance(e, api.EvidenceFound)]
    assert isinstance(found.evidence, DoubleProposal)
    assert verify_evidence(found.evidence, CHAIN_ID) == pk
    assert not [e for e in out if isinstance(e, api.PeerMisbehaved | api.InputRefused)]
    assert not [e for e in out if isinstance(e, api.Broadcast) and isinstance(e.message, Vote)]


def test_a_heard_proposal_with_a_bad_signature_is_the_senders_fault() -> None:
    sim = Simulation(4)
    core = SequencerCore(sim.config_for(sim.instances[1]), sim.genesis)
    pk = sim.keys[0].public_key
    header = BlockHeader(1, 7, 0, ZERO_HASH, 1, pk, ZERO_HASH, ZERO_HASH, 0, 0)
    forged = _bare(header, sim, 2)  # signed by another key than its proposer's
    out = core.handle(api.MessageReceived(sim.keys[3].public_key, api.ProposalHeard(forged)), 0)
    [refused] = [e for e in out if isinstance(e, api.PeerMisbehaved)]
    assert refused.peer == sim.keys[3].public_key
    assert refused.offense.fault is api.Fault.BAD_SIGNATURE


def test_the_qc_of_a_heard_proposal_moves_a_lagging_node_on() -> None:
    sim = Simulation(4)
    blocks: list[Block] = []
    route = sim._route

    def spy(src, effects):
        blocks.extend(
            e.message for e in effects
            if isinstance(e, api.Broadcast) and isinstance(e.message, Block)
        )  # fmt: skip
        route(src, effects)

    sim._route = spy  # type: ignore[method-assign]
    sim.run_for(3_000)
    late = next(b for b in reversed(blocks) if b.justify is not None and b.justify.round > 3)
    lagging = SequencerCore(sim.config_for(sim.instances[3]), sim.genesis)
    assert lagging.round == 1
    bare = Block(late.proposal, (), late.forced, late.justify, late.timeout_cert)
    out = lagging.handle(api.MessageReceived(late.header.proposer, api.ProposalHeard(bare)), 0)
    assert late.justify is not None
    assert lagging.round == late.justify.round + 1
    assert lagging.high_qc == late.justify
    assert not [e for e in out if isinstance(e, api.PeerMisbehaved | api.InputRefused)]
    # It asks for the certified blocks it lacks (the ordinary catch-up), and votes for nothing.
    assert [e for e in out if isinstance(e, api.SendTo) and isinstance(e.message, api.SyncRequest)]
    assert not [e for e in out if isinstance(e, api.Broadcast) and isinstance(e.message, Vote)]
