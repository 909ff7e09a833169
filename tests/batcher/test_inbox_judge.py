"""The batcher's view of the inbox rules' inputs (InboxJudge), against an L1 whose answers
the test controls: the fork's blob limit follows the head (it was read once, at the first
sync, and never refreshed across a fork change)."""

from __future__ import annotations

from typing import Any

from sequencer_node.batcher.l1_view import InboxJudge
from sequencer_node.clients.l1 import ForcedQueue, L1Client
from sequencer_node.wire.messages import ZERO_HASH, BatchHeader


class ForkingL1(L1Client):
    """Prague (9 blobs per transaction) until block 10, then Osaka (6); the head is what the
    test says."""

    head_number = 0

    async def config(self) -> dict[str, Any]:
        return {
            "l2ChainId": 901,
            "inboxFirstHeight": 1,
            "unbondingEpochs": 4,
            "sequencingWindow": 64,
            "slotsPerEpoch": 32,
            "forks": [[0, "prague"], [10, "osaka"]],
        }

    async def status(self) -> dict[str, Any]:
        return {"head": self.head_number, "headSlot": self.head_number}

    async def forced_queue(self, start: int = 0, count: int = 100) -> ForcedQueue:
        return ForcedQueue(0, 0, ())


async def test_the_forks_blob_limit_is_refreshed_across_a_fork_change() -> None:
    l1 = ForkingL1("http://127.0.0.1:9")
    judge = InboxJudge(l1)
    await judge.refresh()
    assert judge.max_blobs() == 9
    header = BatchHeader(
        901, 0, 0, 1, 4, b"\x01" * 32, ZERO_HASH, b"\x02" * 32, 0, 0, (b"\x03" * 32,) * 9,
        b"\x04" * 32, 1000,
    )  # fmt: skip
    assert await judge.judge(header, None) is None
    l1.head_number = 9  # the next block is the first under Osaka
    await judge.refresh()
    assert judge.max_blobs() == 6
    refusal = await judge.judge(header, None)
    assert refusal is not None
    assert "osaka allows at most 6" in refusal.message
    await l1.aclose()
