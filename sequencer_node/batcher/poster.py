"""Posting certified batches to the L1 inbox, durably, exactly once, in order.

State of one batch (:class:`~sequencer_node.batcher.records.BatchRecords`, one SQLite file
that holds the header, the certificate, the state and the call)::

    certified() : SIGNED                   (header and certificate saved)
    post()      : SIGNED -> POSTED(tx h)   written BEFORE the call leaves the process
                  send the call
    post()/sync : POSTED -> ACCEPTED       once the inbox holds the batch

Restart reconciliation (:meth:`Poster.post` on a batch found SIGNED or POSTED): the L1 inbox
is the truth. If it holds the batch, record ACCEPTED (whoever posted it). Otherwise, for
POSTED, look the recorded tx hash up: in a block with status 1 -> ACCEPTED; pending in the
L1 pool -> wait; in a block with status 0 -> post again with a fresh nonce and fee; unknown
(the process died before the call reached the L1) -> resend the *same* call (same nonce,
fee and bytes, hence the same hash: the blobs are rebuilt byte-identically from the chain).
So a crash between signing and posting re-posts once, a crash between posting and
recording posts nothing more, and the inbox's own rule (batch number = last + 1, parent
hash) refuses any duplicate cleanly, which the poster reads as "accepted by someone".

Fee policy: ``maxFeePerBlobGas = blob base fee of the next block * (1 + margin)``, capped.
Above the cap the poster does not send and says so; every new attempt (after a failed
block, a refused nonce, a restart) prices from the current base fee, so a spike is met with
a raised fee. The mock L1 has no replace-by-fee, so a call already in the pool waits there
until the base fee falls under its cap (logged as stuck).

Fault injection: ``fault(point)`` is called at ``after_sign``, ``before_send`` and
``after_send``; tests raise (or kill the process) there to simulate crashes.
"""

from __future__ import annotations

import enum
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio

from sequencer_node.batcher.config import BatcherConfig, max_fee_per_blob_gas
from sequencer_node.batcher.kzg_worker import Prepared
from sequencer_node.batcher.records import (
    BatchCost,
    BatchRecords,
    BatchState,
    Inflight,
    RecordsError,
)
from sequencer_node.clients.l1 import InboxBatch, L1Client, L1Rejected
from sequencer_node.wire.codec import message_id
from sequencer_node.wire.crypto import SigningKey
from sequencer_node.wire.da.attest import PointerProof
from sequencer_node.wire.l1calls import SubmitBatch, make_call
from sequencer_node.wire.messages import DA_EXTERNAL, DA_KINDS, BatchCertificate, BatchHeader

log = logging.getLogger("seqnet.batcher.poster")

FaultHook = Callable[[str], None]
Rebuild = Callable[[BatchHeader, int], Awaitable[Prepared]]
TxCount = Callable[[int, int], Awaitable[int]]
#: An extda header's attestation nonce and DA pointer proof (raises PosterError).
DaProof = Callable[[BatchHeader], Awaitable[tuple[int, PointerProof]]]
#: What the DA layer charged an accepted extda batch, in its fee units and in wei (None: not
#: known: the caller then prices the blob from the L1-proven data root tuple).
DaFee = Callable[[InboxBatch], Awaitable[tuple[int, int] | None]]
#: Prepared batches kept in memory for re-sending without a rebuild.
_MAX_CACHED = 8
_MAX_NONCE_RETRIES = 3


class PosterError(Exception):
    """The poster cannot go on with a batch (the message says why and what to do)."""


class PostOutcome(enum.Enum):
    """What one :meth:`Poster.post` step did."""

    SENT = "sent"  # a call left for the L1
    ACCEPTED = "accepted"  # the inbox holds the batch (whoever posted it)
    WAITING = "waiting"  # our call is in the L1 pool
    NOT_NEXT = "not_next"  # the inbox expects another batch number first
    FEE_ABOVE_CAP = "fee_above_cap"  # not sent: the blob base fee is above the cap
    REJECTED = "rejected"  # the L1 refused the call at submission


@dataclass(frozen=True, slots=True)
class PostResult:
    outcome: PostOutcome
    detail: str = ""
    tx_hash: bytes | None = None


class Poster:
    """Posts this node's certified batches; see the module docstring for the protocol.

    With ``key=None`` it only records what the inbox accepted (and its cost).
    """

    def __init__(
        self,
        *,
        records: BatchRecords,
        l1: L1Client,
        key: SigningKey | None,
        l1_chain_id: int,
        config: BatcherConfig,
        rebuild: Rebuild,
        tx_count: TxCount | None = None,
        fault: FaultHook | None = None,
        da_proof: DaProof | None = None,
        da_fee: DaFee | None = None,
    ) -> None:
        self.records = records
        self.l1 = l1
        self.key = key
        self.l1_chain_id = l1_chain_id
        self.config = config
        self._rebuild = rebuild
        self._tx_count = tx_count
        self._da_proof = da_proof
        self._da_fee = da_fee
        self._fault = fault or (lambda point: None)
        self._prepared: OrderedDict[int, Prepared] = OrderedDict()
        # post() reads the recorded state, then awaits (disk, L1) before recording POSTED;
        # two concurrent calls for one batch would both see SIGNED and both send.
        self._post_lock = trio.Lock()

    async def _io(self, fn: Callable[..., object], *args: object, **kw: object) -> object:
        return await trio.to_thread.run_sync(lambda: fn(*args, **kw))

    # --- recording ---------------------------------------------------------------------------

    async def certified(self, cert: BatchCertificate, prepared: Prepared) -> None:
        """Record a certified batch durably (SIGNED, header and certificate kept)."""
        await self._io(self.records.record_certified, cert, prepared.draft.algorithm)
        self._remember(cert.header.batch_number, prepared)
        self._fault("after_sign")

    def _remember(self, n: int, prepared: Prepared) -> None:
        self._prepared[n] = prepared
        while len(self._prepared) > _MAX_CACHED:
            self._prepared.popitem(last=False)

    async def note_accepted(self, ib: InboxBatch) -> BatchCost | None:
        """Record that the inbox holds ``ib`` (posted by anyone) and what it cost."""
        n = ib.header.batch_number
        rec = self.records.get(n)
        if rec is not None and rec.header != ib.header:
            log.warning(
                "batch %d: the inbox accepted another header than the one recorded here "
                "(another proposal won); keeping the inbox's",
                n,
            )
        # The cost first: if reading it from the L1 fails, nothing is recorded and the next
        # sync tries again, so an accepted batch is never left without its cost (and views
        # never show an accepted batch whose cost is still being read).
        cost = await self._record_cost(ib)
        try:
            await self._io(self.records.record_accepted, ib.header, ib.tx_hash)
        except RecordsError as e:
            log.warning("batch %d: could not record acceptance: %s", n, e)
        self._prepared.pop(n, None)
        return cost

    async def _record_cost(self, ib: InboxBatch) -> BatchCost | None:
        # One exchange: the inbox names the block the batch landed in.
        r, blk = await self.l1.receipt_and_block(ib.tx_hash, ib.l1_block)
        if r is None:
            return None
        if blk is None or blk.number != r.block_number:  # not expected: the receipt rules
            blk = await self.l1.block(r.block_number)
        h = ib.header
        blob_fee = r.blob_gas_used * r.blob_gas_price
        fee = r.gas_used * blk.base_fee_per_gas + blob_fee
        prepared = self._prepared.get(h.batch_number)
        if prepared is not None:
            txs = prepared.draft.tx_count
        elif self._tx_count is not None:
            txs = await self._tx_count(h.first_height, h.last_height)
        else:
            txs = 0
        inflight = self.records.inflight(h.batch_number)
        blobs = len(h.blob_hashes)
        da = None if self._da_fee is None or h.da_pointer is None else await self._da_fee(ib)
        cost = BatchCost(
            batch_number=h.batch_number,
            first_height=h.first_height,
            last_height=h.last_height,
            l1_block=ib.l1_block,
            l1_tx=ib.tx_hash,
            da=DA_KINDS[h.da_kind],
            blobs=blobs,
            posted_bytes=blobs * 131072 if blobs else h.data_bytes,
            payload_bytes=h.data_bytes,
            txs=txs,
            fee_paid=fee,
            blob_fee=blob_fee,
            by_us=inflight is not None and inflight.tx_hash == ib.tx_hash,
            da_fee=None if da is None else da[0],
            da_fee_wei=0 if da is None else da[1],
        )
        await self._io(self.records.save_cost, cost)
        return cost

    # --- posting -----------------------------------------------------------------------------

    async def _inbox_has(self, n: int) -> InboxBatch | None:
        found = await self.l1.inbox_batches(n, 1)
        return found[0] if found and found[0].header.batch_number == n else None

    async def post(self, batch_number: int) -> PostResult:
        """Move batch ``batch_number`` (recorded SIGNED or later) towards ACCEPTED by one step.

        Safe to call again at any time, after a crash included, and from several tasks: calls
        are serialized, so each sees the state the previous one recorded.
        """
        async with self._post_lock:
            return await self._post(batch_number)

    async def _post(self, batch_number: int) -> PostResult:
        n = batch_number
        rec = self.records.get(n)
        if rec is None or (rec.certificate is None and rec.state < BatchState.ACCEPTED):
            raise PosterError(f"batch {n} has no recorded certificate; nothing to post")
        if rec.state == BatchState.ACCEPTED:
            return PostResult(PostOutcome.ACCEPTED, tx_hash=rec.l1_tx_hash)
        ib = await self._inbox_has(n)
        if ib is not None:
            await self.note_accepted(ib)
            return PostResult(PostOutcome.ACCEPTED, "in the inbox", ib.tx_hash)
        last = await self.l1.last_batch()
        want = last.header.batch_number + 1 if last else 0
        if n != want:
            return PostResult(PostOutcome.NOT_NEXT, f"the inbox expects batch {want}")
        inflight = self.records.inflight(n) if rec.state == BatchState.POSTED else None
        if inflight is not None:
            settled = await self._settle_inflight(rec.header, inflight)
            if settled is not None:
                return settled
        return await self._send(rec.header, reuse=None)

    async def _settle_inflight(self, header: BatchHeader, inflight: Inflight) -> PostResult | None:
        """The fate of the call recorded for ``header``: waiting, accepted, resent as is, or
        None when it failed in its block (then a fresh call is due)."""
        n = header.batch_number
        r = await self.l1.receipt(inflight.tx_hash)
        if r is None:
            pending = await self.l1.rpc("seq_pendingCalls")
            if "0x" + inflight.tx_hash.hex() in pending:
                base = await self.l1.blob_base_fee() if header.blob_hashes else 0
                if header.blob_hashes and base > inflight.max_fee:
                    log.warning(
                        "batch %d: call 0x%s is stuck: blob base fee %d wei is above "
                        "its max fee %d wei (the L1 has no replace-by-fee; waiting)",
                        n,
                        inflight.tx_hash.hex()[:16],
                        base,
                        inflight.max_fee,
                    )
                return PostResult(PostOutcome.WAITING, "in the L1 pool", inflight.tx_hash)
            # Never reached the L1 (died before sending): send the very same call.
            return await self._send(header, reuse=inflight)
        if r.status == 1:
            ib = await self._inbox_has(n)
            if ib is not None:
                await self.note_accepted(ib)
                return PostResult(PostOutcome.ACCEPTED, "", ib.tx_hash)
        log.warning("batch %d: call failed in L1 block %d: %s", n, r.block_number, r.reason)
        return None

    async def _prepared_for(self, header: BatchHeader, algorithm: int) -> Prepared:
        """The batch's data (cached, or rebuilt from the chain), checked against the header."""
        n = header.batch_number
        prepared = self._prepared.get(n)
        if prepared is None:
            prepared = await self._rebuild(header, algorithm)
            self._remember(n, prepared)
        if prepared.blob_hashes != header.blob_hashes or prepared.draft.data_hash != (
            header.data_hash
        ):
            raise PosterError(
                f"batch {n}: the rebuilt data does not match the certified header; this "
                "node's chain differs from the one the batch was certified on"
            )
        return prepared

    async def _price(self, blobs: bool) -> int | PostResult:
        """maxFeePerBlobGas for a new call, or FEE_ABOVE_CAP."""
        if not blobs:
            return 0
        base = await self.l1.blob_base_fee()
        if base > self.config.fee_cap_wei:
            return PostResult(
                PostOutcome.FEE_ABOVE_CAP,
                f"blob base fee {base} wei is above the cap of "
                f"{self.config.fee_cap_wei} wei; waiting for it to fall",
            )
        return max_fee_per_blob_gas(base, self.config.fee_margin, self.config.fee_cap_wei)

    async def _send(self, header: BatchHeader, *, reuse: Inflight | None) -> PostResult:
        n = header.batch_number
        if self.key is None:
            raise PosterError("this node has no signing key; it records batches but never posts")
        key = self.key
        rec = self.records.get(n)
        if rec is None or rec.certificate is None:
            raise PosterError(f"batch {n} is SIGNED but its certificate is missing")
        prepared = await self._prepared_for(header, rec.algorithm)
        blobs = bool(prepared.draft.blobs)
        da_nonce, da_proof = await self._external(header)
        attempts = (reuse.attempts if reuse else 0) + 1
        for _ in range(_MAX_NONCE_RETRIES):
            if reuse is not None:
                nonce, fee = reuse.nonce, reuse.max_fee
            else:
                priced = await self._price(blobs)
                if isinstance(priced, PostResult):
                    return priced
                fee = priced
                nonce = await self.l1.nonce(key.address, pending=True)
            params = SubmitBatch(
                rec.certificate,
                fee,
                prepared.draft.blobs,
                prepared.commitments,
                prepared.proofs,
                b"" if blobs or da_proof is not None else prepared.draft.payload,
                da_nonce,
                da_proof,
            )
            call = make_call(params, key, nonce, self.l1_chain_id)
            h = message_id(call)
            if reuse is None or reuse.tx_hash != h:
                await self._io(self.records.save_inflight, Inflight(n, nonce, fee, h, attempts))
            await self._io(self.records.mark_posted, n, h)
            self._fault("before_send")
            try:
                await self.l1.send_call(call)
            except L1Rejected as e:
                refused = await self._refused(n, nonce, h, e)
                if refused is None:
                    reuse = None
                    continue
                return refused
            self._fault("after_send")
            log.info("batch %d posted: call 0x%s, nonce %d, max fee per blob gas %d wei",
                     n, h.hex()[:16], nonce, fee)  # fmt: skip
            return PostResult(PostOutcome.SENT, "", h)
        return PostResult(PostOutcome.REJECTED, "nonce kept changing; will retry")

    async def _external(self, header: BatchHeader) -> tuple[int, PointerProof | None]:
        """An extda batch's attestation nonce and pointer proof ((0, None) otherwise)."""
        if header.da_kind != DA_EXTERNAL:
            return 0, None
        if self._da_proof is None:
            raise PosterError(f"batch {header.batch_number} is extda; this node has no DA layer")
        return await self._da_proof(header)

    async def _refused(self, n: int, nonce: int, h: bytes, e: L1Rejected) -> PostResult | None:
        """What a refusal at submission means (None: a stale nonce, try a fresh one)."""
        if "already known" in e.reason:
            return PostResult(PostOutcome.WAITING, "already sent", h)
        ib = await self._inbox_has(n)
        if ib is not None:
            await self.note_accepted(ib)
            return PostResult(PostOutcome.ACCEPTED, "posted by another sequencer", ib.tx_hash)
        if "nonce" in e.reason:
            log.info("batch %d: nonce %d refused (%s); retrying", n, nonce, e.reason)
            return None
        return PostResult(PostOutcome.REJECTED, e.reason, h)


__all__ = ["FaultHook", "PostOutcome", "PostResult", "Poster", "PosterError"]
