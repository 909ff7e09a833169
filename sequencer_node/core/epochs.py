"""Epochs: which stake table and leader schedule judge each L2 epoch.

An L2 epoch is a run of ``epoch_length`` heights. Epochs below ``seed_anchor_epochs`` use the
genesis snapshot. Epoch ``e`` uses the L1 stake snapshot named by the *anchor*, the block at the
first height of epoch ``e - seed_anchor_epochs`` on the chain being judged: the first L1 epoch
that starts after L1 block ``l1_origin + seed_lead_blocks`` (:func:`snapshot_epoch`), or the
genesis snapshot while the anchor's origin is still in the genesis L1 epoch. Validators accept
an anchor only if that snapshot's seed lies beyond their own L1 head (:func:`anchor_refusal`),
so whoever proposes it cannot know which seed its origin picks: no proposer chooses between
known seeds or snapshots (docs/protocol.md, section 2). Once the anchor is committed every valid
chain goes through it, so its table is final.

The schedule keeps the finalized snapshots read from L1 (a snapshot never changes once seen),
the committed first block of each epoch and a small cache of derived :class:`EpochInfo`.
"""

from __future__ import annotations

from collections import OrderedDict

from sequencer_node.core.api import CoreConfig, EpochInfo, StakeSnapshot
from sequencer_node.core.blocktree import BlockTree
from sequencer_node.core.election import epoch_seed, weighted_order
from sequencer_node.wire.messages import MAX_SUFFIX, BlockHeader, block_hash


def snapshot_epoch(origin: int, *, genesis_epoch: int, slots: int, lead: int) -> int:
    """The L1 epoch whose stake snapshot an anchor with ``l1_origin = origin`` names.

    The first L1 epoch that starts after block ``origin + lead``, so the snapshot's seed (fixed
    by the last block before that epoch) lies at least ``lead`` blocks past the origin; the
    genesis snapshot while the origin is still in the genesis L1 epoch (an L1 that has not
    finalized past it has no other snapshot).
    """
    if origin // slots <= genesis_epoch:
        return genesis_epoch
    return (origin + lead) // slots + 1


def anchor_refusal(
    origin: int, *, head: int, finalized: int, genesis_epoch: int, slots: int, lead: int
) -> str | None:
    """Why a validator whose L1 view is (``head``, ``finalized``) refuses ``origin`` for an
    anchor (the first block of an epoch), or None.

    The snapshot it names must be one whose seed nobody can know yet: its seed block
    (``snapshot_epoch(origin) * slots - 1 >= origin + lead``) at least an L1 epoch past this
    node's head. And the genesis snapshot is named exactly while this node's finalized L1 is
    still in the genesis epoch, so the proposer cannot pick between it and a new one.
    """
    in_genesis = origin // slots <= genesis_epoch
    if in_genesis != (finalized // slots <= genesis_epoch):
        return "the anchor's L1 origin and this node's finalized L1 disagree on the genesis epoch"
    if not in_genesis and origin + lead < head + slots:
        return (
            f"the anchor's L1 origin {origin} names a stake snapshot whose seed may be known "
            f"(origin + seed_lead_blocks {lead} < L1 head {head} + one L1 epoch)"
        )
    return None


def anchor_epochs_needed(
    *, epoch_ms: int, l1_slot_ms: int, seed_lead_blocks: int, slots: int, finality_blocks: int
) -> int:
    """The least ``seed_anchor_epochs`` with which no epoch change waits for its snapshot:
    L2 epochs of at least ``epoch_ms`` must outlast the L1 blocks from an anchor to the
    finalization of the snapshot it names, at most ``seed_lead_blocks`` + one L1 epoch (to the
    next epoch start) + ``finality_blocks`` (how far the L1's finalized head lags its head)."""
    wait_ms = (seed_lead_blocks + slots + finality_blocks) * l1_slot_ms
    return max(1, -(-wait_ms // max(1, epoch_ms)))


#: Snapshots kept (the oldest are dropped first).
_SNAPSHOTS = 256
_INFOS = 32
_ANCHOR_MEMO = 4_096


class EpochSchedule:
    """Stake tables and leader orders per L2 epoch, derived from committed data and L1."""

    def __init__(self, config: CoreConfig, genesis: StakeSnapshot, tree: BlockTree) -> None:
        self.epoch_length = config.epoch_length
        self._slots_per_epoch = config.l1_slots_per_epoch
        self._lead = config.seed_lead_blocks
        #: Epoch e's anchor is the first block of epoch ``e - distance``.
        self.distance = config.seed_anchor_epochs
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

    def snapshot_epoch(self, origin: int) -> int:
        """The L1 epoch of the snapshot an anchor with this origin names."""
        return snapshot_epoch(
            origin, genesis_epoch=self._genesis.l1_epoch, slots=self._slots_per_epoch,
            lead=self._lead,
        )  # fmt: skip

    def anchor_refusal(self, origin: int, head: int, finalized: int) -> str | None:
        """Why this node refuses ``origin`` in an anchor now (see :func:`anchor_refusal`)."""
        return anchor_refusal(
            origin, head=head, finalized=finalized, genesis_epoch=self._genesis.l1_epoch,
            slots=self._slots_per_epoch, lead=self._lead,
        )  # fmt: skip

    def is_anchor(self, header: BlockHeader) -> bool:
        """Whether ``header`` is the first block of its epoch (it anchors a later epoch)."""
        return header.height == self.first_height(header.epoch)

    def note_committed(self, header: BlockHeader) -> None:
        """A block was committed: if it opens an epoch, it anchors a later one."""
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
        if epoch >= self.distance:
            anchor = self._anchor(epoch, via)
            if anchor is None:
                return None
            anchor_hash = block_hash(anchor)
            cached = self._infos.get((epoch, anchor_hash))
            if cached is not None:
                return cached
            found = self._snapshots.get(self.snapshot_epoch(anchor.l1_origin))
            if found is None:
                return None
            snap = found
        else:
            cached = self._infos.get((epoch, anchor_hash))
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
        """The first block of epoch ``epoch - distance`` on the chain through ``via``."""
        height = self.first_height(epoch - self.distance)
        committed = self._first_committed.get(epoch - self.distance)
        if committed is not None or height <= self._tree.committed_height or via is None:
            return committed  # committed: every valid chain goes through it
        memo = self._anchor_memo.get((epoch, via))
        if memo is None:
            reach = (self.distance + 2) * self.epoch_length + 2 + MAX_SUFFIX
            memo = self._tree.ancestor_at(via, height, reach)
            if memo is None:
                return None
            self._anchor_memo[(epoch, via)] = memo
            if len(self._anchor_memo) > _ANCHOR_MEMO:
                self._anchor_memo.popitem(last=False)
        return self._tree.header(memo)


__all__ = ["EpochSchedule"]
