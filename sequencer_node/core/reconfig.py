"""Reconfiguration: how an epoch's table closes the epoch and the next table takes over.

The rule (Diem/Aptos-style; the argument is in docs/protocol.md, "Reconfiguration"): epoch
``e + 1`` starts only from a block that epoch ``e``'s own table committed. Let R be the block
at ``last_height(e)``. Its commit needs a two-chain inside epoch ``e``, so after R the leaders of
epoch ``e`` propose *suffix* blocks: empty blocks of epoch ``e`` (no transactions, state and L1
origin unchanged) that exist only to commit R. A suffix block whose justify is one round below
it *closes* the epoch. The first block of epoch ``e + 1`` extends R (the L2 chain stays
contiguous), carries QC(closing suffix) as its justify and an :class:`EpochProof`. Suffix
blocks are never committed: committing through one commits R.

Certificates are ranked by (epoch, round): a QC of a later epoch outranks every QC of an
earlier one, which is what keeps a late certificate of the old table from reopening the start
of the new epoch.

Pure functions of headers; the core keeps the blocks.
"""

from __future__ import annotations

import enum

from sequencer_node.core.ledger import tx_root
from sequencer_node.wire.messages import (
    MAX_SUFFIX,
    BlockHeader,
    EpochProof,
    QuorumCertificate,
    block_hash,
)

#: The tx root of a block without transactions or forced entries (every suffix block's).
EMPTY_TX_ROOT = tx_root((), ())


class BlockKind(enum.Enum):
    """Where a block stands relative to its epoch's last height."""

    #: Inside its epoch (genesis included).
    NORMAL = "normal"
    #: Above its epoch's last height: an empty block that only helps commit the last block.
    SUFFIX = "suffix"
    #: The first block of an epoch >= 1: extends the previous epoch's committed last block.
    FIRST = "first"


def last_height(epoch: int, epoch_length: int) -> int:
    return (epoch + 1) * epoch_length


def kind_of(h: BlockHeader, epoch_length: int) -> BlockKind:
    if h.height > last_height(h.epoch, epoch_length):
        return BlockKind.SUFFIX
    if h.epoch >= 1 and h.height == h.epoch * epoch_length + 1:
        return BlockKind.FIRST
    return BlockKind.NORMAL


def rank(qc: QuorumCertificate | None) -> tuple[int, int]:
    """Order of QCs: by epoch, then round (no QC ranks lowest)."""
    return (0, 0) if qc is None else (qc.epoch, qc.round)


def qc_epoch_fits(epoch: int, height: int, epoch_length: int) -> bool:
    """Whether a QC or vote may name ``epoch`` for a block at ``height``: the epoch of the
    height, or an earlier epoch whose suffix reaches that height."""
    if height <= last_height(epoch, epoch_length):
        return height == 0 or (height - 1) // epoch_length == epoch
    return height - last_height(epoch, epoch_length) <= MAX_SUFFIX


def check_suffix(h: BlockHeader, parent: BlockHeader, epoch_length: int) -> str | None:
    """Why ``h`` is not a valid suffix block on ``parent`` (None if it is)."""
    if h.epoch != parent.epoch or parent.height < last_height(h.epoch, epoch_length):
        return "a suffix block must extend its epoch's last block or another suffix block"
    if h.height - last_height(h.epoch, epoch_length) > MAX_SUFFIX:
        return "suffix too long"
    if h.tx_root != EMPTY_TX_ROOT:
        return "a suffix block carries no transactions"
    same = (h.state_root, h.forced_index, h.l1_origin)
    if same != (parent.state_root, parent.forced_index, parent.l1_origin):
        return "a suffix block changes no state and keeps its parent's L1 origin"
    return None


def check_epoch_proof(
    proof: EpochProof,
    justify: QuorumCertificate,
    last: BlockHeader,
    last_hash: bytes,
    epoch_length: int,
) -> str | None:
    """Why ``proof`` (with the first block's ``justify``) does not show that ``last`` (the
    previous epoch's last block, the first block's parent) was committed by its own epoch's
    table. The QCs' signatures are checked by the caller."""
    if not proof.suffix:
        return "epoch proof without suffix blocks"
    lqc = proof.last_qc
    if (lqc.block_hash, lqc.height, lqc.round, lqc.epoch) != (
        last_hash, last.height, last.round, last.epoch,
    ):  # fmt: skip
        return "epoch proof: the last block's QC does not certify it"
    parent, parent_hash = last, last_hash
    for s in proof.suffix:
        if s.parent_hash != parent_hash or s.height != parent.height + 1:
            return "epoch proof: the suffix does not extend the last block"
        if s.round <= parent.round:
            return "epoch proof: suffix rounds do not increase"
        reason = check_suffix(s, parent, epoch_length)
        if reason is not None:
            return f"epoch proof: {reason}"
        parent, parent_hash = s, block_hash(s)
    closing = proof.suffix[-1]
    named = (justify.block_hash, justify.height, justify.round, justify.epoch)
    if named != (parent_hash, closing.height, closing.round, closing.epoch):
        return "epoch proof: the justify does not certify the closing suffix block"
    pqc = proof.parent_qc
    if (pqc.block_hash, pqc.height) != (closing.parent_hash, closing.height - 1):
        return "epoch proof: the parent QC does not certify the closing block's parent"
    if pqc.round + 1 != closing.round or pqc.epoch != closing.epoch:
        return "epoch proof: the parent QC is not one round below the closing block"
    return None


__all__ = [
    "EMPTY_TX_ROOT",
    "BlockKind",
    "check_epoch_proof",
    "check_suffix",
    "kind_of",
    "last_height",
    "qc_epoch_fits",
    "rank",
]
