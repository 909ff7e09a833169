"""Chain: the L1 state machine that ties accounts, the staking contract, the inbox and the pool
together, and produces blocks.

Theory of operation
-------------------
:class:`Chain` is deterministic. The shell feeds it two kinds of events:

* :meth:`Chain.submit` — a signed :class:`L1Call` (plus, for blob batches, the versioned hashes
  that the shell obtained by verifying the KZG proofs off the event loop). It checks the
  signature, the nonce, the blob shape and runs the call's checks against the current state; a
  problem raises :class:`CallRejected` with a sentence that says what was wrong. Accepted calls
  wait in a bounded pool.
* :meth:`Chain.mine` — produce the block of ``slot`` at ``timestamp`` from the pool
  (:mod:`l1_mock.chain.pool`). A call that fails its checks when executed is still included
  (nonce used, fees burned) with a failed receipt that carries the reason, as on Ethereum.

Each call's handler is a pure check that returns the apply to run (see :meth:`Chain._check`):
submission runs the check alone, execution runs both.

Restart replays the stored blocks through :meth:`Chain.apply_block`, which executes exactly the
recorded calls in the recorded order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any

from l1_mock.chain.accounts import Accounts
from l1_mock.chain.blocks import (
    BlockHeader,
    CallReceipt,
    L1Block,
    Sidecar,
    tx_hash_of,
    without_blob_bytes,
)
from l1_mock.chain.config import Genesis, retention_floor_epoch
from l1_mock.chain.da_bridge import DABridge
from l1_mock.chain.errors import CallFailed, CallRejected
from l1_mock.chain.feeconfig import FeeConfig, FeeRecord, fee_record
from l1_mock.chain.fees import blob_base_fee, calc_excess_blob_gas, calldata_gas
from l1_mock.chain.inbox import AcceptedBatch, BatchRefused, Inbox, check_batch_shape
from l1_mock.chain.pool import BlockLimits, PendingCall, select_for_block
from l1_mock.chain.staking import EpochStakeSnapshot, Offence, Sequencer, Staking
from sequencer_node.wire.blobs import (
    GAS_PER_BLOB,
    SLOTS_PER_EPOCH,
    BlobParams,
    kzg_to_versioned_hash,
)
from sequencer_node.wire.codec import CodecError, encode
from sequencer_node.wire.crypto import address_of, verify_message
from sequencer_node.wire.hexstr import to_hex
from sequencer_node.wire.l1calls import (
    ClaimRewards,
    LockStake,
    QueueForced,
    RegisterSequencer,
    ReportDowntime,
    SetFeeModel,
    SubmitBatch,
    SubmitDataCommitment,
    SubmitEvidence,
    Transfer,
    Unjail,
    UnlockStake,
    UpdateSequencer,
    WithdrawStake,
    decode_params,
)
from sequencer_node.wire.messages import ZERO_HASH, ForcedTransaction, L1Call

#: Extra execution gas charged per call on top of its calldata (the "contract" work).
CALL_EXECUTION_GAS = 50_000
#: The inbox address (a fixed, recognisable 20-byte value).
INBOX_ADDRESS = bytes.fromhex("ff00000000000000000000000000000000000010")
STAKING_ADDRESS = bytes.fromhex("ff00000000000000000000000000000000000020")

#: What a passed check returns: the state change of the call, which cannot fail.
Apply = Callable[[], object]


@dataclass(frozen=True, slots=True)
class CallContext:
    """Where a call runs: its sender's address, its hash, the block and L1 epoch."""

    sender: bytes
    tx_hash: bytes
    l1_block: int
    epoch: int


class Chain:
    """The L1 state machine (see the module docstring)."""

    def __init__(self, genesis: Genesis) -> None:
        cfg = genesis.config
        cfg.validate()
        self.config = cfg
        self.accounts = Accounts()
        self.staking = Staking(cfg)
        self.inbox = Inbox(cfg)
        self.da_bridge = DABridge(cfg)
        self.fee_config = FeeConfig(cfg.rollup_owner)
        self.burned = 0
        self.minted = 0
        self.blocks: list[L1Block] = []
        self.block_by_hash: dict[bytes, int] = {}
        self.receipts: dict[bytes, CallReceipt] = {}
        self.pool: dict[bytes, PendingCall] = {}
        self._seq = 0
        for address, balance in genesis.balances:
            self.accounts.credit(address, balance)
        for s in genesis.sequencers:
            self.staking.add_genesis(s)
        self.genesis_supply = self.total_supply()
        header = BlockHeader(
            number=0,
            slot=0,
            timestamp=cfg.genesis_time,
            parent_hash=ZERO_HASH,
            base_fee_per_gas=cfg.base_fee_per_gas,
            gas_used=0,
            blob_gas_used=0,
            excess_blob_gas=0,
            tx_root=ZERO_HASH,
            fork=cfg.fork_at(0).fork,
        )
        self._append(L1Block(header, header.hash, (), (), (), ()))
        self.staking.take_snapshot(0, ZERO_HASH)

    # --- queries ---------------------------------------------------------------------------

    @property
    def head(self) -> BlockHeader:
        return self.blocks[-1].header

    @property
    def current_epoch(self) -> int:
        return self.head.epoch

    @property
    def sequencers(self) -> dict[bytes, Sequencer]:
        return self.staking.sequencers

    @property
    def snapshots(self) -> dict[int, EpochStakeSnapshot]:
        return self.staking.snapshots

    @property
    def batches(self) -> list[AcceptedBatch]:
        return self.inbox.batches

    @property
    def forced(self) -> list[ForcedTransaction]:
        return self.inbox.forced

    def finalized_epoch(self) -> int:
        """Highest epoch whose blocks and stake snapshot are final."""
        return max(self.current_epoch - 2, 0)

    def finalized_block(self) -> BlockHeader:
        epoch = self.finalized_epoch()
        for b in reversed(self.blocks):
            if b.header.epoch <= epoch:
                return b.header
        return self.blocks[0].header

    def blob_params(self) -> BlobParams:
        return self.config.fork_at(self.head.number + 1)

    def next_excess_blob_gas(self) -> int:
        h = self.head
        return calc_excess_blob_gas(
            h.excess_blob_gas, h.blob_gas_used, h.base_fee_per_gas, self.blob_params()
        )

    def current_blob_base_fee(self) -> int:
        """The blob base fee of the next block (what ``eth_blobBaseFee`` answers)."""
        return blob_base_fee(self.next_excess_blob_gas(), self.blob_params())

    def balance(self, address: bytes) -> int:
        return self.accounts.balance(address)

    def nonce(self, address: bytes) -> int:
        return self.accounts.nonce(address)

    def pending_nonce(self, address: bytes) -> int:
        n = self.nonce(address)
        return n + sum(1 for p in self.pool.values() if address_of(p.call.sender) == address)

    def snapshot(self, epoch: int) -> EpochStakeSnapshot | None:
        return self.staking.snapshots.get(epoch)

    def snapshot_finalized(self, epoch: int) -> bool:
        return epoch == 0 or epoch <= self.finalized_epoch()

    def total_supply(self) -> int:
        """Every unit of the native token held anywhere (balances, stake, unbonding, rewards)."""
        return self.accounts.total() + self.staking.total()

    def blobs_available(self, block_number: int) -> bool:
        slot = self.blocks[block_number].header.slot
        floor = retention_floor_epoch(self.current_epoch, self.config.blob_retention_epochs)
        return slot // SLOTS_PER_EPOCH >= floor

    def block_at_slot(self, slot: int) -> L1Block | None:
        """The block of ``slot``, or None for an empty (missed) or future slot."""
        lo, hi = 0, len(self.blocks) - 1
        while lo <= hi:
            mid = (lo + hi) // 2
            s = self.blocks[mid].header.slot
            if s == slot:
                return self.blocks[mid]
            if s < slot:
                lo = mid + 1
            else:
                hi = mid - 1
        return None

    def forced_pending(self) -> list[ForcedTransaction]:
        return self.inbox.forced_pending()

    def fee_record(self, number: int) -> FeeRecord:
        """The L2 fee data of block ``number`` (see :mod:`l1_mock.chain.feeconfig`)."""
        block = self.blocks[number]
        return fee_record(block, self.config, self.fee_config.settings.get(number))

    # --- submission ------------------------------------------------------------------------

    def submit(self, call: L1Call, verified_blob_hashes: tuple[bytes, ...] | None = None) -> bytes:
        """Accept ``call`` into the pool and return its hash, or raise CallRejected.

        For a blob batch, ``verified_blob_hashes`` must be the versioned hashes returned by a
        successful KZG batch verification of the call's sidecars.
        """
        pending = self.check_call(call)
        if pending.blob_count:
            hashes = tuple(kzg_to_versioned_hash(c) for c in pending.params.commitments)
            if verified_blob_hashes is None or tuple(verified_blob_hashes) != hashes:
                raise CallRejected(
                    "the blobs' KZG proofs were not verified against these commitments"
                )
        pending.seq = self._seq
        self._seq += 1
        self.pool[pending.hash] = pending
        return pending.hash

    def check_call(self, call: L1Call) -> PendingCall:
        """Every check of :meth:`submit` except the KZG proofs, cheapest first (signature,
        replay, nonce, pool room, blob shape, the fee cap against the balance, the call's own
        checks): the shell runs these before it spends a KZG worker on the blobs. Raises
        CallRejected; changes nothing."""
        try:
            params = decode_params(call)
        except (CodecError, KeyError) as e:
            raise CallRejected(f"the call's parameters are invalid: {e}") from None
        if not verify_message(call, call.sender, self.config.chain_id):
            raise CallRejected(
                f"bad signature: the call is not signed by {to_hex(call.sender)} for L1 chain "
                f"{self.config.chain_id}"
            )
        h = tx_hash_of(call)
        if h in self.pool or h in self.receipts:
            raise CallRejected(f"transaction {to_hex(h)} is already known (replay)")
        address = address_of(call.sender)
        nonce = self.nonce(address)
        if call.nonce < nonce:
            raise CallRejected(f"nonce {call.nonce} was already used; the account nonce is {nonce}")
        expected = self.pending_nonce(address)
        if call.nonce != expected:
            raise CallRejected(f"nonce {call.nonce} is not the next one; expected {expected}")
        if len(self.pool) >= self.config.max_pool:
            raise CallRejected("the transaction pool is full; retry later")
        blob_count, max_fee = 0, 0
        if isinstance(params, SubmitBatch):
            blob_count, max_fee = self._check_blobs(params)
        if expected == nonce:
            # Check against the current state when nothing of this sender is pending before.
            self._dry_run(call, params, h)
        return PendingCall(call, params, h, -1, blob_count, max_fee)

    def _check_blobs(self, p: SubmitBatch) -> tuple[int, int]:
        """(blob count, max fee per blob gas) of a batch whose blobs fit the next block's fork
        and the pool, and whose header names the commitments' versioned hashes."""
        header = p.certificate.header
        try:
            check_batch_shape(header, p, self.blob_params(), self.config.da_namespace)
        except BatchRefused as e:
            raise CallRejected(str(e)) from None
        if not p.blobs:
            return 0, 0
        hashes = tuple(kzg_to_versioned_hash(c) for c in p.commitments)
        if tuple(header.blob_hashes) != hashes:
            raise CallRejected(
                "the batch header's blob_hashes are not the versioned hashes of the commitments"
            )
        pooled = sum(x.blob_count for x in self.pool.values())
        if pooled + len(p.blobs) > self.config.max_pool_blobs:
            raise CallRejected("the blob pool is full; retry later")
        return len(p.blobs), p.max_fee_per_blob_gas

    def _dry_run(self, call: L1Call, params: Any, h: bytes) -> None:
        fee = self._max_fee(call, params)
        address = address_of(call.sender)
        if self.balance(address) < fee:
            raise CallRejected(
                f"balance {self.balance(address)} wei cannot pay the fee of up to {fee} wei"
            )
        # A call checked at submission is judged as of the next block (the next slot).
        ctx = CallContext(address, h, self.head.number + 1, (self.head.slot + 1) // SLOTS_PER_EPOCH)
        try:
            self._check(ctx, params)
        except CallFailed as e:
            raise CallRejected(str(e)) from None

    def _gas(self, call: L1Call, params: Any, blob_params: BlobParams) -> int:
        data = call.params
        if isinstance(params, SubmitBatch):
            # An extda batch pays for its pointer proof as calldata, as on Ethereum.
            data = encode(params.da_proof) if params.da_proof is not None else params.calldata
        return calldata_gas(data, blob_params, CALL_EXECUTION_GAS)

    def _max_fee(self, call: L1Call, params: Any) -> int:
        bp = self.blob_params()
        fee = self._gas(call, params, bp) * self.config.base_fee_per_gas
        if isinstance(params, SubmitBatch):
            fee += len(params.blobs) * GAS_PER_BLOB * params.max_fee_per_blob_gas
        return fee

    # --- the calls -------------------------------------------------------------------------

    def _check(self, ctx: CallContext, p: Any) -> Apply:
        """Check the call ``p`` (raise CallFailed) and return its state change, unapplied."""
        acc, st, sender, epoch = self.accounts, self.staking, ctx.sender, ctx.epoch
        if isinstance(p, Transfer):
            acc.check_transfer(sender, p)
            return partial(acc.apply_transfer, sender, p)
        if isinstance(p, RegisterSequencer):
            st.check_register(sender, p, acc.balance(sender))
            return partial(st.apply_register, acc, sender, p)
        if isinstance(p, LockStake):
            return partial(st.apply_lock, acc, st.check_lock(sender, p, acc.balance(sender)), p)
        if isinstance(p, UnlockStake):
            s, amount = st.check_unlock(sender, p)
            return partial(st.apply_unlock, s, amount, epoch)
        if isinstance(p, WithdrawStake):
            return partial(st.apply_withdraw, acc, st.check_withdraw(sender, p, epoch), epoch)
        if isinstance(p, ClaimRewards):
            return partial(st.apply_claim, acc, st.check_claim(sender, p))
        if isinstance(p, Unjail):
            return partial(st.apply_unjail, st.check_unjail(sender, p, epoch))
        if isinstance(p, UpdateSequencer):
            return partial(st.apply_update, st.check_update(sender, p), p)
        if isinstance(p, SubmitEvidence):
            return partial(self._apply_evidence, sender, st.check_evidence(p), epoch)
        if isinstance(p, ReportDowntime):
            return partial(st.apply_downtime, p, st.check_downtime(p, epoch), epoch)
        if isinstance(p, QueueForced):
            return partial(self.inbox.apply_queue_forced, p, ctx.l1_block)
        if isinstance(p, SetFeeModel):
            self.fee_config.check_set(sender, p)
            return partial(self.fee_config.apply_set, p, ctx.l1_block)
        if isinstance(p, SubmitBatch):
            snap = st.snapshots.get(p.certificate.header.stake_epoch)
            stakes = snap.stakes if snap else None
            fork = self.config.fork_at(ctx.l1_block)
            attested = self.da_bridge.commitment(p.da_nonce)
            self.inbox.check_batch(p, ctx.l1_block, epoch, stakes, fork, attested)
            return partial(self._apply_batch, p, ctx, snap.stakes if snap else {})
        if isinstance(p, SubmitDataCommitment):
            return partial(self.da_bridge.apply_submit, self.da_bridge.check_submit(p))
        raise CallFailed(f"unsupported call {type(p).__name__}")  # pragma: no cover

    def _apply_evidence(self, reporter: bytes, offence: Offence, epoch: int) -> None:
        self.burned += self.staking.apply_evidence(self.accounts, reporter, offence, epoch)

    def _apply_batch(self, p: SubmitBatch, ctx: CallContext, stakes: dict[bytes, int]) -> None:
        accepted = self.inbox.apply_batch(p, ctx.tx_hash, ctx.l1_block)
        reward = self.inbox.reward(accepted.header)
        self.minted += self.staking.pay_rewards(accepted.signers, stakes, reward)

    # --- block production ------------------------------------------------------------------

    def mine(self, slot: int, timestamp: int) -> L1Block:
        """Produce the block of ``slot``, taking what fits from the pool."""
        self._check_slot(slot, timestamp)
        params = self.config.fork_at(self.head.number + 1)
        limits = BlockLimits(
            blob_base_fee(self.next_excess_blob_gas(), params),
            params.max_blob_gas,
            self.config.max_txs_per_block,
        )
        chosen = select_for_block(self.pool, self.nonce, limits)
        for p in chosen:
            del self.pool[p.hash]
        return self._build(slot, timestamp, [(p.hash, p.call, p.params) for p in chosen])

    def apply_block(
        self, slot: int, timestamp: int, calls: Iterable[tuple[bytes, L1Call]]
    ) -> L1Block:
        """Re-execute a recorded block (restart replay) from ``(tx hash, stored call)`` pairs.

        The calls were verified when they arrived; stored batch calls may have their blob
        bytes stripped (:func:`~l1_mock.chain.blocks.strip_blobs`), which changes nothing in
        the state.
        """
        self._check_slot(slot, timestamp)
        items = [(h, c, decode_params(c)) for h, c in calls]
        for h, _, _ in items:
            self.pool.pop(h, None)
        return self._build(slot, timestamp, items)

    def _check_slot(self, slot: int, timestamp: int) -> None:
        if slot <= self.head.slot:
            raise ValueError(f"slot {slot} is not after the head's slot {self.head.slot}")
        if timestamp < self.head.timestamp:
            raise ValueError("block timestamps must not go backwards")

    def _build(self, slot: int, timestamp: int, items: list[tuple[bytes, L1Call, Any]]) -> L1Block:
        parent = self.head
        number = parent.number + 1
        params = self.config.fork_at(number)
        excess = calc_excess_blob_gas(
            parent.excess_blob_gas, parent.blob_gas_used, parent.base_fee_per_gas, params
        )
        bfee = blob_base_fee(excess, params)
        epoch = slot // SLOTS_PER_EPOCH
        for e in range(parent.epoch + 1, epoch + 1):
            self.staking.take_snapshot(e, self.blocks[-1].hash)
        receipts: list[CallReceipt] = []
        sidecars: list[Sidecar] = []
        blob_hashes: list[tuple[bytes, ...]] = []
        for h, call, p in items:
            ctx = CallContext(address_of(call.sender), h, number, epoch)
            receipts.append(self._include(ctx, call, p, params, bfee, len(receipts)))
            blob_hashes.append(_blob_sidecars(p, h, sidecars))
        header = BlockHeader(
            number=number,
            slot=slot,
            timestamp=timestamp,
            parent_hash=self.blocks[-1].hash,
            base_fee_per_gas=self.config.base_fee_per_gas,
            gas_used=sum(r.gas_used for r in receipts),
            blob_gas_used=sum(r.blob_gas_used for r in receipts),
            excess_blob_gas=excess,
            tx_root=hashlib.sha256(b"".join(r.tx_hash for r in receipts)).digest(),
            fork=params.fork,
        )
        block = L1Block(
            header,
            header.hash,
            tuple(c for _, c, _ in items),
            tuple(receipts),
            tuple(blob_hashes),
            tuple(sidecars),
        )
        self._append(block)
        self.staking.prune_snapshots(self.current_epoch)
        return block

    def _include(
        self, ctx: CallContext, call: L1Call, p: Any, params: BlobParams, bfee: int, index: int
    ) -> CallReceipt:
        """Charge the fee, execute the call, and return its receipt."""
        gas = self._gas(call, p, params)
        bgas = (len(p.commitments) if isinstance(p, SubmitBatch) else 0) * GAS_PER_BLOB
        acc = self.accounts.account(ctx.sender)
        acc.nonce += 1
        fee = gas * self.config.base_fee_per_gas + bgas * bfee
        status, reason = 1, ""
        if acc.balance < fee:
            status, reason = 0, f"balance {acc.balance} wei cannot pay the fee of {fee} wei"
            fee = acc.balance
        acc.balance -= fee
        self.burned += fee
        if status:
            try:
                self._check(ctx, p)()
            except CallFailed as e:
                status, reason = 0, str(e)
        return CallReceipt(
            tx_hash=ctx.tx_hash,
            block_number=ctx.l1_block,
            index=index,
            sender=call.sender,
            method=call.method,
            status=status,
            gas_used=gas,
            effective_gas_price=self.config.base_fee_per_gas,
            blob_gas_used=bgas,
            blob_gas_price=bfee,
            reason=reason,
        )

    def _append(self, block: L1Block) -> None:
        # Blob bytes leave the chain with the returned block (the shell stores and prunes
        # them); what stays in memory is the block without them.
        kept = without_blob_bytes(block)
        self.blocks.append(kept)
        self.block_by_hash[kept.hash] = kept.header.number
        for r in kept.receipts:
            self.receipts[r.tx_hash] = r


def _blob_sidecars(p: Any, tx_hash: bytes, out: list[Sidecar]) -> tuple[bytes, ...]:
    """Append the sidecars of a blob batch to ``out``; return its versioned hashes."""
    if not isinstance(p, SubmitBatch) or not p.commitments:
        return ()
    hashes = tuple(kzg_to_versioned_hash(c) for c in p.commitments)
    for blob, commitment, proof, vh in zip(p.blobs, p.commitments, p.proofs, hashes, strict=False):
        out.append(Sidecar(len(out), blob, commitment, proof, vh, tx_hash))
    return hashes


__all__ = [
    "CALL_EXECUTION_GAS",
    "INBOX_ADDRESS",
    "STAKING_ADDRESS",
    "CallContext",
    "Chain",
]
