"""Fee models on the seeded simulator (issue 15): every node prices blocks from the finalized L1
fee data it is fed, agrees on the state, waits for missing L1 data (also after a restart), and
takes an owner's model change from the next epoch."""

from __future__ import annotations

import dataclasses

from sequencer_node.core import api
from sequencer_node.core.fees import FLAT, OP_ECOTONE, FeeParams, L1FeeInfo
from sequencer_node.core.ledger import Ledger
from sequencer_node.core.sequencer import SequencerCore
from sequencer_node.sim.harness import Simulation
from sequencer_node.sim.instance import Instance

ECOTONE = FeeParams(model=OP_ECOTONE, initial_base_fee=1_000, min_base_fee=10)


def _traffic(sim: Simulation, rounds: int) -> None:
    for r in range(rounds):
        sim.submit_tx(r % 4, r % 4)
        sim.run_for(100)


def test_ecotone_network_pays_vaults_and_agrees():
    sim = Simulation(11, fees=ECOTONE)
    _traffic(sim, 30)
    sim.run_for(2_000)
    core = sim.honest()[0].core
    assert core is not None
    assert core.committed_height > 10
    led = core.committed_ledger
    assert led.balance(ECOTONE.base_fee_vault) > 0
    assert led.balance(ECOTONE.l1_fee_vault) > 0
    state = led.fee_state()
    assert state is not None
    assert state.l1_origin is not None
    assert state.l1_origin > 0
    # every user's transfers went through: each paid its whole fee
    assert sum(led.nonce(u.address) for u in sim.users) == 30


def test_a_blob_fee_spike_reaches_the_l1_data_fee():
    sim = Simulation(12, fees=ECOTONE)
    for n in range(20, 400):
        sim.l1_fee_data[n] = L1FeeInfo(n, 10**9, 10**12)
    _traffic(sim, 10)
    sim.run_for(6_000)
    core = sim.honest()[0].core
    assert core is not None
    state = core.committed_ledger.fee_state()
    assert state is not None
    assert state.l1_origin is not None
    assert state.l1_origin >= 20
    assert state.l1_blob_base_fee == 10**12


def test_missing_l1_fee_data_stalls_then_resumes():
    sim = Simulation(13, fees=ECOTONE)
    sim.run_for(1_000)
    held: list[tuple[Instance, api.Event]] = []
    real = sim._l1_event

    def hold_fees(inst: Instance, event: api.Event, *, route: bool = True) -> None:
        if isinstance(event, api.L1FeeInfoSeen):
            held.append((inst, event))
            return
        real(inst, event, route=route)

    sim._l1_event = hold_fees  # type: ignore[method-assign]
    sim.run_for(3_000)
    core = sim.honest()[0].core
    assert core is not None
    stalled_origin = core.committed_ledger.fee_state().l1_origin  # type: ignore[union-attr]
    # blocks go on with the last origin whose data is known: the fee origin does not pass it
    sim.run_for(1_000)
    assert core.committed_ledger.fee_state().l1_origin == stalled_origin  # type: ignore[union-attr]
    sim._l1_event = real  # type: ignore[method-assign]
    for inst, ev in held:
        real(inst, ev)
    sim.run_for(2_000)
    assert core.committed_ledger.fee_state().l1_origin > stalled_origin  # type: ignore[union-attr,operator]


def test_restart_replays_a_fee_chain_once_the_l1_data_is_back():
    sim = Simulation(14, fees=ECOTONE)
    _traffic(sim, 10)
    sim.run_for(1_000)
    inst = sim.honest()[1]
    assert inst.core is not None
    height = inst.core.committed_height
    root = inst.core.committed_ledger.state_root()
    # A fresh core over the stored chain, without L1 fee data: replay stops and waits.
    bare = SequencerCore(sim.config_for(inst), sim.genesis, chain=tuple(inst.store))
    assert bare.committed_height == 0
    assert bare.status().l1_fee_next == 0
    bare.handle(api.L1HeadChanged(sim.l1_head, sim.l1_finalized), sim.now)
    for e in range(sim.finalized_l1_epoch + 1):
        bare.handle(api.StakeSnapshotAvailable(sim.snapshot(e)), sim.now)
    bare.handle(api.L1FeeInfoSeen(sim.l1_fee_infos(0, sim.l1_finalized)), sim.now)
    bare.tick(sim.now)
    assert bare.committed_height >= height - 2
    if bare.committed_height == height:
        assert bare.committed_ledger.state_root() == root
    # And inside the simulation, a crashed node comes back and follows.
    sim.crash(inst.idx)
    sim.run_for(500)
    sim.restart(inst.idx)
    _traffic(sim, 5)
    sim.run_for(3_000)
    assert inst.core is not None
    assert inst.core.committed_height > height


def test_owner_change_takes_effect_at_the_next_epoch_start():
    sim = Simulation(15, fees=FeeParams(model=FLAT), epoch_length=8)
    sim.l1_fee_data[12] = L1FeeInfo(12, 10**9, 1, fee_config=ECOTONE)
    _traffic(sim, 5)
    sim.run_for(3_000)
    sim.tx_fee = 10**13
    _traffic(sim, 5)
    sim.run_for(3_000)
    core = sim.honest()[0].core
    assert core is not None
    state = core.committed_ledger.fee_state()
    assert state is not None
    assert state.params == ECOTONE
    assert state.pending is None
    assert core.committed_ledger.balance(ECOTONE.base_fee_vault) > 0
    # The switch happened at an epoch's first block: every block of the epoch that saw
    # the change ran under flat (no base fee paid before the switch height).
    ledgers = _replay_ledgers(sim)
    switched = [
        h for h, led in ledgers if (st := led.fee_state()) and st.params.model == OP_ECOTONE
    ]
    first = min(switched)
    assert (first - 1) % 8 == 0


def _replay_ledgers(sim: Simulation) -> list[tuple[int, Ledger]]:
    """(height, ledger after it) of the first honest node's chain, replayed from scratch."""
    inst = sim.honest()[0]
    out: list[tuple[int, Ledger]] = []
    cfg = dataclasses.replace(sim.config_for(inst), key=None)
    core = SequencerCore(cfg, sim.genesis, l1_fees=sim.l1_fee_infos(0, sim.l1_finalized))
    for cb in inst.store:
        core._replay([cb])
        out.append((cb.block.header.height, core.committed_ledger))
    return out


def test_restart_without_fee_data_replays_the_whole_stored_chain_once_it_is_back() -> None:
    """A restart whose store lacks L1 fee data (none at all, or only the older part) stops the
    replay at the first block that needs it and resumes it when the data arrives: all of the
    stored committed chain, to its exact state root, without reporting those blocks committed
    again. Before, the rest went through the certified-block path, whose commit rule left the
    top of the stored chain uncommitted (its committing QC is not stored)."""
    for seed in (14, 21, 33):
        sim = Simulation(seed, fees=ECOTONE)
        _traffic(sim, 10)
        sim.run_for(1_500)
        inst = sim.honest()[1]
        assert inst.core is not None
        height = inst.core.committed_height
        root = inst.core.committed_ledger.state_root()
        needed = sim.l1_finalized
        for known in (0, needed // 2):
            fees = sim.l1_fee_infos(0, known - 1) if known else ()
            bare = SequencerCore(sim.config_for(inst), sim.genesis, chain=tuple(inst.store),
                                 l1_fees=fees)  # fmt: skip
            assert bare.committed_height < height
            out = bare.handle(api.L1HeadChanged(sim.l1_head, sim.l1_finalized), sim.now)
            for e in range(sim.finalized_l1_epoch + 1):
                out += bare.handle(api.StakeSnapshotAvailable(sim.snapshot(e)), sim.now)
            start = bare.status().l1_fee_next
            assert start is not None
            out += bare.handle(api.L1FeeInfoSeen(sim.l1_fee_infos(start, needed)), sim.now)
            out += bare.tick(sim.now)
            assert bare.committed_height == height, (seed, known)
            assert bare.committed_ledger.state_root() == root
            assert not [e for e in out if isinstance(e, api.BlockCommitted)]
