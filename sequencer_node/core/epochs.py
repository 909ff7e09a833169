"""Epochs: which stake table and leader schedule judge each L2 epoch.

An L2 epoch is a run of ``epoch_length`` heights. Epoch 0 uses the genesis snapshot. Epoch
``e >= 1`` uses the L1 stake snapshot named by the *anchor*, the block at the first height of
epoch ``e - 1`` on the chain being judged: L1 epoch ``l1_origin // slots_per_epoch -
snapshot_lag_epochs`` of the anchor, never before genesis (docs/protocol.md, section 2). Once
the anchor is committed every valid chain goes through it, so its table is final.

The schedule keeps the finalized snapshots read from L1 (a snapshot never changes once seen),
the committed first block of each epoch and a small cache of derived :class:`EpochInfo`.
"""

from __future__ import annotations

from collections import OrderedDict

from sequencer_node.core.api import CoreConfig, EpochInfo, StakeSnapshot
from sequencer_node.core.blocktree import BlockTree
from sequencer_node.core.election import epoch_seed, weighted_order
from sequencer_node.wire.messages import MAX_SUFFIX, BlockHeader, block_hash

#: Snapshots kept (the oldest are dropped first).
_SNAPSHOTS = 256
_INFOS = 32
_ANCHOR_MEMO = 4_096


class EpochSchedule:
    """Stake tables and leader orders per L2 epoch, derived from committed data and L1."""

    def __init__(self, config: CoreConfig, genesis: StakeSnapshot, tree: BlockTree) -> None:
        self.epoch_length = config.epoch_length
        self._slots_per_epoch = config.l1_slots_per_epoch
        self._lag = config.snapshot_lag_epochs
        self._genesis = genesis
        self._tree = tree
        self._snapshots: dict[int, StakeSnapshot] = {genesis.l1_epoch: genesis}
        self._first_committed: dict[int, BlockHeader] = {}
        self._infos: dict[tuple[int, bytes], EpochInfo] = {}
        self._anchor_memo: OrderedDict[tuple[int, bytes], bytes] = OrderedDict()

    def epoch_of(self, height: int) -> int:
        return 0 if height <= 0 else (height - 1) // self.epoch_length

    def first_height(self, epoch: int) -> int:
        return epoch * self.epoch_length + 1

    def add_snapshot(self, snap: StakeSnapshot) -> str | None:
        """Remember a finalized snapshot; the reason if it contradicts one seen before.

        A finalized snapshot never changes; the genesis one is fixed by the genesis file.
        Replacing one would let nodes derive different tables for one epoch.
        """
        known = self._snapshots.get(snap.l1_epoch)
        if snap.l1_epoch <= self._genesis.l1_epoch or known == snap:
            return None
        if known is not None:
            return f"stake snapshot {snap.l1_epoch} changed"
        self._snapshots[snap.l1_epoch] = snap
        if len(self._snapshots) > _SNAPSHOTS:
            del self._snapshots[min(self._snapshots)]
        return None

    def note_committed(self, header: BlockHeader) -> None:
        """A block was committed: if it opens an epoch, it anchors the epoch after next."""
        if header.height == self.first_height(header.epoch):
            self._first_committed[header.epoch] = header

    def committed_anchors(self, first: int, last: int) -> tuple[BlockHeader, ...]:
        """The committed first blocks of epochs ``first..last`` known here (for a snapshot)."""
        return tuple(
            self._first_committed[e] for e in range(max(first, 0), last + 1)
            if e in self._first_committed
        )  # fmt: skip

    def info(self, epoch: int, via: bytes | None = None) -> EpochInfo | None:
        """The table and schedule of ``epoch`` on the chain through block ``via`` (a block at
        or above the anchor's height; not needed once the anchor is committed), or None while
        the anchor or its snapshot is unknown here."""
        snap = self._genesis
        anchor_hash = self._tree.genesis_hash
        if epoch > 0:
            anchor = self._anchor(epoch, via)
            if anchor is None:
                return None
            anchor_hash = block_hash(anchor)
            cached = self._infos.get((epoch, anchor_hash))
            if cached is not None:
                return cached
            l1_epoch = max(
                self._genesis.l1_epoch, anchor.l1_origin // self._slots_per_epoch - self._lag
            )
            found = self._snapshots.get(l1_epoch)
            if found is None:
                return None
            snap = found
        else:
            cached = self._infos.get((0, anchor_hash))
            if cached is not None:
                return cached
        info = EpochInfo.of(snap, weighted_order(snap.table(), epoch_seed(snap.seed, epoch)))
        self._infos[(epoch, anchor_hash)] = info
        if len(self._infos) > _INFOS:
            self._infos.pop(next(iter(self._infos)))
        return info

    def known_signer(self, who: bytes) -> bool:
        """Whether ``who`` has stake in any epoch table derived here (cheap spam filter)."""
        return any(who in info.table for info in self._infos.values())

    def table_of_stake_epoch(self, stake_epoch: int) -> EpochInfo | None:
        """A derived epoch whose table comes from L1 epoch ``stake_epoch``'s snapshot."""
        return next((i for i in self._infos.values() if i.stake_epoch == stake_epoch), None)

    def _anchor(self, epoch: int, via: bytes | None) -> BlockHeader | None:
        """The block at the first height of epoch ``epoch - 1`` on the chain through ``via``."""
        height = self.first_height(epoch - 1)
        committed = self._first_committed.get(epoch - 1)
        if committed is not None or height <= self._tree.committed_height or via is None:
            return committed  # committed: every valid chain goes through it
        memo = self._anchor_memo.get((epoch, via))
        if memo is None:
            memo = self._tree.ancestor_at(via, height, 3 * self.epoch_length + 2 + MAX_SUFFIX)
            if memo is None:
                return None
            self._anchor_memo[(epoch, via)] = memo
            if len(self._anchor_memo) > _ANCHOR_MEMO:
                self._anchor_memo.popitem(last=False)
        return self._tree.header(memo)


__all__ = ["EpochSchedule"]
