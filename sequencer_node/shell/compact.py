"""Compact blocks: a proposed block on the p2p link as references to the ``TxBatch`` frames
that already carried its client transactions (issue 13: "proposals carry batch digests instead
of transaction bodies"; BIP 152's compact blocks, keyed by Narwhal-style batch digests).

This is a shell-level *encoding* of a ``Block`` between two nodes, nothing more: the core,
block hashes, ``tx_root``, signatures, the store, catch-up (``SyncResponse`` keeps full
blocks), the derivation and the RPC are unchanged, and the core only ever receives full
blocks. A block that cannot be rebuilt travels, or is fetched, in full.

Theory of operation
-------------------
* **Batches and digests.** Every ``TxBatch`` a node sends (its ingress) or receives is
  remembered in a bounded :class:`BatchIndex` under its digest, :func:`batch_digest`: sha256
  over the message ids of its transactions in order. It binds the batch's content as a hash of
  its encoding would, but costs nothing: the ids are computed (and memoised on each
  transaction) for the mempool anyway, while the receiver holds only the decoded batch (hashing
  its encoding would mean encoding it again).
* **Sending.** :func:`compact` turns a block into a :class:`CompactBlock`: the block without
  its ``transactions``, the digests of the batches they came from, one 4-byte pick per
  transaction (batch index, position) and, inline, those found in no known batch (e.g. a
  transaction proposed before its own batch was cut). None when nothing would be referenced:
  the block then goes in full, as before. The node sends the compact form of the blocks it
  broadcasts; relays forward the frame unchanged, and each receiver rebuilds it with its own
  index.
* **Receiving.** :meth:`CompactBlocks.receive` (the node's forwarder, before the core's input
  queue) rebuilds the block (:func:`expand`) and hands the core the full ``Block`` as if it
  had arrived from that peer, so the core's checks (``tx_root`` over the rebuilt transactions
  included) judge it like any block. A structural fault (:func:`check_structure`: whole picks,
  indices in range, every batch used, one inline pick per inline transaction) is checked in
  the validate hook, before relay, and charged ``malformed_message``. A pick past the end of a
  batch we hold is provably its author's fault, but the proposal's signature covers only the
  header: it is charged only when the frame came from the proposer itself (an honest relay
  forwards frames before it rebuilds them). A batch we do not hold is nobody's fault (it may
  have been lost): the core hears the signed proposal at once (``api.ProposalHeard``: evidence
  of a double proposal and the certificates it carries need no transactions), the compact
  block waits (bounded: :attr:`CompactBlocks.max_pending`, for ``pending_ttl_s``) and a
  :class:`BlockRequest` goes to its proposer (it put the block in its
  cache before sending it; the peer it came from if the proposer is not connected); the
  answer is the full ``Block``, which completes it; a batch that arrives meanwhile completes
  it too. If neither comes, the core's own catch-up fetches the block once a certificate names
  it, as for any block a node missed.
* **Answering.** A node keeps the last blocks it proposed, received or rebuilt
  (:class:`BlockCache`, by hash, bounded by blocks and transactions) and answers a
  ``BlockRequest`` from it; an unknown hash is answered with nothing and not charged, and each
  peer has a request budget (over it: ``flood``).

Bounds: the index keeps at most ``max_txs`` transactions (100,000) and batches for at most
``max_age_s`` (60 s), oldest batches forgotten first: a proposal includes transactions seconds
after their batch went out, and a transaction whose batch was forgotten only travels inline.
The block cache keeps 64 blocks and 100,000 transactions; pending compact blocks are at most
32, for 10 s.

Nothing here does I/O or reads a clock: ``now`` is an argument, the peers are passed in.
"""

from __future__ import annotations

import dataclasses
import hashlib
import struct
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from sequencer_node.core.api import ProposalHeard
from sequencer_node.shell.metrics import NodeMetrics
from sequencer_node.shell.p2p_messages import (
    MAX_TX_BATCH,
    PICK_BYTES,
    BlockRequest,
    CompactBlock,
    TxBatch,
)
from sequencer_node.shell.scoring import Offense, RequestBudget
from sequencer_node.wire.codec import message_id
from sequencer_node.wire.messages import MAX_BLOCK_TXS, Block, Transaction, block_hash

#: The batch index of a pick that means "the next inline transaction" (its position is 0).
INLINE = 0xFFFF
_PICK = struct.Struct(">HH")
_INLINE_PICK = _PICK.pack(INLINE, 0)
#: A transaction's place in the index: its batch's sequence number << _SHIFT | its position
#: (plain ints: 100,000 tuples would be more for every garbage collection to walk).
_SHIFT = 16
#: BlockRequests one peer may send per second (and at once): an honest node asks once per
#: compact block it cannot rebuild, a few per block time at most.
_REQUESTS_PER_S = 20.0
_REQUEST_BURST = 40.0


def batch_digest(txs: Sequence[Transaction]) -> bytes:
    """The digest a batch is referred to by: sha256 over its transactions' message ids."""
    return hashlib.sha256(b"".join(map(message_id, txs))).digest()


class BatchIndex:
    """Recent batches by digest, and where each of their transactions is (bounded by a
    transaction count and by age; the oldest batches are forgotten first)."""

    def __init__(self, max_txs: int = 100_000, max_age_s: float = 60.0) -> None:
        if max_txs < MAX_TX_BATCH or max_age_s <= 0:
            raise ValueError(f"the batch index needs max_txs >= {MAX_TX_BATCH} and max_age_s > 0")
        self.max_txs = max_txs
        self.max_age_s = max_age_s
        self._batches: OrderedDict[int, tuple[bytes, tuple[Transaction, ...], float]] = (
            OrderedDict()
        )
        self._by_digest: dict[bytes, int] = {}
        self._where: dict[bytes, int] = {}
        self._seq = 0
        self.txs = 0

    def add(self, txs: Sequence[Transaction], now: float) -> bytes | None:
        """Remember a batch; returns its digest (None for an empty or oversized one)."""
        self.expire(now)
        batch = tuple(txs)
        if not batch or len(batch) > MAX_TX_BATCH:
            return None
        digest = batch_digest(batch)
        if digest in self._by_digest:
            return digest
        seq = self._seq = self._seq + 1
        self._batches[seq] = (digest, batch, now)
        self._by_digest[digest] = seq
        base = seq << _SHIFT
        where = self._where
        for pos, tx in enumerate(batch):
            where[message_id(tx)] = base | pos
        self.txs += len(batch)
        while self.txs > self.max_txs:
            self._forget_oldest()
        return digest

    def batch(self, digest: bytes) -> tuple[Transaction, ...] | None:
        seq = self._by_digest.get(digest)
        return None if seq is None else self._batches[seq][1]

    def locate(self, tx_id: bytes) -> tuple[bytes, int] | None:
        """(batch digest, position) of a transaction in a remembered batch, else None."""
        at = self._where.get(tx_id)
        if at is None:
            return None
        return self._batches[at >> _SHIFT][0], at & ((1 << _SHIFT) - 1)

    def expire(self, now: float) -> None:
        horizon = now - self.max_age_s
        while self._batches and next(iter(self._batches.values()))[2] <= horizon:
            self._forget_oldest()

    def _forget_oldest(self) -> None:
        seq, (digest, batch, _) = self._batches.popitem(last=False)
        del self._by_digest[digest]
        where = self._where
        for tx in batch:
            tx_id = message_id(tx)
            if where.get(tx_id, -1) >> _SHIFT == seq:  # not if a later batch has it too
                del where[tx_id]
        self.txs -= len(batch)

    def __len__(self) -> int:
        return len(self._batches)


def compact(block: Block, index: BatchIndex) -> CompactBlock | None:
    """``block`` as references to the batches of ``index``; None if it has no client
    transaction or none of them is in a known batch (then it travels in full)."""
    if not block.transactions:
        return None
    slots: dict[bytes, int] = {}
    batches: list[bytes] = []
    picks = bytearray()
    inline: list[Transaction] = []
    for tx in block.transactions:
        found = index.locate(message_id(tx))
        if found is None:
            picks += _INLINE_PICK
            inline.append(tx)
            continue
        digest, pos = found
        i = slots.get(digest)
        if i is None:
            i = slots[digest] = len(batches)
            batches.append(digest)
        picks += _PICK.pack(i, pos)
    if not batches:
        return None
    bare = dataclasses.replace(block, transactions=())
    return CompactBlock(bare, tuple(batches), bytes(picks), tuple(inline))


def check_structure(cb: CompactBlock) -> str | None:
    """What makes ``cb`` malformed whatever batches the receiver holds, else None: its author
    (or the relay that forwarded it unchecked) is at fault."""
    count, rest = divmod(len(cb.picks), PICK_BYTES)
    if rest:
        return f"picks of {len(cb.picks)} bytes is not a whole number of picks"
    if count > MAX_BLOCK_TXS:
        return f"{count} picks, at most {MAX_BLOCK_TXS} transactions in a block"
    if cb.block.transactions:
        return "a compact block carries its transactions as picks"
    if not cb.batches:
        return "no batch: the block should travel in full"
    if len(set(cb.batches)) != len(cb.batches):
        return "a batch is listed twice"
    n = len(cb.batches)
    used = bytearray(n)
    inline = 0
    for b, pos in _PICK.iter_unpack(cb.picks):
        if b == INLINE:
            if pos != 0:
                return "an inline pick with a position"
            inline += 1
        elif b >= n:
            return f"a pick of batch {b}, only {n} listed"
        elif pos >= MAX_TX_BATCH:
            return f"a pick at position {pos}, past any batch"
        else:
            used[b] = 1
    if inline != len(cb.inline):
        return f"{inline} inline picks for {len(cb.inline)} inline transactions"
    if not all(used):
        return "a listed batch no pick refers to"
    return None


@dataclass(frozen=True, slots=True)
class Missing:
    """The digests of the batches a compact block needs that the index does not hold."""

    digests: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class Malformed:
    """Why a compact block cannot be a block whatever else arrives."""

    reason: str


def expand(cb: CompactBlock, index: BatchIndex) -> Block | Missing | Malformed:
    """The full block ``cb`` stands for, rebuilt from ``index``; else the batches it lacks, or
    what is wrong with it (a pick past the end of a batch we hold is checked even while other
    batches are missing)."""
    problem = check_structure(cb)
    if problem is not None:
        return Malformed(problem)
    held = [index.batch(d) for d in cb.batches]
    inline = iter(cb.inline)
    txs: list[Transaction] = []
    for b, pos in _PICK.iter_unpack(cb.picks):
        if b == INLINE:
            txs.append(next(inline))
            continue
        batch = held[b]
        if batch is None:
            continue
        if pos >= len(batch):
            return Malformed(f"a pick at position {pos} of a batch of {len(batch)}")
        txs.append(batch[pos])
    missing = tuple(d for d, batch in zip(cb.batches, held, strict=True) if batch is None)
    if missing:
        return Missing(missing)
    return dataclasses.replace(cb.block, transactions=tuple(txs))


class BlockCache:
    """The last blocks this node proposed, received or rebuilt, by hash (to answer a
    BlockRequest), at most ``max_blocks`` of them and ``max_txs`` transactions in all."""

    def __init__(self, max_blocks: int = 64, max_txs: int = 100_000) -> None:
        self.max_blocks = max_blocks
        self.max_txs = max_txs
        self._blocks: OrderedDict[bytes, Block] = OrderedDict()
        self.txs = 0

    def put(self, block: Block, digest: bytes | None = None) -> bytes:
        """Keep ``block``; returns its hash."""
        h = digest if digest is not None else block_hash(block.header)
        if h in self._blocks:
            return h
        self._blocks[h] = block
        self.txs += len(block.transactions)
        while len(self._blocks) > self.max_blocks or (
            self.txs > self.max_txs and len(self._blocks) > 1
        ):
            _, old = self._blocks.popitem(last=False)
            self.txs -= len(old.transactions)
        return h

    def get(self, h: bytes) -> Block | None:
        return self._blocks.get(h)

    def __len__(self) -> int:
        return len(self._blocks)


class Peers(Protocol):
    """What :class:`CompactBlocks` needs of the peer manager."""

    def send_to(self, peer: bytes, msg: object, *, gossip: bool = False) -> bool: ...

    def penalize(self, peer: bytes, offense: Offense) -> object: ...

    def is_connected(self, peer: bytes) -> bool: ...


@dataclass(slots=True)
class _Pending:
    sender: bytes
    cb: CompactBlock
    since: float
    requested: bool = False


class CompactBlocks:
    """A node's compact-block state (see the module docstring): its batch index, the blocks
    it can answer requests with, and the compact blocks that wait for a batch or an answer."""

    def __init__(
        self,
        metrics: NodeMetrics | None = None,
        *,
        index: BatchIndex | None = None,
        cache: BlockCache | None = None,
        max_pending: int = 32,
        pending_ttl_s: float = 10.0,
    ) -> None:
        self.metrics = metrics or NodeMetrics()
        self.index = index or BatchIndex()
        self.cache = cache or BlockCache()
        self.max_pending = max_pending
        self.pending_ttl_s = pending_ttl_s
        self._pending: OrderedDict[bytes, _Pending] = OrderedDict()
        self._requests = RequestBudget(_REQUESTS_PER_S, _REQUEST_BURST)

    # --- sending ---------------------------------------------------------------------------

    def batch_sent(self, batch: TxBatch, now: float) -> None:
        """This node disseminated ``batch`` (its ingress)."""
        self.index.add(batch.transactions, now)

    def outgoing(self, block: Block, now: float) -> Block | CompactBlock:
        """What to broadcast for ``block``: its compact form when that references a batch,
        else the block (kept, either way, to answer requests)."""
        self.cache.put(block)
        self.index.expire(now)
        cb = compact(block, self.index)
        if cb is None:
            return block
        self.metrics.compact_blocks_sent.inc()
        self.metrics.compact_inline_txs.inc(len(cb.inline))
        return cb

    # --- receiving -------------------------------------------------------------------------

    def allow_request(self, sender: bytes, now: float) -> bool:
        """The per-peer BlockRequest budget (the validate hook: over it is a flood)."""
        return self._requests.take(sender, now)

    def receive(
        self, sender: bytes, msg: object, now: float, peers: Peers
    ) -> list[tuple[bytes, object]]:
        """Handle a peer's message on its way to the core; returns the (sender, message) pairs
        the core gets for it: a rebuilt block instead of a compact one, the blocks a batch
        completes after that batch, nothing for a request or a block that must wait."""
        self._expire(now)
        if isinstance(msg, TxBatch):
            digest = self.index.add(msg.transactions, now)
            return [(sender, msg), *self._completed(digest)]
        if isinstance(msg, CompactBlock):
            return self._compact_block(sender, msg, now, peers)
        if isinstance(msg, BlockRequest):
            block = self.cache.get(msg.block_hash)
            if block is not None:
                peers.send_to(sender, block)
            return []
        if isinstance(msg, Block):
            h = self.cache.put(msg)
            waiting = self._pending.pop(h, None)
            if waiting is not None and waiting.requested:
                self.metrics.compact_blocks_resolved_after_request.inc()
        return [(sender, msg)]

    def _compact_block(
        self, sender: bytes, cb: CompactBlock, now: float, peers: Peers
    ) -> list[tuple[bytes, object]]:
        got = expand(cb, self.index)
        proposer = cb.block.proposal.header.proposer
        if isinstance(got, Block):
            self.cache.put(got)
            self.metrics.compact_blocks_resolved.inc()
            return [(sender, got)]
        if isinstance(got, Malformed) and sender == proposer:
            self.metrics.invalid_messages.labels(Offense.MALFORMED_MESSAGE.value).inc()
            peers.penalize(sender, Offense.MALFORMED_MESSAGE)
            return []
        # A batch we lack (or, from a relay, picks nobody can vouch for): ask for the block,
        # and let the core hear the signed proposal meanwhile (evidence of a double proposal,
        # the certificates it carries: a proposer must not equivocate unseen by sending a
        # block nobody can rebuild).
        h = block_hash(cb.block.header)
        if h in self._pending or self.cache.get(h) is not None:
            return []
        heard: list[tuple[bytes, object]] = [(sender, ProposalHeard(cb.block))]
        pending = _Pending(sender, cb, now)
        if isinstance(got, Malformed):
            pending.cb = dataclasses.replace(cb, batches=())  # never completed by a batch
        self._pending[h] = pending
        while len(self._pending) > self.max_pending:
            self._pending.popitem(last=False)
        target = proposer if proposer != sender and peers.is_connected(proposer) else sender
        pending.requested = peers.send_to(target, BlockRequest(h))
        if pending.requested:
            self.metrics.compact_blocks_requested.inc()
        return heard

    def _completed(self, digest: bytes | None) -> list[tuple[bytes, object]]:
        """The pending compact blocks that the batch ``digest`` completes, rebuilt."""
        if digest is None or not self._pending:
            return []
        out: list[tuple[bytes, object]] = []
        for h, p in list(self._pending.items()):
            if digest not in p.cb.batches:
                continue
            got = expand(p.cb, self.index)
            if isinstance(got, Block):
                del self._pending[h]
                self.cache.put(got, h)
                self.metrics.compact_blocks_resolved.inc()
                out.append((p.sender, got))
        return out

    def _expire(self, now: float) -> None:
        horizon = now - self.pending_ttl_s
        while self._pending and next(iter(self._pending.values())).since <= horizon:
            self._pending.popitem(last=False)

    @property
    def pending(self) -> int:
        return len(self._pending)


__all__ = [
    "INLINE",
    "BatchIndex",
    "BlockCache",
    "CompactBlocks",
    "Malformed",
    "Missing",
    "batch_digest",
    "check_structure",
    "compact",
    "expand",
]
