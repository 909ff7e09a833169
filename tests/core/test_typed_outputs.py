"""What the core tells the shell is typed: offenses, local sources, round causes, evidence."""

from __future__ import annotations

import pytest

from sequencer_node.core import api
from sequencer_node.core.sequencer import SequencerCore
from sequencer_node.sim.harness import CHAIN_ID, Simulation
from sequencer_node.wire.certificates import verify_evidence
from sequencer_node.wire.crypto import sign_message
from sequencer_node.wire.messages import (
    ZERO_HASH,
    BlockHeader,
    CertifiedBlock,
    DoubleProposal,
    DoubleTimeout,
    DoubleVote,
    EvidenceKind,
    Proposal,
    Timeout,
    Vote,
)


def _core_and_keys() -> tuple[SequencerCore, Simulation]:
    sim = Simulation(5)
    return SequencerCore(sim.config_for(sim.instances[0]), sim.genesis), sim


def _refusals(out: list[api.Effect]) -> list[api.PeerMisbehaved | api.InputRefused]:
    return [e for e in out if isinstance(e, api.PeerMisbehaved | api.InputRefused)]


def test_a_bad_signature_is_a_typed_offense_against_the_peer() -> None:
    core, sim = _core_and_keys()
    peer = sim.keys[1].public_key
    vote = Vote(b"\x01" * 32, 1, 1, 0, peer, bytes(64))  # unsigned
    out = core.handle(api.MessageReceived(peer, vote), 0)
    assert _refusals(out) == [
        api.PeerMisbehaved(peer, api.Offense(api.Fault.BAD_SIGNATURE, "bad vote signature"))
    ]


def test_an_unexpected_message_is_not_a_signature_fault() -> None:
    core, sim = _core_and_keys()
    peer = sim.keys[2].public_key
    [refused] = _refusals(core.handle(api.MessageReceived(peer, api.WatermarkPersisted(1)), 0))
    assert isinstance(refused, api.PeerMisbehaved)
    assert refused.offense.fault is api.Fault.UNEXPECTED_MESSAGE


def test_inconsistent_l1_data_is_refused_with_a_local_source_not_a_sentinel_peer() -> None:
    core, sim = _core_and_keys()
    snap = api.StakeSnapshot(9, sim.genesis.snapshot.stakes, b"\x01" * 32)
    assert _refusals(core.handle(api.StakeSnapshotAvailable(snap), 0)) == []
    changed = api.StakeSnapshot(9, sim.genesis.snapshot.stakes, b"\x02" * 32)
    [refused] = _refusals(core.handle(api.StakeSnapshotAvailable(changed), 0))
    assert isinstance(refused, api.InputRefused)
    assert refused.source is api.LocalSource.L1
    assert refused.offense.fault is api.Fault.INCONSISTENT_L1


@pytest.mark.parametrize("kind", list(EvidenceKind))
def test_evidence_names_its_kind_round_and_offender(kind: EvidenceKind) -> None:
    sim = Simulation(4)
    key = sim.keys[0]
    pk = key.public_key

    ev: DoubleProposal | DoubleVote | DoubleTimeout
    if kind is EvidenceKind.DOUBLE_PROPOSAL:
        headers = [
            BlockHeader(3, 7, 0, ZERO_HASH, t, pk, ZERO_HASH, ZERO_HASH, 0, 0) for t in (1, 2)
        ]
        a, b = (sign_message(Proposal(h, bytes(64)), key, CHAIN_ID) for h in headers)
        ev = DoubleProposal(a, b)
    elif kind is EvidenceKind.DOUBLE_VOTE:
        votes = [Vote(bytes([i]) * 32, 3, 7, 0, pk, bytes(64)) for i in (1, 2)]
        va, vb = (sign_message(v, key, CHAIN_ID) for v in votes)
        ev = DoubleVote(va, vb)
    else:
        timeouts = [Timeout(7, 0, r, ZERO_HASH, pk, bytes(64)) for r in (0, 1)]
        ta, tb = (sign_message(t, key, CHAIN_ID) for t in timeouts)
        ev = DoubleTimeout(ta, tb)
    assert (ev.kind, ev.round, ev.offender) == (kind, 7, pk)
    assert verify_evidence(ev, CHAIN_ID) == pk


def test_a_refused_stored_block_is_an_effect_not_an_exception() -> None:
    sim = Simulation(6)
    assert sim.run_until(lambda: len(sim.instances[0].store) >= 3, 20_000)
    first, second = sim.instances[0].store[:2]
    core = SequencerCore(sim.config_for(sim.instances[3]), sim.genesis)
    broken = CertifiedBlock(first.block, second.qc)  # the QC of another block
    out = core.handle(api.CertifiedBlocksReceived((broken,)), sim.now)
    assert _refusals(out) == [
        api.InputRefused(
            api.LocalSource.STORE,
            api.Offense(
                api.Fault.INVALID_CERTIFICATE,
                "stored certified block refused: certified block and QC do not match",
            ),
        )
    ]
