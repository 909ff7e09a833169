"""The forced-inclusion queue: L2 transactions queued on L1, and the sequencing window.

A user who is censored queues a transaction on L1. The L1 numbers the entries 0, 1, 2, ...
(``queue_index``) and records the L1 block that queued each (``l1_block``). The L2 chain
consumes them in order: a block carries a contiguous run of entries starting at the chain's
``forced_index`` (see :meth:`sequencer_node.core.ledger.Ledger.forced_index`).

Sequencing window rule (as the OP Stack's sequencing window and Arbitrum's delayed inbox): an
entry queued in L1 block ``b`` is *due* in every L2 block whose L1 origin is at least
``b + window``; such a block must have consumed it (its ``forced_index`` after execution is
above the entry's ``queue_index``). A block may only include entries its L1 origin has seen
(``entry.l1_block <= l1_origin``). The L1 inbox rejects a batch that breaks the rule, so the
leader includes due entries first and, in practice, every available entry eagerly.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from sequencer_node.wire.messages import ForcedTransaction


class ForcedQueueError(ValueError):
    """An entry that does not continue the L1 queue (gap, reordering, conflicting content)."""


@dataclass(frozen=True, slots=True)
class ForcedInvalid:
    """A block's forced entries break the queue or the sequencing window: refuse the block."""

    reason: str


@dataclass(frozen=True, slots=True)
class ForcedUnknown:
    """A block includes an entry this node has not read from L1 yet: judge it later, once the
    node's L1 view has caught up (not a fault of the proposer)."""

    queue_index: int

    @property
    def reason(self) -> str:
        return f"forced entry {self.queue_index} is not known on L1 (yet) at this node"


#: Why a block's forced entries cannot be accepted now (see :meth:`ForcedQueue.check_block`).
ForcedProblem = ForcedInvalid | ForcedUnknown


class ForcedQueue:
    """Entries seen on L1 and not yet consumed by the local chain, in queue order."""

    def __init__(self, *, start_index: int = 0, max_pending: int = 100_000) -> None:
        if start_index < 0 or max_pending < 1:
            raise ValueError("start_index must be >= 0 and max_pending >= 1")
        self._entries: deque[ForcedTransaction] = deque()
        #: queue_index of ``_entries[0]`` (== the consumed position).
        self._first = start_index
        self.max_pending = max_pending

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def consumed_index(self) -> int:
        """Entries below this index were consumed by the chain."""
        return self._first

    @property
    def next_index(self) -> int:
        """The queue index the next entry read from L1 must carry."""
        return self._first + len(self._entries)

    def entries(self) -> tuple[ForcedTransaction, ...]:
        return tuple(self._entries)

    def push(self, entry: ForcedTransaction) -> bool:
        """Append an entry read from L1; False if it was already known (same content).

        Raises:
            ForcedQueueError: a gap, conflicting content for a known index, an L1 block
                number going backwards, or more than ``max_pending`` unconsumed entries.
        """
        idx = entry.queue_index
        if idx < self.next_index:
            if idx >= self._first and self._entries[idx - self._first] != entry:
                raise ForcedQueueError(f"forced entry {idx} conflicts with the one already seen")
            return False
        if idx > self.next_index:
            raise ForcedQueueError(
                f"forced entry {idx} leaves a gap: expected {self.next_index}; "
                "re-read the L1 queue from the expected index"
            )
        if self._entries and entry.l1_block < self._entries[-1].l1_block:
            raise ForcedQueueError(
                f"forced entry {idx} is from L1 block {entry.l1_block}, "
                f"before its predecessor's {self._entries[-1].l1_block}"
            )
        if len(self._entries) >= self.max_pending:
            raise ForcedQueueError(
                f"{len(self._entries)} forced entries are pending (limit {self.max_pending}); "
                "the chain must consume some before more are read from L1"
            )
        self._entries.append(entry)
        return True

    def mark_consumed(self, forced_index: int) -> None:
        """The chain has consumed every entry below ``forced_index`` (a committed block)."""
        while self._entries and self._first < forced_index:
            self._entries.popleft()
            self._first += 1
        if self._first < forced_index:  # consumed entries this node has not read yet
            self._first = forced_index

    def available(
        self, l1_origin: int, limit: int, *, from_index: int | None = None
    ) -> list[ForcedTransaction]:
        """Up to ``limit`` entries, from ``from_index`` (default: the consumed position), that
        a block with L1 origin ``l1_origin`` may include."""
        start = self._first if from_index is None else from_index
        out: list[ForcedTransaction] = []
        for i in range(max(0, start - self._first), len(self._entries)):
            e = self._entries[i]
            if e.l1_block > l1_origin or len(out) >= limit:
                break
            out.append(e)
        return out

    def due(
        self, l1_block: int, window: int, *, from_index: int | None = None
    ) -> list[ForcedTransaction]:
        """Entries (from ``from_index``, default the consumed position) that a block with L1
        origin ``l1_block`` must include: every one queued at or before ``l1_block - window``.
        """
        start = self._first if from_index is None else from_index
        out: list[ForcedTransaction] = []
        for i in range(max(0, start - self._first), len(self._entries)):
            e = self._entries[i]
            if e.l1_block + window > l1_block:
                break
            out.append(e)
        return out

    def check_block(
        self,
        forced: Sequence[ForcedTransaction],
        *,
        start_index: int,
        l1_origin: int,
        window: int,
    ) -> ForcedProblem | None:
        """Why a block's forced entries break the queue or the window (None if they are fine).

        ``start_index`` is the parent's ``forced_index``. The entries must be exactly the
        queue's entries from there on, all visible at ``l1_origin``, and after them no entry
        that is due at ``l1_origin`` may be left out. Entries this node has not read from L1
        yet cannot be checked (:class:`ForcedUnknown`): the caller should wait for its L1 view to
        reach ``l1_origin``.
        """
        problem = self._check_entries(forced, start_index, l1_origin)
        if problem is not None:
            return problem
        left = self.due(l1_origin, window, from_index=start_index + len(forced))
        if left:
            e = left[0]
            return ForcedInvalid(
                f"forced entry {e.queue_index} (queued in L1 block {e.l1_block}) is past the "
                f"sequencing window of {window} L1 blocks at L1 origin {l1_origin} "
                "and must be included"
            )
        return None

    def _check_entries(
        self, forced: Sequence[ForcedTransaction], start_index: int, l1_origin: int
    ) -> ForcedProblem | None:
        if start_index < self._first:
            return ForcedInvalid(
                f"block starts at forced index {start_index}, already consumed here"
            )
        for i, entry in enumerate(forced):
            idx = start_index + i
            if entry.queue_index != idx:
                return ForcedInvalid(
                    f"forced entry {i} has queue index {entry.queue_index}, expected {idx}"
                )
            if idx >= self.next_index:
                return ForcedUnknown(idx)
            if self._entries[idx - self._first] != entry:
                return ForcedInvalid(f"forced entry {idx} differs from the one queued on L1")
            if entry.l1_block > l1_origin:
                return ForcedInvalid(
                    f"forced entry {idx} was queued in L1 block {entry.l1_block}, "
                    f"after the block's L1 origin {l1_origin}"
                )
        return None
