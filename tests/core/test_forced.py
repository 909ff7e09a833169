"""The forced-inclusion queue and the sequencing-window rule."""

from __future__ import annotations

import pytest

from sequencer_node.core.forced import (
    ForcedInvalid,
    ForcedProblem,
    ForcedQueue,
    ForcedQueueError,
    ForcedUnknown,
)

from .helpers import KEYS, forced, transfer

A, B = KEYS[0], KEYS[1]


def entry(i: int, l1_block: int):
    return forced(i, l1_block, transfer(A, B.address, i + 1, i))


def queue() -> ForcedQueue:
    q = ForcedQueue()
    for i, blk in enumerate([10, 10, 12, 20]):
        assert q.push(entry(i, blk))
    return q


def test_push_is_idempotent_and_strict():
    q = queue()
    assert q.push(entry(1, 10)) is False
    with pytest.raises(ForcedQueueError, match="conflicts"):
        q.push(entry(1, 11))
    with pytest.raises(ForcedQueueError, match="gap"):
        q.push(entry(9, 30))
    with pytest.raises(ForcedQueueError, match="before its predecessor"):
        q.push(entry(4, 19))
    small = ForcedQueue(max_pending=1)
    small.push(entry(0, 1))
    with pytest.raises(ForcedQueueError, match="limit 1"):
        small.push(entry(1, 1))


def test_due_and_available():
    q = queue()
    assert [e.queue_index for e in q.due(l1_block=14, window=5)] == []
    assert [e.queue_index for e in q.due(l1_block=15, window=5)] == [0, 1]
    assert [e.queue_index for e in q.due(l1_block=17, window=5)] == [0, 1, 2]
    assert [e.queue_index for e in q.available(12, 10)] == [0, 1, 2]
    assert [e.queue_index for e in q.available(12, 2)] == [0, 1]
    assert [e.queue_index for e in q.available(12, 10, from_index=2)] == [2]


def test_mark_consumed():
    q = queue()
    q.mark_consumed(2)
    assert q.consumed_index == 2
    assert len(q) == 2
    assert [e.queue_index for e in q.due(100, 5)] == [2, 3]
    q.mark_consumed(7)  # consumed beyond what this node has read
    assert len(q) == 0
    assert q.next_index == 7


def _why(problem: ForcedProblem | None) -> str:
    assert isinstance(problem, ForcedInvalid), problem
    return problem.reason


def test_check_block():
    q = queue()
    e = q.entries()
    assert q.check_block([], start_index=0, l1_origin=14, window=5) is None
    msg = _why(q.check_block([], start_index=0, l1_origin=15, window=5))
    assert "forced entry 0" in msg
    assert "sequencing window" in msg
    assert q.check_block(e[:2], start_index=0, l1_origin=15, window=5) is None
    assert "after the block's L1 origin" in _why(
        q.check_block(e[:3], start_index=0, l1_origin=11, window=5)
    )
    assert "expected 0" in _why(q.check_block(e[1:2], start_index=0, l1_origin=15, window=5))
    other = entry(0, 10)
    other = type(other)(0, 10, transfer(B, A.address, 1, 0))
    assert "differs" in _why(q.check_block([other], start_index=0, l1_origin=15, window=5))
    # An entry this node has not read from L1 yet: wait, not invalid.
    unknown = q.check_block([*e, entry(4, 20)], start_index=0, l1_origin=40, window=5)
    assert unknown == ForcedUnknown(4)
    assert "not known" in unknown.reason
    assert q.check_block(e[2:], start_index=2, l1_origin=40, window=5) is None
