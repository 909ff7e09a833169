"""``seqctl load``'s answers to refusals (issue 13, the Ethereum transfers' retries): shed
transactions are sent again in nonce order per account, a nonce the node took is not sent
again, and a resend the node already holds (``DUPLICATE``, *already known*) is pending, not
refused. The node is a scripted pool that sheds a batch's transactions in any order (as the
Ethereum RPC did before it took a batch as one input)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import trio

from sequencer_node.cli.load import LoadAccount, LoadConfig, LoadRun, _Due
from sequencer_node.clients.node import NodeClient
from sequencer_node.devnet.accounts import load_account_key
from sequencer_node.wire.eth import decode_eth

CHAIN_ID = 901


class ScriptedPool:
    """``eth_send_raw`` of a node: admits each batch in the given order while it has room."""

    def __init__(self, rooms: Sequence[int], *, reverse: bool) -> None:
        self.rooms = list(rooms)
        self.reverse = reverse
        self.held: set[bytes] = set()
        self.calls: list[list[int]] = []

    async def eth_send_raw(self, raws: Sequence[bytes]) -> list[str | None]:
        txs = [decode_eth(r) for r in raws]
        self.calls.append([t.nonce for t in txs])
        room = self.rooms.pop(0) if self.rooms else len(raws)
        codes: list[str | None] = [None] * len(txs)
        order = range(len(txs) - 1, -1, -1) if self.reverse else range(len(txs))
        for i in order:
            if txs[i].hash in self.held:
                codes[i] = "DUPLICATE"
            elif room == 0:
                codes[i] = "OVERLOADED"
            else:
                room -= 1
                self.held.add(txs[i].hash)
        return codes


def _run() -> LoadRun:
    cfg = LoadConfig(("http://fake",), 100.0, 1.0, 1, 1000, 1, 1, 1.0, False, CHAIN_ID, None, 1,
                     kind="eth")  # fmt: skip
    run = LoadRun(cfg, None)
    run.chain_id = CHAIN_ID
    run.accounts = [LoadAccount(load_account_key(0), 0, b"\x22" * 20, nonce=0)]
    return run


def _send(run: LoadRun, pool: ScriptedPool, n: int) -> None:
    dues = [_Due(0, 0.0, None) for _ in range(n)]
    trio.run(run._send_batch, cast(NodeClient, pool), dues)


def test_shed_nonces_are_sent_again_in_order_and_taken_ones_are_not() -> None:
    run, pool = _run(), ScriptedPool([3, 3, 3], reverse=True)
    _send(run, pool, 6)  # the node takes 5, 4, 3 and sheds 0, 1, 2
    _send(run, pool, 3)
    _send(run, pool, 3)
    assert pool.calls == [[0, 1, 2, 3, 4, 5], [0, 1, 2], [6, 7, 8]]  # before: [3, 4, 5] again
    stats = run.stats
    assert stats.rejected == {"OVERLOADED": 3}
    assert stats.already_known == 0
    assert stats.accepted == 9
    assert len(stats.pending) == 9  # every nonce 0..8 once, all waiting to be certified


def test_a_node_that_sheds_the_last_ones_gets_them_next() -> None:
    run, pool = _run(), ScriptedPool([3, 2, 5], reverse=False)
    _send(run, pool, 6)  # takes 0, 1, 2; sheds 3, 4, 5
    _send(run, pool, 3)  # takes 3, 4; sheds 5
    _send(run, pool, 2)
    assert pool.calls == [[0, 1, 2, 3, 4, 5], [3, 4, 5], [5, 6]]
    assert run.stats.rejected == {"OVERLOADED": 4}
    assert run.accounts[0].nonce == 7


def test_a_resend_the_node_already_holds_is_pending_not_refused() -> None:
    run, pool = _run(), ScriptedPool([], reverse=False)
    first = run.kind.sign(run.accounts[0], 0, run.cfg, CHAIN_ID)
    pool.held.add(first.tx_hash)  # it took this transaction before (an answer that got lost)
    _send(run, pool, 2)
    stats = run.stats
    assert stats.rejected == {}
    assert stats.already_known == 1
    assert stats.accepted == 1
    assert first.tx_hash in stats.pending  # counted when a block shows it
    stats.block_seen(1, [first.tx_hash], 1.0)
    assert first.tx_hash in stats.certified
    assert stats.summary(1.0, 100.0)["already_known"] == 1
