"""Shared helpers of the core tests: deterministic keys and signed transfers for the execution
tests, and a simulated node left behind the network for the catch-up tests."""

from __future__ import annotations

from sequencer_node.core.sequencer import SequencerCore
from sequencer_node.sim.harness import Simulation
from sequencer_node.wire.crypto import SigningKey, sign_message
from sequencer_node.wire.messages import CertifiedBlock, ForcedTransaction, Transaction

CHAIN_ID = 901
KEYS = [SigningKey.deterministic(f"exec-test-{i}") for i in range(8)]
PROPOSER = SigningKey.deterministic("exec-test-proposer")


def transfer(
    key: SigningKey,
    to: bytes,
    amount: int,
    nonce: int,
    fee: int = 1,
    chain_id: int = CHAIN_ID,
) -> Transaction:
    tx = Transaction(key.public_key, to, amount, nonce, fee, bytes(64))
    return sign_message(tx, key, chain_id)


def forced(index: int, l1_block: int, tx: Transaction) -> ForcedTransaction:
    return ForcedTransaction(index, l1_block, tx)


def behind_node(
    seed: int, chain: int, *, transfers: bool = False
) -> tuple[Simulation, SequencerCore, list[CertifiedBlock], bytes]:
    """Node 3 down while the others certify ``chain`` blocks (one transfer submitted per
    block if ``transfers``), then up again but cut off from them. Returns the simulation,
    node 3's fresh core, the chain and node 0's key (a peer to hand it blocks as)."""
    sim = Simulation(seed, block_time_ms=100)
    sim.crash(3)
    node0 = sim.instances[0]
    if transfers:
        for k in range(chain):
            sim.submit_tx(k % len(sim.users), 0)
            sim.run_until(lambda k=k: len(node0.committed) > k, 5_000)
    done = sim.run_until(lambda: len(node0.committed) >= chain, 30_000)
    assert done, "the three live nodes commit the chain"
    blocks = list(node0.store[:chain])
    if transfers:
        assert sum(len(cb.block.transactions) for cb in blocks) >= chain // 2
    sim.partition([[0, 1, 2], [3]])
    sim.restart(3)
    core = sim.instances[3].core
    assert core is not None
    assert core.committed_height == 0
    return sim, core, blocks, node0.pk
