"""Restart from a snapshot: a core built from a ledger snapshot plus the chain suffix is the
core a full replay builds (state, head, epoch tables), and it keeps the chain going."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pytest

import sequencer_node.sim.harness as harness
from sequencer_node.core import api
from sequencer_node.core.ledger import Ledger
from sequencer_node.core.sequencer import SequencerCore
from sequencer_node.sim.harness import Simulation
from sequencer_node.wire.messages import Block, CertifiedBlock


def simulated_chain(seed: int = 31, ms: int = 12_000) -> tuple[Simulation, list[CertifiedBlock]]:
    """A simulated chain over several epochs with a stake change at a boundary, transfers
    and a forced transaction."""
    sim = Simulation(seed, epoch_length=8)
    sim.change_stakes(3, (5, 5, 5, 1))
    sim.queue_forced(2, amount=7)
    for step in range(ms // 500):
        for user in range(4):
            sim.submit_tx(user, (user + step) % 4, amount=user + 1)
        sim.run_for(500)
    store = list(sim.instances[0].store)
    assert len(store) > 40, len(store)
    return sim, store


def _cores(
    sim: Simulation, chain: Sequence[CertifiedBlock], cut: int
) -> tuple[SequencerCore, SequencerCore]:
    """(full replay of ``chain``, restart from the snapshot at height ``cut`` + suffix)."""
    cfg = dataclasses.replace(sim.config_for(sim.instances[0]), key=None)
    full = SequencerCore(cfg, sim.genesis, chain=chain)
    below = SequencerCore(cfg, sim.genesis, chain=chain[:cut])
    snap = below.snapshot()
    assert snap is not None
    assert snap.height == cut
    stored = api.ChainSnapshot.from_bytes(snap.to_bytes())  # through its durable form
    restarted = SequencerCore(cfg, sim.genesis, snapshot=stored, chain=chain[cut:])
    for core in (full, restarted):
        for e in range(sim.finalized_l1_epoch + 1):
            core.handle(api.StakeSnapshotAvailable(sim.snapshot(e)), 0)
    return full, restarted


@pytest.mark.parametrize("suffix", [0, 1, 13])
def test_snapshot_plus_suffix_equals_full_replay(suffix: int) -> None:
    sim, chain = simulated_chain()
    full, restarted = _cores(sim, chain, len(chain) - suffix)
    a, b = full.status(), restarted.status()
    assert (b.committed_height, b.committed_hash, b.state_root) == (
        a.committed_height,
        a.committed_hash,
        a.state_root,
    )
    assert b.round == a.round
    assert restarted.committed_ledger.forced_index() == full.committed_ledger.forced_index() == 1
    assert restarted.committed_ledger.accounts() == full.committed_ledger.accounts()
    top = full.epoch_of(a.committed_height)
    assert top >= 3, "the chain must cross several epochs for this test to mean anything"
    # The tables of the current and the next epoch (whose anchors are committed) agree,
    # so both judge the next epoch's blocks alike.
    for epoch in range(max(0, top - 2), top + 2):
        assert restarted.epoch_info(epoch) == full.epoch_info(epoch), epoch
    assert full.epoch_info(top + 1) is not None


def test_a_restarted_core_accepts_the_next_blocks_like_a_full_replay() -> None:
    sim, chain = simulated_chain()
    cut = len(chain) - 12
    full, restarted = _cores(sim, chain[:cut], cut - 5)
    # The next blocks, some of them in the next epoch, come as certified blocks (catch-up).
    for core in (full, restarted):
        core.handle(api.CertifiedBlocksReceived(tuple(chain[cut:])), sim.now)
    assert restarted.committed_height == full.committed_height > cut
    assert restarted.status().state_root == full.status().state_root


def test_a_snapshot_whose_state_is_not_its_blocks_is_refused() -> None:
    sim, chain = simulated_chain()
    cfg = dataclasses.replace(sim.config_for(sim.instances[0]), key=None)
    snap = SequencerCore(cfg, sim.genesis, chain=chain[:30]).snapshot()
    assert snap is not None
    # An earlier committed state that differs (empty blocks, e.g. an epoch's first, keep it).
    other = next(
        ledger
        for k in range(29, 0, -1)
        if (
            ledger := SequencerCore(cfg, sim.genesis, chain=chain[:k]).committed_ledger
        ).state_root()
        != snap.ledger.state_root()
    )
    with pytest.raises(ValueError, match="does not match"):
        SequencerCore(cfg, sim.genesis, snapshot=dataclasses.replace(snap, ledger=other))
    forged = api.ChainSnapshot(snap.head, snap.anchors, other).to_bytes()
    with pytest.raises(ValueError, match="not the state of its head"):
        api.ChainSnapshot.from_bytes(forged)
    # A flipped byte in the accounts: the recomputed root no longer matches.
    data = bytearray(snap.to_bytes())
    data[-3] ^= 1
    with pytest.raises(ValueError, match="ledger snapshot"):
        api.ChainSnapshot.from_bytes(bytes(data))
    # A suffix that does not continue the snapshot's block is refused too.
    with pytest.raises(ValueError, match="broken"):
        SequencerCore(cfg, sim.genesis, snapshot=snap, chain=chain[31:])


def test_ledger_snapshot_bytes_are_canonical() -> None:
    a = Ledger.genesis({bytes([i]) * 20: i + 1 for i in range(50)})
    b = Ledger.genesis({bytes([i]) * 20: i + 1 for i in reversed(range(50))})
    assert a.to_bytes() == b.to_bytes()
    assert Ledger.from_bytes(a.to_bytes()).state_root() == a.state_root()


def test_nodes_restarted_from_snapshots_keep_the_chain_going(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every restart in the simulator goes through a snapshot of all but the last few
    stored blocks; crashed nodes come back, catch up and the chain stays safe and live."""
    snapshots: list[int] = []

    def from_snapshot(
        config: api.CoreConfig,
        genesis: api.Genesis,
        *,
        persisted: api.PersistedState | None = None,
        chain: Sequence[CertifiedBlock] = (),
        certified: Sequence[CertifiedBlock] = (),
        uncertified: Sequence[Block] = (),
    ) -> SequencerCore:
        cut = len(chain) - 3
        if cut < 1:
            return SequencerCore(config, genesis, persisted=persisted, chain=chain,
                                 certified=certified, uncertified=uncertified)  # fmt: skip
        below = SequencerCore(dataclasses.replace(config, key=None), genesis, chain=chain[:cut])
        snap = below.snapshot()
        assert snap is not None
        snapshots.append(snap.height)
        return SequencerCore(
            config,
            genesis,
            persisted=persisted,
            snapshot=api.ChainSnapshot.from_bytes(snap.to_bytes()),
            chain=chain[cut:],
            certified=certified,
            uncertified=uncertified,
        )

    monkeypatch.setattr(harness, "SequencerCore", from_snapshot)
    sim = Simulation(41, epoch_length=8)
    sim.change_stakes(3, (3, 3, 3, 2))
    sim.run_for(3_000)
    for victim in (1, 2, 0):
        sim.crash(victim)
        sim.run_for(2_000)
        sim.restart(victim)
        sim.run_for(2_000)
    sim.crash(0)
    sim.crash(1)
    sim.run_for(500)
    sim.restart(0)
    sim.restart(1)
    sim.check_liveness()
    assert len(snapshots) >= 5, snapshots
    top = max(len(i.committed) for i in sim.instances)
    assert all(len(i.committed) >= top - 3 for i in sim.instances), [
        len(i.committed) for i in sim.instances
    ]
