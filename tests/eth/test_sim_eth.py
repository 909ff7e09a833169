"""Ethereum transactions through the protocol on the seeded simulator: gossiped between four
nodes, proposed, certified and executed to the same state everywhere."""

from __future__ import annotations

from sequencer_node.core.sequencer import SequencerCore
from sequencer_node.sim.harness import CHAIN_ID, Simulation
from sequencer_node.wire.crypto import sign_message
from sequencer_node.wire.eth import EthTransaction
from sequencer_node.wire.messages import Transaction

from .helpers import ADDR_0, RECIPIENT, type2


def _committed(sim: Simulation) -> list[SequencerCore]:
    return [i.core for i in sim.instances if i.core is not None]


def test_four_nodes_agree_on_ethereum_transfers_sent_to_different_nodes() -> None:
    sim = Simulation(5, stakes=(1, 1, 1, 1))
    user = sim.users[0]
    fund = sign_message(Transaction(user.public_key, ADDR_0, 10**9, 0, 1, bytes(64)), user,
                        CHAIN_ID)  # fmt: skip
    assert sim.submit(fund, 0)
    assert sim.run_until(
        lambda: all(c.committed_ledger.balance(ADDR_0) == 10**9 for c in _committed(sim)), 30_000
    )
    assert CHAIN_ID == 901
    for n in range(3):  # each to another node: the pools must learn them by gossip
        raw = type2(nonce=n, value=5, max_fee=2, tip=1)
        assert sim.submit(EthTransaction(raw), n + 1)
    assert sim.run_until(
        lambda: all(c.committed_ledger.nonce(ADDR_0) == 3 for c in _committed(sim)), 30_000
    )
    cores = _committed(sim)
    assert {c.committed_ledger.balance(RECIPIENT) for c in cores} == {15}
    height = min(c.committed_height for c in cores)
    sim.run_until(lambda: all(c.committed_height >= height for c in cores), 5_000)
    assert len({c.tree.committed_hash for c in cores if c.committed_height == height}) == 1
    assert {c.committed_ledger.balance(ADDR_0) for c in cores} == {10**9 - 3 * (5 + 21_000)}
