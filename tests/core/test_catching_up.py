"""A node far behind the network (issue 13, "a node behind at overload never catches up"):
it knows how far behind it is, and it executes what the network certified without checking
each transfer's signature again.

Under 2,400 tx/s offered a node restarted 15 s into the load stayed behind for good (266
against 314 after 196 s, ``scripts/resume_after_overload.py``): it spent as much CPU per
transaction as the nodes that kept up (a signature check for every gossiped transaction and
again for every transaction of every block it caught up on), so with an equal share of the
machine it never gained on them. A QC vouches for its block's transfers (validators with
more than 2/3 of the stake executed it, each checking every signature: at least one honest),
so a certified block is executed without those checks; forced entries are still checked
(``tests/core/test_ledger.py``), and a block that is only proposed still is."""

from __future__ import annotations

import pytest

from sequencer_node.core import api, ledger
from sequencer_node.wire.messages import Block, Transaction, block_hash
from tests.core.helpers import behind_node

CHAIN = 30
#: The newest blocks reach the behind node as proposals (orphans: their parents are missing).
ORPHANS = 6


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The transfers whose signature block execution checks (their senders)."""
    seen: list[bytes] = []
    real = ledger.verify_tx_signature

    def counting(tx: Transaction, chain_id: int) -> bool:
        seen.append(tx.sender)
        return real(tx, chain_id)

    monkeypatch.setattr(ledger, "verify_tx_signature", counting)
    return seen


def _txs(blocks: list[Block]) -> int:
    return sum(len(b.transactions) for b in blocks)


def test_a_node_knows_how_far_behind_it_is() -> None:
    sim, core, certified, peer = behind_node(3, CHAIN, transfers=True)
    now = sim.local_now(sim.instances[3])
    assert core.blocks_behind == 0
    newest = certified[-1].block
    core.handle(api.MessageReceived(peer, newest), now)  # an orphan; its justify is a QC
    assert newest.justify is not None
    assert core.blocks_behind == newest.justify.height == CHAIN - 1
    core.handle(api.MessageReceived(peer, api.SyncResponse(tuple(certified), None)), now)
    while core.next_tick_ms(now) == now and core.committed_height < CHAIN - 2:
        now += 10
        core.tick(now)
    assert core.committed_height >= CHAIN - 2
    assert core.blocks_behind == 0  # it holds the block its high QC names


def test_certified_blocks_are_executed_without_checking_their_transfers_again(
    checks: list[bytes],
) -> None:
    sim, core, certified, peer = behind_node(4, CHAIN, transfers=True)
    checks.clear()  # those of the nodes that built the chain
    chain = [cb.block for cb in certified]
    now = sim.local_now(sim.instances[3])
    for block in chain[-ORPHANS:]:  # proposals: orphans until the gap closes
        core.handle(api.MessageReceived(peer, block), now)
    gap = tuple(certified[:-ORPHANS])
    core.handle(api.MessageReceived(peer, api.SyncResponse(gap, None)), now)
    for _ in range(100):
        if core.next_tick_ms(now) != now:
            break
        now += 10
        core.tick(now)
    top = block_hash(chain[-1].header)
    assert top in core.tree or core.committed_hash == top
    # The gap came certified; so did every orphan but the newest (the next one's justify
    # certifies it). Only the newest, whose QC this node has not seen, is judged as a
    # proposal, its every transfer checked.
    assert len(checks) == len(chain[-1].transactions)
    assert _txs(chain) > len(checks)
    # Executed all the same: the state is the network's.
    at = core.committed_height
    assert at >= CHAIN - 2
    assert core.committed_ledger.state_root() == certified[at - 1].block.header.state_root


def test_a_proposal_still_has_every_transfer_checked(checks: list[bytes]) -> None:
    sim, core, certified, peer = behind_node(5, CHAIN, transfers=True)
    checks.clear()  # those of the nodes that built the chain
    now = sim.local_now(sim.instances[3])
    # The chain up to the newest block with transfers, which then comes as a proposal.
    k = max(i for i, cb in enumerate(certified) if cb.block.transactions)
    assert k >= CHAIN - 3
    core.handle(api.MessageReceived(peer, api.SyncResponse(tuple(certified[:k]), None)), now)
    for _ in range(100):
        if core.next_tick_ms(now) != now:
            break
        now += 10
        core.tick(now)
    assert checks == []
    newest = certified[k].block
    core.handle(api.MessageReceived(peer, newest), now)
    assert block_hash(newest.header) in core.tree
    assert checks == [tx.sender for tx in newest.transactions]
