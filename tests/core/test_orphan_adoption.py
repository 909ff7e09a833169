"""A node that was behind catches up a few blocks per step (issue 13): the orphans its gap
kept, and the certified blocks of a sync answer.

Found resuming an overloaded 4-node devnet (``scripts/resume_after_overload.py``): the node
that had been behind kept every proposal it could not connect as an orphan (up to the orphan
bound, 1,024 blocks) and, when the block that closed the gap arrived, executed all of them in
that one input; its event loop did not answer for 4-11 s at a time. A sync answer (up to 64
certified blocks) was one input too: 1.3-2.9 s of CPU. Now one input or tick adopts at most
``_ADOPT_PER_STEP`` orphans and inserts at most ``_SYNC_PER_STEP`` certified blocks, the core
says the rest are due at once (``next_tick_ms``), and the chain it ends with is the same."""

from __future__ import annotations

import dataclasses

import pytest

from sequencer_node.core import api, sequencer
from sequencer_node.core.sequencer import (
    _ADOPT_PER_STEP,
    _SYNC_PER_STEP,
    _SYNC_QUEUE_MAX,
    SequencerCore,
)
from sequencer_node.wire.messages import Block, CertifiedBlock, block_hash
from tests.core.helpers import behind_node

CHAIN = 40
#: The newest blocks reach the node as proposals first (their L1 origins are recent enough
#: for a proposal), the older ones only later, certified, in one sync answer.
ORPHANS = 10


def _reached(core: SequencerCore, chain: list[Block]) -> int:
    """The highest height of ``chain`` this core holds (in its tree, or committed)."""
    return max(
        (b.header.height for b in chain
         if b.header.height <= core.committed_height or block_hash(b.header) in core.tree),
        default=0,
    )  # fmt: skip


def test_the_block_that_closes_a_gap_adopts_its_orphans_a_few_per_step() -> None:
    sim, core, certified, peer = behind_node(5, CHAIN)
    chain = [cb.block for cb in certified]
    now = sim.local_now(sim.instances[3])
    for block in chain[-ORPHANS:]:  # their parents are unknown here: kept as orphans
        core.handle(api.MessageReceived(peer, block), now)
    assert _reached(core, chain) == 0
    gap = tuple(certified[:-ORPHANS])
    core.handle(api.MessageReceived(peer, api.SyncResponse(gap, None)), now)
    # One step of the gap (before: all 30 of its blocks, then all 10 orphans at once).
    assert 0 < _reached(core, chain) <= _SYNC_PER_STEP
    assert core.next_tick_ms(now) == now  # the rest is due at once
    steps = 0
    while _reached(core, chain) < CHAIN:
        before = _reached(core, chain)
        now += 50
        core.tick(now)
        steps += 1
        assert 0 < _reached(core, chain) - before <= _SYNC_PER_STEP + _ADOPT_PER_STEP
    assert steps >= (CHAIN - _SYNC_PER_STEP) // (_SYNC_PER_STEP + _ADOPT_PER_STEP)
    # The same chain, committed up to where its certificates reach.
    assert core.committed_height >= CHAIN - 2
    assert core.committed_hash == block_hash(chain[core.committed_height - 1].header)


def test_a_node_catching_up_through_orphans_ends_on_the_network_chain() -> None:
    sim, _, _, _ = behind_node(9, CHAIN)
    sim.heal()
    inst = sim.instances[3]

    def caught_up() -> bool:
        return inst.core is not None and inst.core.committed_height >= CHAIN

    assert sim.run_until(caught_up, 30_000)
    assert inst.committed[:CHAIN] == sim.instances[0].committed[:CHAIN]


def _misbehaved(effects: list[api.Effect], peer: bytes) -> list[api.PeerMisbehaved]:
    return [e for e in effects if isinstance(e, api.PeerMisbehaved) and e.peer == peer]


def test_a_sync_answer_is_inserted_a_few_blocks_per_step() -> None:
    sim, core, certified, peer = behind_node(11, CHAIN)
    chain = [cb.block for cb in certified]
    now = sim.local_now(sim.instances[3])
    answer = tuple(certified[: api.MAX_SYNC_BLOCKS])
    assert not _misbehaved(
        core.handle(api.MessageReceived(peer, api.SyncResponse(answer, None)), now), peer
    )
    assert 0 < _reached(core, chain) <= _SYNC_PER_STEP
    assert core.next_tick_ms(now) == now
    while _reached(core, chain) < len(answer):
        before = _reached(core, chain)
        now += 10
        assert not _misbehaved(core.tick(now), peer)
        assert 0 < _reached(core, chain) - before <= _SYNC_PER_STEP
    assert core.committed_height >= len(answer) - 2
    assert core.committed_hash == block_hash(chain[core.committed_height - 1].header)


def test_a_sync_answer_whose_block_and_qc_do_not_match_is_refused_whole() -> None:
    sim, core, certified, peer = behind_node(12, CHAIN)
    now = sim.local_now(sim.instances[3])
    answer = list(certified[:10])
    answer[7] = CertifiedBlock(answer[7].block, answer[8].qc)  # another block's QC
    out = core.handle(api.MessageReceived(peer, api.SyncResponse(tuple(answer), None)), now)
    assert _misbehaved(out, peer)
    assert core.committed_height == 0
    assert block_hash(answer[0].block.header) not in core.tree
    assert not core._syncing


def test_a_bad_certificate_in_a_queued_answer_ends_it_and_charges_the_sender() -> None:
    """Checked when its turn comes (a later tick): the blocks before it stay, the rest of the
    answer is dropped, the sender is charged as it was when the answer was one input."""
    sim, core, certified, peer = behind_node(13, CHAIN)
    chain = [cb.block for cb in certified]
    now = sim.local_now(sim.instances[3])
    bad_at = 2 * _SYNC_PER_STEP + 1
    answer = list(certified[:20])
    qc = answer[bad_at].qc
    forged = dataclasses.replace(
        qc,
        signatures=(dataclasses.replace(qc.signatures[0], signature=bytes(64)), *qc.signatures[1:]),
    )
    answer[bad_at] = CertifiedBlock(answer[bad_at].block, forged)
    out = core.handle(api.MessageReceived(peer, api.SyncResponse(tuple(answer), None)), now)
    assert not _misbehaved(out, peer)
    charged: list[api.PeerMisbehaved] = []
    for _ in range(10):
        now += 10
        charged += _misbehaved(core.tick(now), peer)
    assert len(charged) == 1
    assert charged[0].offense.fault is api.Fault.BAD_SIGNATURE
    assert _reached(core, chain) == bad_at  # the blocks before the bad one, not after
    assert not core._syncing


def test_sync_answers_beyond_the_queue_bound_are_dropped_without_fault(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sim, core, certified, peer = behind_node(14, CHAIN)
    now = sim.local_now(sim.instances[3])
    # A node that inserts nothing meanwhile (the bound is what stops the queue, not progress).
    monkeypatch.setattr(sequencer, "_SYNC_PER_STEP", 0)
    answer = api.SyncResponse(tuple(certified), None)
    fits = _SYNC_QUEUE_MAX // len(answer.blocks)
    for _ in range(fits + 3):
        assert not _misbehaved(core.handle(api.MessageReceived(peer, answer), now), peer)
    assert len(core._syncing) == fits
    assert sum(len(a.blocks) for a in core._syncing) <= _SYNC_QUEUE_MAX
