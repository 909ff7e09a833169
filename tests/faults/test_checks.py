"""The scenario's end checks on their own: the set check's wait for certified transactions."""

from __future__ import annotations

import time
from typing import Any, cast

import trio
import trio.testing

from tests.faults import checks
from tests.faults.load import Ack, History
from tests.faults.network import FaultNet

LATE = b"\x07" * 32


class _GrowingNet:
    """One node whose chain is at height 10 when the check starts and at 11 (with the late
    transaction) from its second look on; each block takes 3 s to fetch."""

    def __init__(self) -> None:
        self.looks = 0

    async def heights(self) -> list[int | None]:
        self.looks += 1
        return [10 if self.looks == 1 else 11]

    async def block(self, i: int, height: int) -> dict[str, Any] | None:
        await trio.sleep(3.0)
        txs = [{"hash": "0x" + LATE.hex()}] if height == 11 else []
        return {"height": height, "transactions": txs}


async def test_a_long_first_fetch_does_not_use_up_the_wait_for_the_last_blocks(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The first fetch (10 blocks, 8 at a time: 6 s) outlasts the 5 s limit; the transaction
    # acknowledged last is in block 11, certified meanwhile. The check reads the head again
    # after its first fetch instead of reporting the transaction lost (a soak's false loss).
    history = History()
    history.acked[LATE] = Ack(account=0, nonce=1, node=0, at=time.time() - 1)
    net = _GrowingNet()
    chain = checks.Chain()
    result = await checks.wait_all_certified(cast(FaultNet, net), history, chain, 0, 5.0)
    assert result.lost == []
    assert chain.height == 11
