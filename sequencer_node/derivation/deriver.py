"""The :class:`Deriver`: L2 state rebuilt from what the L1 holds, and nothing else.

(Named for what it does: the keyless "follower" is a node role, and the node's
``L1Watcher`` watches the L1's stake table; the deriver reads batches. The command that runs
it stays ``sequencer-node follow``.) For each batch the inbox accepted, in order, it

1. checks the header continues the previous one (batch number, parent batch hash, first
   height, chain id);
2. fetches the data: blob sidecars from the Beacon API of the L1 block that included the
   batch, selected by the header's versioned hashes, each KZG proof verified; or the
   calldata of the inbox call (``eth_getBlockByNumber`` with full transactions); or, for an
   extda batch, the blob its DA pointer names, from the external DA layer, proven against
   the data root the L1 inbox verified (namespace proof: a withheld or added blob is caught;
   the share commitment: a forged blob is caught);
3. checks ``sha256(payload) == data_hash`` and ``len(payload) == data_bytes``, decodes the
   payload strictly, and checks the L2 heights against the header;
4. re-executes every block with :class:`~sequencer_node.core.ledger.Ledger` from the L2
   genesis (signatures checked, forced entries compared with the L1 forced queue), compares
   every block's state root, then the rebuilt last block hash and state root with the
   header, which > 2/3 of stake certified.

When blobs are pruned (past the L1's retention window) it raises :class:`PrunedData` naming
the batch, its L2 heights, the L1 block and the L1's own explanation (which epoch, since
when), instead of failing obscurely. A deriver with a data directory keeps its state (the
ledger and the cursor) there, so batches still inside the window keep deriving after older
ones are pruned; :meth:`Deriver.check_available` checks later batches' data without
executing them when the state before them cannot be rebuilt.
"""

from __future__ import annotations

import hashlib
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import trio

from sequencer_node.batching.blobs import BlobDecodeError, unpack_blobs
from sequencer_node.batching.codec import Batch, BatchFormatError, decode_payload
from sequencer_node.clients.da import DAClient, DAUnavailable
from sequencer_node.clients.l1 import BlobsPruned, InboxBatch, L1Client, L1Rejected
from sequencer_node.core.fees import FeeParams, L1FeeInfo
from sequencer_node.core.ledger import FeeInput, InvalidBlock, Ledger
from sequencer_node.core.reconfig import BlockKind, kind_of
from sequencer_node.system.files import atomic_write
from sequencer_node.wire.blobs import kzg_to_versioned_hash
from sequencer_node.wire.codec import CodecError, decode
from sequencer_node.wire.da.reader import NotVerified
from sequencer_node.wire.kzg import verify_blobs_batch
from sequencer_node.wire.l1calls import SubmitBatch, decode_params
from sequencer_node.wire.messages import (
    DA_CALLDATA,
    DA_EXTERNAL,
    DA_KINDS,
    ZERO_HASH,
    BlockHeader,
    ForcedTransaction,
    L1Call,
    batch_hash,
    block_hash,
)

log = logging.getLogger("seqnet.derivation")

STATE_FILENAME = "follower-state.bin"
#: Batches fetched from the inbox per request.
_PAGE = 16
#: Derived batches remembered for status reports.
_HISTORY = 256


@dataclass(frozen=True, slots=True)
class DerivationGenesis:
    """What derivation needs of the L2 genesis."""

    chain_id: int
    timestamp_ms: int
    balances: tuple[tuple[bytes, int], ...]
    #: The fee model (None: flat, no fee state) and the epoch length (a pending model takes
    #: over at an epoch's first block).
    fees: FeeParams | None = None
    epoch_length: int = 1_000

    @classmethod
    def from_l2(cls, g: Any) -> DerivationGenesis:
        """From :class:`sequencer_node.genesis.L2Genesis`."""
        return cls(int(g.chain_id), int(g.timestamp_ms), tuple(g.balances), g.fees,
                   g.core_config(None).epoch_length)  # fmt: skip


def genesis_block_hash(g: DerivationGenesis) -> bytes:
    """The hash of the L2 genesis block (height 0), as :class:`SequencerCore` builds it."""
    ledger = Ledger.genesis(dict(g.balances), g.fees)
    header = BlockHeader(
        0, 0, 0, ZERO_HASH, g.timestamp_ms, bytes(32), ZERO_HASH, ledger.state_root(), 0, 0
    )
    return block_hash(header)


class DerivationError(Exception):
    """Derivation cannot go on; the message says which batch and why."""


class PrunedData(DerivationError):
    """The blobs a batch needs are past the L1's retention window."""

    def __init__(self, ib: InboxBatch, l1_message: str) -> None:
        h = ib.header
        super().__init__(
            f"cannot derive batch {h.batch_number} (L2 blocks {h.first_height}-{h.last_height}):"
            f" its blobs in L1 block {ib.l1_block} are pruned. The L1 says: {l1_message}. "
            "Derive from a follower data directory that saw this batch while it was available,"
            " or from an archive that kept the blobs."
        )
        self.batch_number = h.batch_number
        self.l1_block = ib.l1_block
        self.l1_message = l1_message


class InvalidBatch(DerivationError):
    """The L1 holds a certified batch whose data does not check out."""


@dataclass(frozen=True, slots=True)
class DerivedBatch:
    batch_number: int
    first_height: int
    last_height: int
    l1_block: int
    da: str
    txs: int
    state_root: bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "batch": self.batch_number,
            "first_height": self.first_height,
            "last_height": self.last_height,
            "l1_block": self.l1_block,
            "da": self.da,
            "txs": self.txs,
            "state_root": "0x" + self.state_root.hex(),
        }


class Deriver:
    """``await Deriver(l1, genesis).derive_available()``; see the module docstring."""

    def __init__(
        self,
        l1: L1Client,
        genesis: DerivationGenesis,
        *,
        data_dir: Path | None = None,
        da: DAClient | None = None,
    ) -> None:
        self.l1 = l1
        self.da = da
        self.genesis = genesis
        self.chain_id = genesis.chain_id
        self.data_dir = data_dir
        self.ledger = Ledger.genesis(dict(genesis.balances), genesis.fees)
        self.height = 0
        self.last_block_hash = genesis_block_hash(genesis)
        self.next_batch = 0
        self.last_batch_hash = ZERO_HASH
        self.history: deque[DerivedBatch] = deque(maxlen=_HISTORY)
        self.error: DerivationError | None = None
        if data_dir is not None:
            self._load()

    # --- persistence -------------------------------------------------------------------------

    def _state_path(self) -> Path | None:
        return None if self.data_dir is None else self.data_dir / STATE_FILENAME

    def _load(self) -> None:
        path = self._state_path()
        if path is None or not path.exists():
            return
        try:
            d = msgpack.unpackb(path.read_bytes(), raw=False)
            if d["chain_id"] != self.chain_id:
                raise DerivationError(
                    f"{path} belongs to L2 chain {d['chain_id']}, not {self.chain_id}; "
                    "use another --data-dir"
                )
            self.ledger = Ledger.from_bytes(d["ledger"])
            self.height = d["height"]
            self.last_block_hash = d["last_block_hash"]
            self.next_batch = d["next_batch"]
            self.last_batch_hash = d["last_batch_hash"]
        except (ValueError, KeyError, TypeError, msgpack.UnpackException) as e:
            raise DerivationError(
                f"{path} is unreadable ({type(e).__name__}: {e}); delete it to derive from genesis"
            ) from None

    def _save(self) -> None:
        path = self._state_path()
        if path is None:
            return
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        data = msgpack.packb(
            {
                "chain_id": self.chain_id,
                "ledger": self.ledger.to_bytes(),
                "height": self.height,
                "last_block_hash": self.last_block_hash,
                "next_batch": self.next_batch,
                "last_batch_hash": self.last_batch_hash,
            },
            use_bin_type=True,
        )
        atomic_write(path, data)

    # --- deriving ----------------------------------------------------------------------------

    def state_root(self) -> bytes:
        return self.ledger.state_root()

    async def derive_available(self, *, max_batches: int | None = None) -> list[DerivedBatch]:
        """Derive every batch the inbox holds beyond the cursor (or ``max_batches``).

        Raises:
            PrunedData, InvalidBatch, DerivationError: the batch that stops derivation.
        """
        out: list[DerivedBatch] = []
        while max_batches is None or len(out) < max_batches:
            page = await self.l1.inbox_batches(self.next_batch, _PAGE)
            if not page:
                break
            for ib in page:
                try:
                    d = await self.derive(ib)
                except DerivationError as e:
                    self.error = e
                    raise
                out.append(d)
                if max_batches is not None and len(out) >= max_batches:
                    break
        self.error = None
        return out

    async def derive(self, ib: InboxBatch) -> DerivedBatch:
        """Derive one batch, which must be the next one; state moves only on success."""
        h = ib.header
        where = f"batch {h.batch_number} (L1 block {ib.l1_block})"
        self._check_continues(ib, where)
        batch = await self.fetch(ib)
        if batch.parent_hash != self.last_block_hash:
            raise InvalidBatch(f"{where}: the first block's parent is not L2 block {self.height}")
        forced = await self._forced_entries(batch)
        l1_fees = await self._l1_fees(batch)
        ledger, txs = self._execute(batch, forced, where, l1_fees)
        headers = batch.headers()
        if block_hash(headers[-1]) != h.last_block_hash:
            raise InvalidBatch(f"{where}: the rebuilt last block hash differs from the header's")
        if ledger.state_root() != h.state_root or headers[-1].forced_index != h.forced_index:
            raise InvalidBatch(f"{where}: state root or forced index differs from the header's")
        return await self._advance(ib, ledger, txs)

    def _check_continues(self, ib: InboxBatch, where: str) -> None:
        """The header continues the derived chain: number, chain id, parent, first height."""
        h = ib.header
        if h.batch_number != self.next_batch:
            raise DerivationError(f"{where}: expected batch {self.next_batch} next")
        if h.chain_id != self.chain_id:
            raise InvalidBatch(
                f"{where}: for L2 chain {h.chain_id}, this follower is {self.chain_id}"
            )
        if h.parent_batch_hash != self.last_batch_hash:
            raise InvalidBatch(
                f"{where}: parent batch hash does not match batch {h.batch_number - 1}"
            )
        if h.first_height != self.height + 1:
            raise InvalidBatch(
                f"{where}: starts at L2 height {h.first_height}, expected {self.height + 1}"
            )

    async def _l1_fees(self, batch: Batch) -> dict[int, L1FeeInfo]:
        """The L1 fee data the batch's blocks consume (none without a fee model)."""
        state = self.ledger.fee_state()
        if state is None or not batch.blocks:
            return {}
        top = max(h.l1_origin for h in batch.headers())
        start = batch.headers()[0].l1_origin if state.l1_origin is None else state.l1_origin + 1
        out: dict[int, L1FeeInfo] = {}
        while start <= top:
            page = await self.l1.l1_fee_info(start, min(top - start + 1, 1_000))
            if not page:
                break  # not finalized yet: execution names the missing block
            for r in page:
                out[r.number] = L1FeeInfo.of(r.number, r.base_fee, r.blob_base_fee, r.batches,
                                             r.fee_model)  # fmt: skip
            start = page[-1].number + 1
        return out

    def _fee_input(
        self, ledger: Ledger, header: BlockHeader, l1_fees: dict[int, L1FeeInfo], where: str
    ) -> FeeInput | None:
        if ledger.fee_state() is None:
            return None
        infos = []
        for n in ledger.l1_needed(header.l1_origin):
            if n not in l1_fees:
                raise DerivationError(f"{where}: the L1 has no fee data of block {n} yet")
            infos.append(l1_fees[n])
        first = kind_of(header, self.genesis.epoch_length) is BlockKind.FIRST
        return FeeInput(header.l1_origin, tuple(infos), first)

    def _execute(
        self,
        batch: Batch,
        forced: dict[int, ForcedTransaction],
        where: str,
        l1_fees: dict[int, L1FeeInfo] | None = None,
    ) -> tuple[Ledger, int]:
        """Re-execute every block of ``batch`` on a copy of the ledger, checking each block's
        forced entries and state root; returns the new ledger and the transactions run."""
        ledger = self.ledger
        txs = 0
        for b, header in zip(batch.blocks, batch.headers(), strict=True):
            for f in b.forced:
                if forced.get(f.queue_index) != f:
                    raise InvalidBatch(
                        f"{where}: L2 block {b.height} carries forced entry {f.queue_index} that "
                        "is not the L1 forced queue's entry"
                    )
            if kind_of(header, self.genesis.epoch_length) is BlockKind.SUFFIX and not (
                b.transactions or b.forced
            ):
                # An epoch's suffix block keeps its parent's state, as the core keeps it
                # (an empty block would move a fee model's base fee).
                if ledger.state_root() != header.state_root:
                    raise InvalidBatch(f"{where}: suffix block {b.height} changes the state")
                continue
            try:
                ledger, _ = ledger.apply_block(
                    b.transactions, b.forced, proposer=b.proposer, chain_id=self.chain_id,
                    eth_txs=b.eth_transactions,
                    fee_input=self._fee_input(ledger, header, l1_fees or {}, where),
                )  # fmt: skip
            except InvalidBlock as e:
                raise InvalidBatch(f"{where}: L2 block {b.height} does not execute: {e}") from None
            if ledger.state_root() != header.state_root:
                raise InvalidBatch(
                    f"{where}: L2 block {b.height}: state root after re-execution is "
                    f"0x{ledger.state_root().hex()}, the block says 0x{header.state_root.hex()}"
                )
            txs += len(b.transactions) + len(b.forced) + len(b.eth_transactions)
        return ledger, txs

    async def _advance(self, ib: InboxBatch, ledger: Ledger, txs: int) -> DerivedBatch:
        """Move the cursor past ``ib`` (durably, with a data directory)."""
        h = ib.header
        self.ledger = ledger
        self.height = h.last_height
        self.last_block_hash = h.last_block_hash
        self.next_batch = h.batch_number + 1
        self.last_batch_hash = batch_hash(h)
        await trio.to_thread.run_sync(self._save)
        d = DerivedBatch(
            h.batch_number,
            h.first_height,
            h.last_height,
            ib.l1_block,
            DA_KINDS[h.da_kind],
            txs,
            h.state_root,
        )
        self.history.append(d)
        log.info(
            "derived batch %d: L2 blocks %d-%d, %d txs, state root 0x%s",
            d.batch_number,
            d.first_height,
            d.last_height,
            d.txs,
            d.state_root.hex()[:16],
        )
        return d

    async def _forced_entries(self, batch: Batch) -> dict[int, ForcedTransaction]:
        wanted = [f.queue_index for b in batch.blocks for f in b.forced]
        if not wanted:
            return {}
        out: dict[int, ForcedTransaction] = {}
        start, end = min(wanted), max(wanted)
        while start <= end:
            q = await self.l1.forced_queue(start, min(1000, end - start + 1))
            if not q.entries:
                break
            for e in q.entries:
                out[e.queue_index] = e
            start += len(q.entries)
        return out

    async def fetch(self, ib: InboxBatch) -> Batch:
        """The decoded payload of ``ib``, checked against its header.

        Raises:
            PrunedData: the blobs are past retention.
            InvalidBatch: missing or wrong data.
        """
        h = ib.header
        where = f"batch {h.batch_number} (L1 block {ib.l1_block})"
        if h.da_kind == DA_CALLDATA:
            payload = await self._calldata(ib)
        elif h.da_kind == DA_EXTERNAL:
            payload = await self._external_payload(ib)
        else:
            payload = await self._blob_payload(ib)
        if hashlib.sha256(payload).digest() != h.data_hash or len(payload) != h.data_bytes:
            raise InvalidBatch(f"{where}: the data does not match the header's data hash/size")
        try:
            batch = decode_payload(payload)
        except BatchFormatError as e:
            raise InvalidBatch(f"{where}: the payload does not decode: {e}") from None
        if (batch.first_height, batch.last_height) != (h.first_height, h.last_height):
            raise InvalidBatch(
                f"{where}: payload carries L2 blocks {batch.first_height}-{batch.last_height}, "
                f"the header says {h.first_height}-{h.last_height}"
            )
        return batch

    async def _blob_payload(self, ib: InboxBatch) -> bytes:
        h = ib.header
        where = f"batch {h.batch_number} (L1 block {ib.l1_block})"
        blk = await self.l1.block(ib.l1_block)
        try:
            sidecars = await self.l1.blob_sidecars("0x" + blk.hash.hex())
        except BlobsPruned as e:
            raise PrunedData(ib, e.message) from None
        by_hash = {kzg_to_versioned_hash(s.kzg_commitment): s for s in sidecars}
        chosen = []
        for i, vh in enumerate(h.blob_hashes):
            s = by_hash.get(vh)
            if s is None:
                raise InvalidBatch(f"{where}: blob {i} (0x{vh.hex()[:16]}..) is not in the block")
            chosen.append(s)
        blobs = [s.blob for s in chosen]
        check = await trio.to_thread.run_sync(
            verify_blobs_batch,
            blobs,
            [s.kzg_commitment for s in chosen],
            [s.kzg_proof for s in chosen],
        )
        if not check.ok:
            raise InvalidBatch(f"{where}: {check.error}")
        try:
            return unpack_blobs(blobs)
        except BlobDecodeError as e:
            raise InvalidBatch(f"{where}: the blobs do not decode: {e}") from None

    async def _external_payload(self, ib: InboxBatch) -> bytes:
        """The blob an extda header points at, proven against the tuple the L1 verified."""
        h = ib.header
        where = f"batch {h.batch_number} (L1 block {ib.l1_block})"
        pointer, t = h.da_pointer, ib.da_tuple
        if pointer is None or t is None or t.height != pointer.height:
            raise InvalidBatch(f"{where}: an extda batch without the DA tuple the L1 proved")
        if self.da is None:
            raise DerivationError(
                f"{where}: its data is on the external DA layer; give the DA node (--da-url)"
            )
        try:
            return await self.da.read(pointer, t.data_root, t.share_count)
        except NotVerified as e:
            raise InvalidBatch(
                f"{where}: the DA layer's answer for DA block {pointer.height} does not verify "
                f"(withheld or forged data): {e}"
            ) from None
        except DAUnavailable as e:
            raise DerivationError(f"{where}: cannot read its data from the DA layer: {e}") from None

    async def _calldata(self, ib: InboxBatch) -> bytes:
        where = f"batch {ib.header.batch_number} (L1 block {ib.l1_block})"
        blk = await self.l1.rpc("eth_getBlockByNumber", hex(ib.l1_block), True)
        want = "0x" + ib.tx_hash.hex()
        for tx in (blk or {}).get("transactions", []):
            if isinstance(tx, dict) and tx.get("hash") == want:
                raw = str(tx.get("input", "0x"))
                if raw == "0x":
                    raise DerivationError(
                        f"{where}: the L1 does not expose the call's input, so calldata batches "
                        "cannot be derived from it (update the L1 node)"
                    )
                try:
                    call = decode(bytes.fromhex(raw.removeprefix("0x")), L1Call)
                    params = decode_params(call)
                except (CodecError, KeyError, ValueError) as e:
                    raise InvalidBatch(f"{where}: the call input does not decode: {e}") from None
                if not isinstance(params, SubmitBatch):
                    raise InvalidBatch(f"{where}: the call is {call.method}, not submitBatch")
                return bytes(params.calldata)
        raise DerivationError(f"{where}: call {want} is not in that L1 block")

    async def check_available(self, start: int, count: int = 100) -> list[tuple[int, str | None]]:
        """Fetch and check (without executing) batches from ``start``: ``(number, problem)``.

        For a deriver that cannot rebuild the state before ``start`` (earlier data pruned):
        shows which later batches are still available and well-formed.
        """
        out: list[tuple[int, str | None]] = []
        for ib in await self.l1.inbox_batches(start, min(count, 1000)):
            try:
                batch = await self.fetch(ib)
                if batch.last_block_hash() != ib.header.last_block_hash:
                    raise InvalidBatch("the rebuilt last block hash differs from the header's")
                out.append((ib.header.batch_number, None))
            except DerivationError as e:
                out.append((ib.header.batch_number, str(e)))
            except L1Rejected as e:
                out.append((ib.header.batch_number, f"L1 refused: {e.reason}"))
        return out

    def status(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "height": self.height,
            "last_block_hash": "0x" + self.last_block_hash.hex(),
            "state_root": "0x" + self.state_root().hex(),
            "next_batch": self.next_batch,
            "batches": [d.to_json() for d in list(self.history)[-10:]],
            "error": None if self.error is None else str(self.error),
        }


def describe(batches: Sequence[DerivedBatch]) -> str:
    if not batches:
        return "no new batches"
    return (
        f"{len(batches)} batches, L2 blocks {batches[0].first_height}-{batches[-1].last_height}, "
        f"{sum(b.txs for b in batches)} txs"
    )


__all__ = [
    "DerivationError",
    "DerivedBatch",
    "Deriver",
    "DerivationGenesis",
    "InvalidBatch",
    "PrunedData",
    "describe",
    "genesis_block_hash",
]
