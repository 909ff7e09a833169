"""Pure gossip bookkeeping: a bounded seen-cache, fan-out choice and ingress tx batching.

Nothing here does I/O or reads a clock: ``now`` (seconds) and the ``random.Random`` used for
fan-out are arguments, so a seed replays the same choices.

* :class:`SeenCache` remembers message ids (``sha256`` of the canonical bytes, the same value
  as :func:`sequencer_node.wire.codec.message_id`) for ``ttl_s`` seconds, at most
  ``max_entries`` of them (oldest forgotten first). A message whose id is in the cache is
  neither delivered nor relayed again.
* :func:`choose_targets` picks the peers to relay to: all of them but the source for small
  networks (``fanout=None`` or fewer candidates than ``fanout``), else a random subset of
  size ``fanout``.
* :class:`TxBatcher` collects client transactions for up to ``max_delay_s`` or ``max_txs``
  and emits one :class:`~sequencer_node.shell.p2p_messages.TxBatch` frame.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Collection, Iterable

from sequencer_node.shell.p2p_messages import MAX_TX_BATCH, TxBatch
from sequencer_node.wire.messages import Transaction


class SeenCache:
    """Message ids seen recently, bounded by count and age."""

    def __init__(self, max_entries: int = 100_000, ttl_s: float = 300.0) -> None:
        if max_entries < 1 or ttl_s <= 0:
            raise ValueError("the seen-cache needs max_entries >= 1 and ttl_s > 0")
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self._seen: OrderedDict[bytes, float] = OrderedDict()

    def add(self, key: bytes, now: float) -> bool:
        """Record ``key``; True if it was not seen within the window (deliver it)."""
        self._expire(now)
        if key in self._seen:
            return False
        self._seen[key] = now
        if len(self._seen) > self.max_entries:
            self._seen.popitem(last=False)
        return True

    def __contains__(self, key: bytes) -> bool:
        return key in self._seen

    def __len__(self) -> int:
        return len(self._seen)

    def _expire(self, now: float) -> None:
        horizon = now - self.ttl_s
        # Insertion order is time order (now never goes back in the shell's monotonic clock).
        while self._seen:
            key, t = next(iter(self._seen.items()))
            if t > horizon:
                break
            del self._seen[key]


def choose_targets(
    peers: Iterable[bytes],
    *,
    exclude: Collection[bytes] = (),
    fanout: int | None,
    rng: random.Random,
) -> list[bytes]:
    """The peers to send a gossip message to (sorted candidates, so a seed is replayable)."""
    candidates = sorted(p for p in peers if p not in exclude)
    if fanout is None or len(candidates) <= fanout:
        return candidates
    return sorted(rng.sample(candidates, fanout))


class TxBatcher:
    """Collects transactions at ingress into TxBatch frames."""

    def __init__(self, max_txs: int = 512, max_delay_s: float = 0.005) -> None:
        if not 1 <= max_txs <= MAX_TX_BATCH:
            raise ValueError(f"max_txs must be in [1, {MAX_TX_BATCH}]")
        self.max_txs = max_txs
        self.max_delay_s = max_delay_s
        self._txs: list[Transaction] = []
        self._first_at: float | None = None

    def add(self, tx: Transaction, now: float) -> TxBatch | None:
        """Queue ``tx``; returns a full batch when ``max_txs`` is reached."""
        if self._first_at is None:
            self._first_at = now
        self._txs.append(tx)
        return self.flush() if len(self._txs) >= self.max_txs else None

    def deadline(self) -> float | None:
        """When the pending batch must go out (None if nothing is pending)."""
        return None if self._first_at is None else self._first_at + self.max_delay_s

    def poll(self, now: float) -> TxBatch | None:
        """The pending batch if its deadline has passed."""
        deadline = self.deadline()
        return self.flush() if deadline is not None and now >= deadline else None

    def flush(self) -> TxBatch | None:
        if not self._txs:
            return None
        batch = TxBatch(tuple(self._txs))
        self._txs, self._first_at = [], None
        return batch

    def __len__(self) -> int:
        return len(self._txs)
