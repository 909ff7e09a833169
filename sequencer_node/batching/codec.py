"""The batch payload: a run of certified L2 blocks as compact, versioned, compressed bytes.

What is in a batch, and why
---------------------------
A follower that derives L2 from L1 trusts the *batch certificate* (> 2/3 of stake over the
:class:`~sequencer_node.wire.messages.BatchHeader`, checked by the L1 inbox), which names the
last block hash, the state root and the forced-queue position. So the payload carries what
re-execution needs and what is needed to recompute the block hashes, and nothing the
follower can derive:

* per block: ``height, round, epoch, timestamp_ms, proposer, state_root, forced_index,
  l1_origin``, the transactions (with their signatures: the follower re-checks them), the
  forced entries and the Ethereum transactions (their raw signed bytes, from which the
  follower recovers each sender again);
* dropped: per-block QCs and proposer signatures (the batch certificate vouches for the whole
  run), ``tx_root`` (recomputed from the transactions) and ``parent_hash`` (the previous
  block's hash; only the first block's parent is stored).

The follower rebuilds each :class:`~sequencer_node.wire.messages.BlockHeader` with
:meth:`Batch.headers`, executes, compares each ``state_root`` (which names the first block
that diverges) and checks the last hash against the certificate's ``last_block_hash``; that
hash chains every header, so any change in the payload is caught.

Layout
------
``payload = version (1 byte, 0x02) || algorithm (1 byte, see compression.Algorithm) ||
compress(body)``, where ``body`` is canonical msgpack::

    [parent_hash, [block, ...]]
    block = [height, round, epoch, timestamp_ms, proposer, state_root, forced_index,
             l1_origin, [tx, ...], [[queue_index, l1_block, tx], ...], [eth_raw, ...]]
    tx    = [sender, to, amount, nonce, fee, signature]
    eth_raw = the signed Ethereum transaction's bytes (type 2 or EIP-155 legacy), as sent

Version 2 added ``[eth_raw, ...]`` (version 1 blocks had ten fields).

Decoding is strict: bounded sizes, exact field types and counts, consecutive heights,
consistent forced indices, and the canonical encoding only (one batch, one byte string).
Every problem raises :class:`BatchFormatError`. Calldata batches use the same payload
bytes as blob batches (:func:`calldata_for` / :func:`payload_from_calldata`).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgpack

from sequencer_node.batching.compression import (
    DEFAULT_ALGORITHM,
    DEFAULT_MAX_OUTPUT,
    Algorithm,
    CompressionError,
    compress,
    decompress,
)
from sequencer_node.core.ledger import tx_root
from sequencer_node.wire.eth import MAX_ETH_TX_BYTES, EthTransaction
from sequencer_node.wire.messages import (
    MAX_BLOCK_TXS,
    BlockHeader,
    CertifiedBlock,
    ForcedTransaction,
    Transaction,
    block_hash,
)

FORMAT_VERSION = 2
#: Most blocks in one batch (a bound for decoders; the batcher cuts far earlier by size).
MAX_BATCH_BLOCKS = 10_000
#: Most forced entries in one block (as :class:`~sequencer_node.wire.messages.Block`).
MAX_BLOCK_FORCED = 1024
_U64 = (1 << 64) - 1


class BatchFormatError(ValueError):
    """A payload that is not a well-formed, canonical batch; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class BatchBlock:
    """One L2 block as a batch carries it (see the module docstring for what is left out)."""

    height: int
    round: int
    epoch: int
    timestamp_ms: int
    proposer: bytes
    state_root: bytes
    forced_index: int
    l1_origin: int
    transactions: tuple[Transaction, ...]
    forced: tuple[ForcedTransaction, ...]
    eth_transactions: tuple[EthTransaction, ...] = ()

    @classmethod
    def from_certified(cls, cb: CertifiedBlock) -> BatchBlock:
        h = cb.block.header
        return cls(
            h.height,
            h.round,
            h.epoch,
            h.timestamp_ms,
            h.proposer,
            h.state_root,
            h.forced_index,
            h.l1_origin,
            cb.block.transactions,
            cb.block.forced,
            cb.block.eth_transactions,
        )

    def header(self, parent_hash: bytes) -> BlockHeader:
        """The block's header, given its parent's hash (``tx_root`` is recomputed)."""
        return BlockHeader(
            height=self.height,
            round=self.round,
            epoch=self.epoch,
            parent_hash=parent_hash,
            timestamp_ms=self.timestamp_ms,
            proposer=self.proposer,
            tx_root=tx_root(self.transactions, self.forced, self.eth_transactions),
            state_root=self.state_root,
            forced_index=self.forced_index,
            l1_origin=self.l1_origin,
        )


@dataclass(frozen=True, slots=True)
class Batch:
    """A run of consecutive blocks and the hash of the block before the first."""

    parent_hash: bytes
    blocks: tuple[BatchBlock, ...]

    @classmethod
    def from_certified(cls, blocks: Sequence[CertifiedBlock]) -> Batch:
        """A batch of ``blocks``, which must be consecutive and chained by parent hash.

        Raises:
            BatchFormatError: empty, too many blocks, or the blocks do not form a chain.
        """
        if not blocks:
            raise BatchFormatError("a batch needs at least one block")
        if len(blocks) > MAX_BATCH_BLOCKS:
            raise BatchFormatError(f"{len(blocks)} blocks, at most {MAX_BATCH_BLOCKS} per batch")
        for prev, cur in itertools.pairwise(blocks):
            ph, ch = prev.block.header, cur.block.header
            if ch.height != ph.height + 1 or ch.parent_hash != block_hash(ph):
                raise BatchFormatError(
                    f"block at height {ch.height} does not extend block {ph.height}"
                )
        batch = cls(
            blocks[0].block.header.parent_hash,
            tuple(BatchBlock.from_certified(b) for b in blocks),
        )
        _check_structure(batch)
        return batch

    @property
    def first_height(self) -> int:
        return self.blocks[0].height

    @property
    def last_height(self) -> int:
        return self.blocks[-1].height

    def tx_count(self) -> int:
        return sum(
            len(b.transactions) + len(b.forced) + len(b.eth_transactions) for b in self.blocks
        )

    def headers(self) -> list[BlockHeader]:
        """Every block's header, rebuilt and chained from :attr:`parent_hash`."""
        out: list[BlockHeader] = []
        parent = self.parent_hash
        for b in self.blocks:
            h = b.header(parent)
            out.append(h)
            parent = block_hash(h)
        return out

    def last_block_hash(self) -> bytes:
        return block_hash(self.headers()[-1])


# --- body (uncompressed) -----------------------------------------------------------------------


def _tx_row(tx: Transaction) -> list[Any]:
    return [tx.sender, tx.to, tx.amount, tx.nonce, tx.fee, tx.signature]


def encode_body(batch: Batch) -> bytes:
    """The canonical, uncompressed msgpack body of ``batch``."""
    blocks = [
        [
            b.height,
            b.round,
            b.epoch,
            b.timestamp_ms,
            b.proposer,
            b.state_root,
            b.forced_index,
            b.l1_origin,
            [_tx_row(t) for t in b.transactions],
            [[f.queue_index, f.l1_block, _tx_row(f.tx)] for f in b.forced],
            [e.raw for e in b.eth_transactions],
        ]
        for b in batch.blocks
    ]
    out: bytes = msgpack.packb([batch.parent_hash, blocks], use_bin_type=True)
    return out


def _fail(path: str, what: str) -> BatchFormatError:
    return BatchFormatError(f"{path}: {what}")


def _u64(v: Any, path: str) -> int:
    if type(v) is not int or not 0 <= v <= _U64:
        raise _fail(path, f"expected an unsigned 64-bit integer, got {v!r:.40}")
    return v


def _bin(v: Any, n: int, path: str) -> bytes:
    if type(v) is not bytes or len(v) != n:
        raise _fail(path, f"expected {n} bytes, got {type(v).__name__} {v!r:.40}")
    return v


def _list(v: Any, path: str, *, exact: int | None = None, most: int | None = None) -> list[Any]:
    if type(v) is not list:
        raise _fail(path, f"expected a list, got {type(v).__name__}")
    if exact is not None and len(v) != exact:
        raise _fail(path, f"expected {exact} items, got {len(v)}")
    if most is not None and len(v) > most:
        raise _fail(path, f"{len(v)} items, at most {most} allowed")
    return v


def _tx(v: Any, path: str) -> Transaction:
    sender, to, amount, nonce, fee, sig = _list(v, path, exact=6)
    return Transaction(
        _bin(sender, 32, f"{path}.sender"),
        _bin(to, 20, f"{path}.to"),
        _u64(amount, f"{path}.amount"),
        _u64(nonce, f"{path}.nonce"),
        _u64(fee, f"{path}.fee"),
        _bin(sig, 64, f"{path}.signature"),
    )


def _block(v: Any, path: str) -> BatchBlock:
    row = _list(v, path, exact=11)
    txs = _list(row[8], f"{path}.transactions", most=MAX_BLOCK_TXS)
    eth = _list(row[10], f"{path}.eth_transactions", most=MAX_BLOCK_TXS - len(txs))
    forced = _list(row[9], f"{path}.forced", most=MAX_BLOCK_FORCED)
    forced_out = []
    for i, f in enumerate(forced):
        fp = f"{path}.forced[{i}]"
        qi, l1b, tx = _list(f, fp, exact=3)
        forced_out.append(
            ForcedTransaction(
                _u64(qi, f"{fp}.queue_index"), _u64(l1b, f"{fp}.l1_block"), _tx(tx, f"{fp}.tx")
            )
        )
    return BatchBlock(
        height=_u64(row[0], f"{path}.height"),
        round=_u64(row[1], f"{path}.round"),
        epoch=_u64(row[2], f"{path}.epoch"),
        timestamp_ms=_u64(row[3], f"{path}.timestamp_ms"),
        proposer=_bin(row[4], 32, f"{path}.proposer"),
        state_root=_bin(row[5], 32, f"{path}.state_root"),
        forced_index=_u64(row[6], f"{path}.forced_index"),
        l1_origin=_u64(row[7], f"{path}.l1_origin"),
        transactions=tuple(_tx(t, f"{path}.transactions[{i}]") for i, t in enumerate(txs)),
        forced=tuple(forced_out),
        eth_transactions=tuple(_eth(e, f"{path}.eth_transactions[{i}]") for i, e in enumerate(eth)),
    )


def _eth(v: Any, path: str) -> EthTransaction:
    if type(v) is not bytes or not 1 <= len(v) <= MAX_ETH_TX_BYTES:
        raise _fail(path, f"expected 1 to {MAX_ETH_TX_BYTES} bytes of a signed transaction")
    return EthTransaction(v)


def _check_structure(batch: Batch) -> None:
    prev: BatchBlock | None = None
    for i, b in enumerate(batch.blocks):
        path = f"blocks[{i}]"
        if prev is not None and b.height != prev.height + 1:
            raise _fail(path, f"height {b.height} does not follow {prev.height}")
        first_forced = b.forced_index - len(b.forced)
        if first_forced < 0 or (prev is not None and first_forced != prev.forced_index):
            raise _fail(
                path,
                f"forced_index {b.forced_index} with {len(b.forced)} forced entries does not "
                f"follow the previous block's {prev.forced_index if prev else 0}",
            )
        for j, f in enumerate(b.forced):
            if f.queue_index != first_forced + j:
                raise _fail(
                    f"{path}.forced[{j}]",
                    f"queue index {f.queue_index}, expected {first_forced + j}",
                )
        prev = b


def decode_body(data: bytes) -> Batch:
    """Strict inverse of :func:`encode_body`.

    Raises:
        BatchFormatError: anything but the canonical body of a well-formed batch.
    """
    try:
        obj = msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            max_map_len=0,
            max_ext_len=0,
            max_str_len=0,
            max_bin_len=MAX_ETH_TX_BYTES,
            max_array_len=max(MAX_BLOCK_TXS, MAX_BATCH_BLOCKS),
        )
    except (ValueError, msgpack.UnpackException) as e:  # ExtraData, FormatError, limits
        raise BatchFormatError(
            f"batch body is not valid msgpack: {type(e).__name__}: {e}"
        ) from None
    parent, blocks = _list(obj, "batch", exact=2)
    rows = _list(blocks, "batch.blocks", most=MAX_BATCH_BLOCKS)
    if not rows:
        raise BatchFormatError("batch.blocks: a batch needs at least one block")
    batch = Batch(
        _bin(parent, 32, "batch.parent_hash"),
        tuple(_block(r, f"blocks[{i}]") for i, r in enumerate(rows)),
    )
    _check_structure(batch)
    if encode_body(batch) != data:
        raise BatchFormatError("batch body is not in canonical encoding")
    return batch


# --- payload (versioned, compressed) -----------------------------------------------------------


def encode_payload(batch: Batch, algorithm: Algorithm = DEFAULT_ALGORITHM) -> bytes:
    """``version || algorithm || compress(body)``: what goes into blobs or calldata."""
    return bytes([FORMAT_VERSION, int(algorithm)]) + compress(encode_body(batch), algorithm)


def payload_algorithm(payload: bytes) -> Algorithm:
    """The compression algorithm named in a payload's header."""
    _check_header(payload)
    return Algorithm(payload[1])


def _check_header(payload: bytes) -> None:
    if len(payload) < 2:
        raise BatchFormatError(f"payload of {len(payload)} bytes has no header")
    if payload[0] != FORMAT_VERSION:
        raise BatchFormatError(
            f"unknown batch format version {payload[0]} (this node reads {FORMAT_VERSION})"
        )
    if payload[1] not in {a.value for a in Algorithm}:
        raise BatchFormatError(f"unknown compression algorithm tag {payload[1]}")


def payload_body(payload: bytes, *, max_body: int = DEFAULT_MAX_OUTPUT) -> bytes:
    """The decompressed body of a payload (what :func:`encode_body` made), bounded by
    ``max_body``.

    Raises:
        BatchFormatError: bad header, corrupt data, or more than ``max_body`` bytes.
    """
    _check_header(payload)
    try:
        return decompress(payload[2:], payload[1], max_output=max_body)
    except CompressionError as e:
        raise BatchFormatError(f"batch payload: {e}") from None


def decode_payload(payload: bytes, *, max_body: int = DEFAULT_MAX_OUTPUT) -> Batch:
    """Strict inverse of :func:`encode_payload`; decompression is bounded by ``max_body``.

    Raises:
        BatchFormatError: bad header, corrupt or oversized compressed data, or a bad body.
    """
    return decode_body(payload_body(payload, max_body=max_body))


def calldata_for(payload: bytes) -> bytes:
    """The calldata of a ``--da calldata`` batch: the payload as-is (same header)."""
    _check_header(payload)
    return payload


def payload_from_calldata(calldata: bytes) -> bytes:
    """The payload of a calldata batch (its header is checked; the body by decode_payload)."""
    _check_header(calldata)
    return calldata
