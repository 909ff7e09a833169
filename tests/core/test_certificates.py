"""Certificates say what they certify (issue 11, finding 7).

A QC names its block's hash, height, round and epoch; a TC names the height and epoch of the
block that extends its high QC. Each is judged by the stake table of the epoch it names, a
block's justify must name exactly its parent, and a certificate naming an epoch that ended
before the node's committed head moves nothing: its table's members may have left with their
keys (a forged TC of the genesis table could otherwise jump every node's round and, carried in
a proposal, satisfy the vote rule without the highest QC).
"""

from __future__ import annotations

import dataclasses

import pytest

from sequencer_node.core import api
from sequencer_node.core.sequencer import SequencerCore
from sequencer_node.sim.harness import CHAIN_ID, Simulation
from sequencer_node.wire.certificates import CertificateError, verify_tc, vote_for
from sequencer_node.wire.crypto import SigningKey, sign_message
from sequencer_node.wire.messages import (
    ZERO_HASH,
    CertifiedBlock,
    Endorsement,
    QuorumCertificate,
    Timeout,
    TimeoutCertificate,
)


def _forge_qc(template: QuorumCertificate, keys: list[SigningKey]) -> QuorumCertificate:
    """A QC whose every endorsement is a valid signature of ``keys`` on what it claims."""
    sigs = tuple(
        Endorsement(
            k.public_key, sign_message(vote_for(template, k.public_key), k, CHAIN_ID).signature
        )
        for k in sorted(keys, key=lambda k: k.public_key)
    )
    return dataclasses.replace(template, signatures=sigs)


def _fresh_core(sim: Simulation, idx: int) -> SequencerCore:
    core = SequencerCore(sim.config_for(sim.instances[idx]), sim.genesis)
    for e in range(sim.finalized_l1_epoch + 1):
        core.handle(api.StakeSnapshotAvailable(sim.snapshot(e)), sim.now)
    core.handle(api.L1HeadChanged(sim.l1_head, sim.l1_finalized), sim.now)
    return core


def test_a_justify_must_name_the_parents_height_and_epoch() -> None:
    # The justify is not covered by the proposer's signature: anyone relaying the block can
    # swap it. Here it is swapped for a QC with the parent's hash and round but another height
    # (and so epoch), validly signed by the genesis table; the old code checked only the hash
    # and the round and accepted the block.
    sim = Simulation(11, epoch_length=8)
    assert sim.run_until(lambda: len(sim.instances[0].store) >= 14, 20_000)
    chain = list(sim.instances[0].store[:14])
    child = chain[10]  # height 11, epoch 1; its justify certifies height 10
    justify = child.block.justify
    assert justify is not None
    assert (justify.height, justify.epoch) == (10, 1)
    forged = _forge_qc(dataclasses.replace(justify, height=3, epoch=0), sim.keys)
    chain[10] = CertifiedBlock(dataclasses.replace(child.block, justify=forged), child.qc)

    core = _fresh_core(sim, 3)
    peer = sim.keys[1].public_key
    out = core.handle(api.MessageReceived(peer, api.SyncResponse(tuple(chain), None)), sim.now)
    for step in range(1, 20):  # the answer is inserted a few blocks per tick
        out += core.tick(sim.now + step)
    refused = [e for e in out if isinstance(e, api.PeerMisbehaved)]
    assert [e.offense.fault for e in refused] == [api.Fault.INVALID_CERTIFICATE]
    assert core.committed_height < 10  # block 10 needs its child, the tampered block, to commit
    assert core.committed_height >= 8  # the blocks before the tampered one were inserted


def _stale_tc(sim: Simulation, keys: list[SigningKey], round_: int) -> TimeoutCertificate:
    timeouts = tuple(
        sign_message(Timeout(round_, 0, 0, ZERO_HASH, k.public_key, bytes(64)), k, CHAIN_ID)
        for k in sorted(keys, key=lambda k: k.public_key)
    )
    return TimeoutCertificate(round_, 1, 0, timeouts, None)


def test_a_tc_of_a_table_that_left_does_not_move_the_node() -> None:
    # Genesis table: keys 0-3. From L1 epoch 3 on, keys 4-7 hold all the stake. Once the new
    # table's epochs are committed, the genesis keys (no stake left, nothing to lose) sign
    # timeouts with no high QC for a far round. The old code judged every TC without a high QC
    # by the genesis table: the node jumped to that round.
    sim = Simulation(5, stakes=(1, 1, 1, 1, 0, 0, 0, 0), epoch_length=8)
    sim.change_stakes(3, (0, 0, 0, 0, 1, 1, 1, 1))
    new_member = sim.instances[4]

    def new_table_committed() -> bool:
        core = new_member.core
        if core is None or core.committed_height < 8:
            return False
        info = core.epoch_info(core.epoch_of(core.committed_height))
        return info is not None and sim.keys[4].public_key in info.table

    assert sim.run_until(new_table_committed, 60_000), "the new table never took over"
    core = new_member.core
    assert core is not None
    far = core.round + 1_000
    tc = _stale_tc(sim, sim.keys[:4], far)
    verify_tc(tc, dict.fromkeys((k.public_key for k in sim.keys[:4]), 1), CHAIN_ID)  # genuine
    out = core.handle(api.MessageReceived(sim.keys[0].public_key, tc), sim.now)
    assert core.round < far
    assert not [e for e in out if isinstance(e, api.RoundChanged)]
    height = core.committed_height
    sim.run_for(3_000)
    assert core.committed_height > height  # and the chain goes on


def test_a_tc_names_the_height_after_its_high_qc() -> None:
    keys = [SigningKey.deterministic(f"tc-{i}") for i in range(4)]
    table = dict.fromkeys((k.public_key for k in keys), 1)
    timeouts = tuple(
        sign_message(Timeout(5, 0, 0, ZERO_HASH, k.public_key, bytes(64)), k, CHAIN_ID)
        for k in keys
    )
    verify_tc(TimeoutCertificate(5, 1, 0, timeouts, None), table, CHAIN_ID)
    with pytest.raises(CertificateError, match="height"):
        verify_tc(TimeoutCertificate(5, 9, 0, timeouts, None), table, CHAIN_ID)
