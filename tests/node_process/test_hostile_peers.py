"""Issue 12, findings 1 and 2 on the node: what a registered but misbehaving validator can no
longer do through the node's gossip check (the peer manager's validate hook)."""

from __future__ import annotations

from pathlib import Path

import trio

from sequencer_node.core import api
from sequencer_node.shell.node_service import Node
from sequencer_node.shell.p2p_messages import TxBatch
from sequencer_node.shell.scoring import Offense
from sequencer_node.wire.messages import Transaction
from tests.node_process.helpers import USERS, make_tx
from tests.node_process.test_runner import settings

PEER = USERS[0].public_key


def _forged(nonce: int) -> Transaction:
    good = make_tx(USERS[1], USERS[0].address, 1, nonce)
    return Transaction(good.sender, good.to, good.amount, good.nonce, good.fee, bytes(64))


def _offenses(found: object) -> list[Offense]:
    if found is None:
        return []
    return [found] if isinstance(found, Offense) else list(found)  # type: ignore[call-overload]


async def test_a_gossiped_batch_is_checked_item_by_item_before_relay(tmp_path: Path) -> None:
    node = Node(settings(tmp_path, "http://127.0.0.1:1"))
    valid = [make_tx(USERS[1], USERS[0].address, 1, n) for n in range(3)]
    assert _offenses(node.check_peer_message(PEER, TxBatch(tuple(valid)))) == []
    mixed = TxBatch((valid[0], _forged(7), valid[1], _forged(8), _forged(9)))
    assert _offenses(node.check_peer_message(PEER, mixed)) == [Offense.INVALID_SIGNATURE] * 3
    assert _offenses(node.check_peer_message(PEER, _forged(1))) == [Offense.INVALID_SIGNATURE]


async def test_catch_up_requests_have_a_per_peer_budget_near_the_head_too(
    tmp_path: Path,
) -> None:
    node = Node(settings(tmp_path, "http://127.0.0.1:1"))
    other = USERS[1].public_key
    near_head = api.SyncRequest(1, 64)  # inside the core's window: no store read involved
    verdicts = [_offenses(node.check_peer_message(PEER, near_head)) for _ in range(200)]
    refused = [v for v in verdicts if v]
    assert refused
    assert all(v == [Offense.FLOOD] for v in refused)
    assert len(verdicts) - len(refused) <= 41  # the burst, and what refilled meanwhile
    assert _offenses(node.check_peer_message(other, near_head)) == []  # per peer
    await trio.sleep(0.2)  # the budget refills with time
    assert _offenses(node.check_peer_message(PEER, near_head)) == []
