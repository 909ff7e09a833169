"""Every check the L1 batch inbox makes on a batch, as one pure function (:func:`check_batch`).

Three parties apply it and must never disagree, so there is one copy:

* the L1 inbox (``l1_mock.chain``), which refuses a batch that breaks a rule;
* every co-signer, before it approves a proposed header: continuity with the last accepted
  batch, the forced-inclusion rule at the L1 block the batch can reach, the fork's blob
  limits and sizes, the stake epoch's age (a certificate for a header the inbox will refuse
  would stop posting);
* the batcher, to tell a refusal that can never change (the certificate is abandoned and
  the batch number proposed again, see docs/batcher.md) from one that may pass later.

What the inbox knows is passed in as an :class:`InboxView` (its state) and a
:class:`Landing` (the L1 block that would include the batch). The certificate's signatures
are not checked here: they need the stake snapshot and are checked by the inbox itself.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
from dataclasses import dataclass

from sequencer_node.batching.blobs import MAX_BLOB_DATA_SIZE
from sequencer_node.wire.blobs import BlobParams
from sequencer_node.wire.da.attest import (
    AttestationError,
    DataCommitment,
    PointerProof,
    verify_pointer,
)
from sequencer_node.wire.da.shares import MAX_BLOB_BYTES, shares_needed
from sequencer_node.wire.l1calls import MAX_CALLDATA
from sequencer_node.wire.messages import (
    DA_BLOBS,
    DA_CALLDATA,
    DA_EXTERNAL,
    ZERO_HASH,
    BatchHeader,
    batch_hash,
)


class Rule(enum.Enum):
    """The inbox rule a batch breaks."""

    CHAIN = "chain"  # for another L2 chain
    NUMBER_TAKEN = "number_taken"  # the inbox already holds this batch number
    NUMBER_AHEAD = "number_ahead"  # an earlier batch number is still missing
    PARENT = "parent"  # parent_batch_hash is not the last accepted batch
    CONTINUITY = "continuity"  # first_height is not the last accepted last_height + 1
    DATA = "data"  # calldata does not match data_hash/data_bytes, or no blobs for a blob batch
    BLOB_COUNT = "blob_count"  # more blobs than the fork allows, or a mismatch with the header
    SIZE = "size"  # data_bytes more than the blobs (or calldata limit) can carry
    EPOCH_NOT_FINAL = "epoch_not_final"  # the stake snapshot is not finalized yet
    EPOCH_EXPIRED = "epoch_expired"  # older than the unbonding period (or pruned)
    EPOCH_BACKWARDS = "epoch_backwards"  # older than the previous batch's stake epoch
    FORCED_INDEX = "forced_index"  # forced_index outside [previous, queued]
    FORCED_OVERDUE = "forced_overdue"  # leaves out a forced entry older than the window
    DA_POINTER = "da_pointer"  # an extda pointer outside the namespace, or a bad proof of it
    DA_NOT_ATTESTED = "da_not_attested"  # the L1 holds no data commitment of that nonce yet

    @property
    def final(self) -> bool:
        """No later L1 state can make a header that breaks this rule acceptable.

        The inbox only grows, L1 blocks and epochs only move forward, so only a missing
        earlier batch, a snapshot not finalized yet and a forced index ahead of the queue
        can still heal. A blob count above a fork's limit is treated as final: forks are not
        awaited (a fresh proposal under the current limits is the way on).
        """
        return self not in (
            Rule.NUMBER_AHEAD,
            Rule.EPOCH_NOT_FINAL,
            Rule.FORCED_INDEX,
            Rule.DA_NOT_ATTESTED,
        )


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why the inbox refuses a batch: the rule and the message the inbox reports."""

    rule: Rule
    message: str

    @property
    def final(self) -> bool:
        return self.rule.final

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True, slots=True)
class InboxView:
    """What the inbox knows when it judges one header (facts that depend on the header are
    resolved by the caller: the forced entry at its ``forced_index``, its snapshot)."""

    l2_chain_id: int
    #: L2 height the first batch ever must start at.
    first_height: int
    #: The last accepted batch (None while the inbox is empty).
    last: BatchHeader | None
    #: Forced transactions queued so far.
    forced_count: int
    #: L1 block at which the forced entry at the header's ``forced_index`` was queued (None
    #: when the header's ``forced_index`` leaves no entry out).
    skipped_forced_at: int | None
    #: A stake snapshot exists for the header's ``stake_epoch``.
    snapshot_exists: bool
    unbonding_epochs: int
    sequencing_window: int
    #: The rollup's namespace on the external DA layer (empty: the inbox takes no extda batch).
    da_namespace: bytes = b""


@dataclass(frozen=True, slots=True)
class ExternalProof:
    """What proves an external-DA batch's pointer at the inbox: the call's proof and the
    data commitment of the nonce it names, as the L1 stores it (None: not attested yet)."""

    proof: PointerProof | None
    attested: DataCommitment | None


@dataclass(frozen=True, slots=True)
class Landing:
    """The L1 block that would include the batch: its number, epoch and blob limits."""

    l1_block: int
    epoch: int
    fork: str
    max_blobs_per_tx: int
    max_blobs_per_block: int

    @staticmethod
    def at(l1_block: int, epoch: int, params: BlobParams) -> Landing:
        """Block ``l1_block`` of epoch ``epoch``, under the fork ``params``."""
        return Landing(l1_block, epoch, params.fork, params.max_per_tx, params.max)


def check_batch(
    header: BatchHeader,
    inbox: InboxView,
    landing: Landing,
    *,
    blob_count: int,
    calldata: bytes | None = None,
    external: ExternalProof | None = None,
) -> Refusal | None:
    """The first inbox rule ``header`` breaks when included at ``landing`` (None: accepted).

    ``blob_count`` is the number of blobs the call carries (co-signers pass the header's
    count); ``calldata`` the call's data for a calldata or extda batch (None: not checked, as
    for a co-signer, which compares the data hash with its own rebuild); ``external`` the
    proof of an extda batch's pointer (None: not checked, as for a co-signer, which fetches
    the data from the DA layer and checks it against the pointer itself).
    """
    for check in (_continuity, _data, _stake_epoch, _forced):
        refusal = check(header, inbox, landing, blob_count, calldata)
        if refusal is not None:
            return refusal
    if header.da_kind == DA_EXTERNAL and external is not None:
        return _external_proof(header, external)
    return None


def _continuity(
    h: BatchHeader, inbox: InboxView, _l: Landing, _n: int, _c: bytes | None
) -> Refusal | None:
    if h.chain_id != inbox.l2_chain_id:
        return Refusal(
            Rule.CHAIN, f"batch for L2 chain {h.chain_id}; this inbox is {inbox.l2_chain_id}"
        )
    last = inbox.last
    want_number = last.batch_number + 1 if last else 0
    want_parent = batch_hash(last) if last else ZERO_HASH
    want_first = last.last_height + 1 if last else inbox.first_height
    if h.batch_number != want_number:
        rule = Rule.NUMBER_TAKEN if h.batch_number < want_number else Rule.NUMBER_AHEAD
        return Refusal(rule, f"batch number {h.batch_number}; expected {want_number}")
    if h.parent_batch_hash != want_parent:
        return Refusal(
            Rule.PARENT, "wrong parent: parent_batch_hash is not the last accepted batch"
        )
    if h.first_height != want_first:
        return Refusal(Rule.CONTINUITY, f"first_height {h.first_height}; expected {want_first}")
    return None


def check_data(
    header: BatchHeader,
    landing: Landing,
    *,
    blob_count: int,
    calldata: bytes | None = None,
    da_namespace: bytes = b"",
) -> Refusal | None:
    """The data part of :func:`check_batch` alone (no inbox state needed): the fork's blob
    limits and sizes, a calldata batch's hash and length, an extda batch's pointer shape."""
    view = dataclasses.replace(_NO_VIEW, da_namespace=da_namespace)
    return _data(header, view, landing, blob_count, calldata)


def _data(
    h: BatchHeader, inbox: InboxView, landing: Landing, blob_count: int, calldata: bytes | None
) -> Refusal | None:
    if h.da_kind == DA_EXTERNAL:
        return _external(h, inbox, blob_count, calldata)
    if h.da_kind == DA_CALLDATA:
        if blob_count or h.blob_hashes:
            return Refusal(Rule.BLOB_COUNT, "a calldata batch carries no blobs")
        if h.data_bytes > MAX_CALLDATA:
            return Refusal(
                Rule.SIZE, f"data_bytes {h.data_bytes} exceed the calldata limit {MAX_CALLDATA}"
            )
        if calldata is not None and hashlib.sha256(calldata).digest() != h.data_hash:
            return Refusal(Rule.DATA, "data_hash is not sha256 of the calldata")
        if calldata is not None and h.data_bytes != len(calldata):
            return Refusal(Rule.DATA, "data_bytes is not the calldata length")
        return None
    if h.da_kind != DA_BLOBS or blob_count == 0:
        return Refusal(Rule.DATA, "a blob batch needs blobs")
    if blob_count > landing.max_blobs_per_tx:
        return Refusal(
            Rule.BLOB_COUNT,
            f"{blob_count} blobs in one transaction; {landing.fork} allows at most "
            f"{landing.max_blobs_per_tx}",
        )
    if blob_count > landing.max_blobs_per_block:
        return Refusal(
            Rule.BLOB_COUNT,
            f"{blob_count} blobs exceed the per-block maximum of {landing.max_blobs_per_block}",
        )
    if len(h.blob_hashes) != blob_count:
        return Refusal(
            Rule.BLOB_COUNT,
            f"the header names {len(h.blob_hashes)} blobs, the call carries {blob_count}",
        )
    if h.data_bytes > blob_count * MAX_BLOB_DATA_SIZE:
        return Refusal(Rule.SIZE, f"data_bytes {h.data_bytes} do not fit in {blob_count} blobs")
    return None


def _external(
    h: BatchHeader, inbox: InboxView, blob_count: int, calldata: bytes | None
) -> Refusal | None:
    """An extda batch carries neither blobs nor calldata; its pointer names shares of the
    rollup's namespace, exactly as many as its ``data_bytes`` take."""
    pointer = h.da_pointer
    assert pointer is not None  # BatchHeader's own rule
    if blob_count or h.blob_hashes or calldata:
        return Refusal(Rule.BLOB_COUNT, "an extda batch carries no blobs and no calldata")
    if not inbox.da_namespace:
        return Refusal(Rule.DA_POINTER, "this inbox takes no external-DA batches")
    if pointer.namespace != inbox.da_namespace:
        return Refusal(
            Rule.DA_POINTER,
            f"the DA pointer's namespace 0x{pointer.namespace.hex()} is not the rollup's "
            f"0x{inbox.da_namespace.hex()}",
        )
    if not 0 < h.data_bytes <= MAX_BLOB_BYTES:
        return Refusal(Rule.SIZE, f"data_bytes {h.data_bytes} outside 1..{MAX_BLOB_BYTES}")
    want = shares_needed(h.data_bytes)
    if pointer.end - pointer.start != want:
        return Refusal(
            Rule.DA_POINTER,
            f"the DA pointer names {pointer.end - pointer.start} shares; {h.data_bytes} bytes "
            f"take {want}",
        )
    return None


def _external_proof(h: BatchHeader, ext: ExternalProof) -> Refusal | None:
    pointer = h.da_pointer
    assert pointer is not None
    if ext.proof is None:
        return Refusal(Rule.DA_POINTER, "an extda batch needs a proof of its DA pointer")
    if ext.attested is None:
        return Refusal(
            Rule.DA_NOT_ATTESTED, "the L1 holds no data commitment of the proof's nonce yet"
        )
    try:
        verify_pointer(pointer, ext.proof, ext.attested)
    except AttestationError as e:
        return Refusal(Rule.DA_POINTER, f"bad DA pointer proof: {e}")
    return None


def stake_epoch_refusal(stake_epoch: int, current_epoch: int, max_age: int) -> Refusal | None:
    """Whether a certificate may name the snapshot of ``stake_epoch`` at ``current_epoch``:
    finalized (epoch 0 is final from genesis) and at most ``max_age`` epochs old. The L1's
    downtime reports use this rule too; with ``max_age`` the unbonding period, everyone in an
    acceptable snapshot still has stake that evidence can slash."""
    e = stake_epoch
    if not (e == 0 or e <= current_epoch - 2):
        return Refusal(Rule.EPOCH_NOT_FINAL, f"stake snapshot of epoch {e} is not finalized yet")
    if e + max_age < current_epoch:
        return Refusal(
            Rule.EPOCH_EXPIRED, f"stake snapshot of epoch {e} is older than the unbonding period"
        )
    return None


def _stake_epoch(
    h: BatchHeader, inbox: InboxView, landing: Landing, _n: int, _c: bytes | None
) -> Refusal | None:
    e = h.stake_epoch
    age = stake_epoch_refusal(e, landing.epoch, inbox.unbonding_epochs)
    if age is not None:
        return age
    if not inbox.snapshot_exists:
        return Refusal(Rule.EPOCH_EXPIRED, f"no stake snapshot for epoch {e}")
    if inbox.last and e < inbox.last.stake_epoch:
        return Refusal(
            Rule.EPOCH_BACKWARDS,
            f"stake epoch {e} is older than the previous batch's {inbox.last.stake_epoch}",
        )
    return None


def _forced(
    h: BatchHeader, inbox: InboxView, landing: Landing, _n: int, _c: bytes | None
) -> Refusal | None:
    prev = inbox.last.forced_index if inbox.last else 0
    if not prev <= h.forced_index <= inbox.forced_count:
        rule = Rule.FORCED_INDEX if h.forced_index > inbox.forced_count else Rule.CONTINUITY
        return Refusal(
            rule, f"forced_index {h.forced_index} outside [{prev}, {inbox.forced_count}]"
        )
    queued_at = inbox.skipped_forced_at
    # Entries are in L1 order: only the oldest one left out can be overdue.
    if queued_at is not None and queued_at + inbox.sequencing_window <= landing.l1_block:
        return Refusal(
            Rule.FORCED_OVERDUE,
            f"skips forced transaction {h.forced_index} queued at L1 block {queued_at}, "
            f"older than the sequencing window of {inbox.sequencing_window} blocks",
        )
    return None


_NO_VIEW = InboxView(0, 0, None, 0, None, True, 0, 0)

__all__ = [
    "ExternalProof",
    "InboxView",
    "Landing",
    "Refusal",
    "Rule",
    "check_batch",
    "check_data",
    "stake_epoch_refusal",
]
