"""The L1 ledger: accounts, the transaction pool, block production, staking and the inbox.

Theory of operation
-------------------
:class:`Chain` is a deterministic state machine. The shell feeds it two kinds of events:

* :meth:`Chain.submit` — a signed :class:`L1Call` (plus, for blob batches, the versioned hashes
  that the shell obtained by verifying the KZG proofs off the event loop). It checks the
  signature, the nonce, the blob shape and dry-runs the call against the current state; a
  problem raises :class:`CallRejected` with a sentence that says what was wrong. Accepted calls
  wait in a bounded pool.
* :meth:`Chain.mine` — produce the block of ``slot`` at ``timestamp``. Pool entries are taken by
  blob fee (highest first) then arrival, in nonce order per sender; a blob transaction whose
  ``max_fee_per_blob_gas`` is below the block's blob base fee, or that does not fit in the
  block's blob gas, waits for a later block. A call that fails when executed is still included
  (nonce used, fees burned) with a failed receipt that carries the reason, as on Ethereum.

Restart replays the stored blocks through :meth:`Chain.apply_block`, which executes exactly the
recorded calls in the recorded order.

Stake snapshots: when a block opens L1 epoch E, the chain records the active sequencers' stake
as of that moment (the state at the start of E) with the seed ``hash of the last block before
E``. A snapshot is *finalized* once the head is two epochs past it (epoch 0, genesis, is final
from the start).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from l1_mock.chain.fees import blob_base_fee, calc_excess_blob_gas, calldata_gas
from sequencer_node.wire.blobs import (
    BLOB_SCHEDULE,
    GAS_PER_BLOB,
    SLOTS_PER_EPOCH,
    BlobParams,
    kzg_to_versioned_hash,
)
from sequencer_node.wire.certificates import (
    CertificateError,
    verify_batch_certificate,
    verify_downtime_certificate,
    verify_evidence,
)
from sequencer_node.wire.codec import CodecError, encode, message_id
from sequencer_node.wire.crypto import address_of, verify_message
from sequencer_node.wire.l1calls import (
    GWEI,
    ClaimRewards,
    LockStake,
    QueueForced,
    RegisterSequencer,
    ReportDowntime,
    SubmitBatch,
    SubmitEvidence,
    Transfer,
    Unjail,
    UnlockStake,
    UpdateSequencer,
    WithdrawStake,
    decode_params,
)
from sequencer_node.wire.messages import (
    DA_BLOBS,
    DA_CALLDATA,
    ZERO_HASH,
    BatchHeader,
    EvidenceKind,
    ForcedTransaction,
    L1Call,
    batch_hash,
)

TOKEN = 10**18
#: Extra execution gas charged per call on top of its calldata (the "contract" work).
CALL_EXECUTION_GAS = 50_000
#: The inbox address (a fixed, recognisable 20-byte value).
INBOX_ADDRESS = bytes.fromhex("ff00000000000000000000000000000000000010")
STAKING_ADDRESS = bytes.fromhex("ff00000000000000000000000000000000000020")


class CallRejected(ValueError):
    """A call refused at submission; the message says what was wrong."""


class CallFailed(ValueError):
    """A call that failed during execution (its receipt carries the message)."""


@dataclass(frozen=True, slots=True)
class ChainConfig:
    chain_id: int = 900
    #: The L2 chain id: certificates from the sequencers are signed for it.
    l2_chain_id: int = 901
    genesis_time: int = 0
    slot_time: int = 2
    #: (first block number, fork name), ascending; the first entry must start at 0.
    forks: tuple[tuple[int, str], ...] = ((0, "bpo2"),)
    base_fee_per_gas: int = 10**9
    min_stake: int = 20_000 * TOKEN
    max_stake: int = 100_000 * TOKEN
    unbonding_epochs: int = 64
    unjail_cooldown_epochs: int = 4
    slash_bps: int = 1_000
    reporter_share_bps: int = 1_000
    #: Metis: 0.000761 token per certified L2 block.
    reward_per_block: int = 761 * 10**12
    #: Forced-inclusion sequencing window in L1 blocks.
    sequencing_window: int = 64
    blob_retention_epochs: int = 4096
    inbox_first_height: int = 1
    max_pool: int = 4096
    max_pool_blobs: int = 256
    max_txs_per_block: int = 512

    def fork_at(self, number: int) -> BlobParams:
        name = self.forks[0][1]
        for start, fork in self.forks:
            if number >= start:
                name = fork
        return BLOB_SCHEDULE[name]

    def validate(self) -> None:
        if not self.forks or self.forks[0][0] != 0:
            raise ValueError("the fork schedule must start at block 0")
        for _, fork in self.forks:
            if fork not in BLOB_SCHEDULE:
                raise ValueError(f"unknown fork {fork!r}; known: {', '.join(BLOB_SCHEDULE)}")
        if self.slot_time <= 0:
            raise ValueError("slot time must be positive")
        if not 0 < self.min_stake <= self.max_stake:
            raise ValueError("stake bounds must satisfy 0 < min <= max")


def retention_floor_epoch(current_epoch: int, retention_epochs: int) -> int:
    """Oldest epoch whose blobs are still served (inclusive)."""
    return max(current_epoch - retention_epochs, 0)


def check_retention(retention_epochs: int, slot_time: int, fault_proof_window_s: int) -> None:
    """Refuse a retention shorter than the fault-proof window (blobs must outlive disputes)."""
    retained = retention_epochs * SLOTS_PER_EPOCH * slot_time
    if retained < fault_proof_window_s:
        raise ValueError(
            f"blob retention of {retention_epochs} epochs is {retained} s at {slot_time} s "
            f"slots, shorter than the fault-proof window of {fault_proof_window_s} s: batches "
            "could be disputed after their data is gone. Raise --blob-retention-epochs or "
            "lower --fault-proof-window."
        )


@dataclass(slots=True)
class Account:
    balance: int = 0
    nonce: int = 0


@dataclass(slots=True)
class Sequencer:
    signing_key: bytes
    owner: bytes
    p2p_address: str
    rpc_address: str
    stake: int = 0
    #: (release epoch, amount), oldest first.
    unbonding: list[tuple[int, int]] = field(default_factory=list)
    rewards: int = 0
    jailed: bool = False
    slashed: bool = False
    jailed_until_epoch: int = 0

    @property
    def unbonding_total(self) -> int:
        return sum(a for _, a in self.unbonding)

    @property
    def status(self) -> str:
        if self.jailed:
            return "slashed" if self.slashed else "jailed"
        if self.stake > 0:
            return "active"
        return "unbonding" if self.unbonding else "withdrawn"


@dataclass(frozen=True, slots=True)
class SnapshotEntry:
    signing_key: bytes
    owner: bytes
    p2p_address: str
    rpc_address: str
    stake: int


@dataclass(frozen=True, slots=True)
class StakeSnapshot:
    epoch: int
    seed: bytes
    entries: tuple[SnapshotEntry, ...]

    @property
    def stakes(self) -> dict[bytes, int]:
        return {e.signing_key: e.stake for e in self.entries}


@dataclass(frozen=True, slots=True)
class Receipt:
    tx_hash: bytes
    block_number: int
    index: int
    sender: bytes
    method: str
    status: int
    gas_used: int
    effective_gas_price: int
    blob_gas_used: int
    blob_gas_price: int
    reason: str


@dataclass(frozen=True, slots=True)
class BlockHeader:
    number: int
    slot: int
    timestamp: int
    parent_hash: bytes
    base_fee_per_gas: int
    gas_used: int
    blob_gas_used: int
    excess_blob_gas: int
    tx_root: bytes
    fork: str

    @property
    def epoch(self) -> int:
        return self.slot // SLOTS_PER_EPOCH

    @property
    def hash(self) -> bytes:
        h = hashlib.sha256(b"seqnet/l1-block")
        for v in (self.number, self.slot, self.timestamp, self.base_fee_per_gas, self.gas_used):
            h.update(v.to_bytes(16, "big"))
        for v in (self.blob_gas_used, self.excess_blob_gas):
            h.update(v.to_bytes(16, "big"))
        h.update(self.parent_hash + self.tx_root + self.fork.encode())
        return h.digest()


@dataclass(frozen=True, slots=True)
class Sidecar:
    index: int
    blob: bytes
    commitment: bytes
    proof: bytes
    versioned_hash: bytes
    tx_hash: bytes


@dataclass(frozen=True, slots=True)
class L1Block:
    header: BlockHeader
    hash: bytes
    calls: tuple[L1Call, ...]
    receipts: tuple[Receipt, ...]
    #: versioned hashes per transaction (empty tuple for non-blob transactions).
    blob_hashes: tuple[tuple[bytes, ...], ...]
    sidecars: tuple[Sidecar, ...]


@dataclass(frozen=True, slots=True)
class AcceptedBatch:
    header: BatchHeader
    l1_block: int
    tx_hash: bytes
    signers: tuple[bytes, ...]


@dataclass(slots=True)
class _Pending:
    call: L1Call
    params: Any
    hash: bytes
    seq: int
    blob_count: int
    max_fee_per_blob_gas: int


@dataclass(frozen=True, slots=True)
class GenesisSequencer:
    signing_key: bytes
    owner: bytes
    p2p_address: str
    rpc_address: str
    stake: int


@dataclass(frozen=True, slots=True)
class Genesis:
    config: ChainConfig
    balances: tuple[tuple[bytes, int], ...] = ()
    sequencers: tuple[GenesisSequencer, ...] = ()


def tx_hash_of(call: L1Call) -> bytes:
    return message_id(call)


def strip_blobs(call: L1Call) -> L1Call:
    """``call`` with the blob bytes of a batch removed (commitments and proofs stay)."""
    if call.method != "submitBatch":
        return call
    p = decode_params(call)
    if not p.blobs:
        return call
    return dataclasses.replace(call, params=encode(dataclasses.replace(p, blobs=())))


class Chain:
    """The L1 state machine (see the module docstring)."""

    def __init__(self, genesis: Genesis) -> None:
        cfg = genesis.config
        cfg.validate()
        self.config = cfg
        self.accounts: dict[bytes, Account] = {}
        self.sequencers: dict[bytes, Sequencer] = {}
        self.burned = 0
        self.minted = 0
        self.forced: list[ForcedTransaction] = []
        self.batches: list[AcceptedBatch] = []
        self.snapshots: dict[int, StakeSnapshot] = {}
        self.offences: set[tuple[bytes, EvidenceKind, int]] = set()
        self.downtime_reports: set[bytes] = set()
        self.blocks: list[L1Block] = []
        self.block_by_hash: dict[bytes, int] = {}
        self.receipts: dict[bytes, Receipt] = {}
        self.pool: dict[bytes, _Pending] = {}
        self._seq = 0
        self._pending_epoch = 0
        for address, balance in genesis.balances:
            self._account(address).balance += balance
        for s in genesis.sequencers:
            if not cfg.min_stake <= s.stake <= cfg.max_stake:
                raise ValueError("genesis sequencer stake outside [min_stake, max_stake]")
            self.sequencers[s.signing_key] = Sequencer(
                s.signing_key, s.owner, s.p2p_address, s.rpc_address, s.stake
            )
        self.genesis_supply = self.total_supply()
        params = cfg.fork_at(0)
        header = BlockHeader(
            0,
            0,
            cfg.genesis_time,
            ZERO_HASH,
            cfg.base_fee_per_gas,
            0,
            0,
            0,
            ZERO_HASH,
            params.fork,
        )
        self._append(L1Block(header, header.hash, (), (), (), ()))
        self._take_snapshot(0, ZERO_HASH)

    # --- queries ---------------------------------------------------------------------------

    @property
    def head(self) -> BlockHeader:
        return self.blocks[-1].header

    @property
    def current_epoch(self) -> int:
        return self.head.epoch

    def finalized_epoch(self) -> int:
        """Highest epoch whose blocks and stake snapshot are final."""
        return max(self.current_epoch - 2, 0)

    def finalized_block(self) -> BlockHeader:
        epoch = self.finalized_epoch()
        best = self.blocks[0].header
        for b in reversed(self.blocks):
            if b.header.epoch <= epoch:
                best = b.header
                break
        return best

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
        acc = self.accounts.get(address)
        return acc.balance if acc else 0

    def nonce(self, address: bytes) -> int:
        acc = self.accounts.get(address)
        return acc.nonce if acc else 0

    def pending_nonce(self, address: bytes) -> int:
        n = self.nonce(address)
        return n + sum(1 for p in self.pool.values() if address_of(p.call.sender) == address)

    def snapshot(self, epoch: int) -> StakeSnapshot | None:
        return self.snapshots.get(epoch)

    def snapshot_finalized(self, epoch: int) -> bool:
        return epoch == 0 or epoch <= self.finalized_epoch()

    def total_supply(self) -> int:
        """Every unit of the native token held anywhere (balances, stake, unbonding, rewards)."""
        total = sum(a.balance for a in self.accounts.values())
        for s in self.sequencers.values():
            total += s.stake + s.unbonding_total + s.rewards
        return total

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
        start = self.batches[-1].header.forced_index if self.batches else 0
        return self.forced[start:]

    # --- submission ------------------------------------------------------------------------

    def submit(self, call: L1Call, verified_blob_hashes: tuple[bytes, ...] | None = None) -> bytes:
        """Accept ``call`` into the pool and return its hash, or raise CallRejected.

        For a blob batch, ``verified_blob_hashes`` must be the versioned hashes returned by a
        successful KZG batch verification of the call's sidecars.
        """
        try:
            params = decode_params(call)
        except (CodecError, KeyError) as e:
            raise CallRejected(f"the call's parameters are invalid: {e}") from None
        if not verify_message(call, call.sender, self.config.chain_id):
            raise CallRejected(
                f"bad signature: the call is not signed by {call.sender.hex()} for L1 chain "
                f"{self.config.chain_id}"
            )
        h = tx_hash_of(call)
        if h in self.pool or h in self.receipts:
            raise CallRejected(f"transaction 0x{h.hex()} is already known (replay)")
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
            blob_count, max_fee = self._check_batch_shape(params, verified_blob_hashes)
            pooled = sum(p.blob_count for p in self.pool.values())
            if blob_count and pooled + blob_count > self.config.max_pool_blobs:
                raise CallRejected("the blob pool is full; retry later")
        if expected == nonce:
            # Dry-run against the current state when nothing of this sender is pending before.
            self._dry_run(call, params, h)
        pending = _Pending(call, params, h, self._seq, blob_count, max_fee)
        self._seq += 1
        self.pool[h] = pending
        return h

    def _check_batch_shape(
        self, p: SubmitBatch, verified: tuple[bytes, ...] | None
    ) -> tuple[int, int]:
        header = p.certificate.header
        n = len(p.blobs)
        if header.da_kind == DA_CALLDATA:
            if n or p.commitments or p.proofs:
                raise CallRejected("a calldata batch carries no blobs")
            return 0, 0
        params = self.blob_params()
        if n == 0:
            raise CallRejected("a blob batch needs at least one blob")
        if n > params.max_per_tx:
            raise CallRejected(
                f"{n} blobs in one transaction; {params.fork} allows at most {params.max_per_tx}"
            )
        if n > params.max:
            raise CallRejected(f"{n} blobs exceed the per-block maximum of {params.max}")
        if len(p.commitments) != n or len(p.proofs) != n:
            raise CallRejected("each blob needs exactly one commitment and one proof")
        hashes = tuple(kzg_to_versioned_hash(c) for c in p.commitments)
        if verified is None or tuple(verified) != hashes:
            raise CallRejected("the blobs' KZG proofs were not verified against these commitments")
        if tuple(header.blob_hashes) != hashes:
            raise CallRejected(
                "the batch header's blob_hashes are not the versioned hashes of the commitments"
            )
        return n, p.max_fee_per_blob_gas

    def _dry_run(self, call: L1Call, params: Any, h: bytes) -> None:
        fee = self._max_fee(call, params)
        address = address_of(call.sender)
        if self.balance(address) < fee:
            raise CallRejected(
                f"balance {self.balance(address)} wei cannot pay the fee of up to {fee} wei"
            )
        try:
            self._execute(call, params, h, self.head.number + 1, dry=True)
        except CallFailed as e:
            raise CallRejected(str(e)) from None

    def _dry_run_epoch(self) -> int:
        # A call dry-run at submission is judged as of the next block (the next slot).
        return (self.head.slot + 1) // SLOTS_PER_EPOCH

    def _gas(self, call: L1Call, params: Any, blob_params: BlobParams) -> int:
        data = params.calldata if isinstance(params, SubmitBatch) else call.params
        return calldata_gas(data, blob_params, CALL_EXECUTION_GAS)

    def _max_fee(self, call: L1Call, params: Any) -> int:
        bp = self.blob_params()
        fee = self._gas(call, params, bp) * self.config.base_fee_per_gas
        if isinstance(params, SubmitBatch):
            fee += len(params.blobs) * GAS_PER_BLOB * params.max_fee_per_blob_gas
        return fee

    # --- block production ------------------------------------------------------------------

    def mine(self, slot: int, timestamp: int) -> L1Block:
        """Produce the block of ``slot``, taking what fits from the pool."""
        self._check_slot(slot, timestamp)
        params = self.config.fork_at(self.head.number + 1)
        excess = self.next_excess_blob_gas()
        fee = blob_base_fee(excess, params)
        chosen: list[_Pending] = []
        blob_gas = 0
        nonces: dict[bytes, int] = {}
        order = sorted(self.pool.values(), key=lambda p: (-p.max_fee_per_blob_gas, p.seq))
        progress = True
        taken: set[bytes] = set()
        while progress and len(chosen) < self.config.max_txs_per_block:
            progress = False
            for p in order:
                if p.hash in taken or len(chosen) >= self.config.max_txs_per_block:
                    continue
                addr = address_of(p.call.sender)
                if p.call.nonce != nonces.get(addr, self.nonce(addr)):
                    continue
                if p.blob_count:
                    if p.max_fee_per_blob_gas < fee:
                        continue
                    if blob_gas + p.blob_count * GAS_PER_BLOB > params.max_blob_gas:
                        continue
                    blob_gas += p.blob_count * GAS_PER_BLOB
                chosen.append(p)
                taken.add(p.hash)
                nonces[addr] = p.call.nonce + 1
                progress = True
        for p in chosen:
            del self.pool[p.hash]
        return self._build(slot, timestamp, [(p.hash, p.call, p.params) for p in chosen])

    def apply_block(
        self, slot: int, timestamp: int, calls: Iterable[tuple[bytes, L1Call]]
    ) -> L1Block:
        """Re-execute a recorded block (restart replay) from ``(tx hash, stored call)`` pairs.

        The calls were verified when they arrived; stored batch calls may have their blob
        bytes stripped (:func:`strip_blobs`), which changes nothing in the state.
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
        new_epoch = slot // SLOTS_PER_EPOCH
        for e in range(parent.epoch + 1, new_epoch + 1):
            self._take_snapshot(e, self.blocks[-1].hash)
        self._pending_epoch = new_epoch
        receipts: list[Receipt] = []
        blob_hashes: list[tuple[bytes, ...]] = []
        sidecars: list[Sidecar] = []
        gas_total = 0
        blob_gas_total = 0
        for h, call, p in items:
            gas = self._gas(call, p, params)
            nblobs = len(p.commitments) if isinstance(p, SubmitBatch) else 0
            bgas = nblobs * GAS_PER_BLOB
            acc = self._account(address_of(call.sender))
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
                    self._execute(call, p, h, number, dry=False)
                except CallFailed as e:
                    status, reason = 0, str(e)
            hashes: tuple[bytes, ...] = ()
            if isinstance(p, SubmitBatch) and nblobs:
                hashes = tuple(kzg_to_versioned_hash(c) for c in p.commitments)
                for i in range(len(p.blobs)):
                    sidecars.append(
                        Sidecar(
                            len(sidecars), p.blobs[i], p.commitments[i], p.proofs[i], hashes[i], h
                        )
                    )
            blob_hashes.append(hashes)
            gas_total += gas
            blob_gas_total += bgas
            r = Receipt(
                h,
                number,
                len(receipts),
                call.sender,
                call.method,
                status,
                gas,
                self.config.base_fee_per_gas,
                bgas,
                bfee,
                reason,
            )
            receipts.append(r)
        tx_root = hashlib.sha256(b"".join(r.tx_hash for r in receipts)).digest()
        header = BlockHeader(
            number,
            slot,
            timestamp,
            self.blocks[-1].hash,
            self.config.base_fee_per_gas,
            gas_total,
            blob_gas_total,
            excess,
            tx_root,
            params.fork,
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
        self._prune_snapshots()
        return block

    def _append(self, block: L1Block) -> None:
        # Blob bytes leave the ledger with the returned block (the shell stores and prunes
        # them); what stays in memory is the block without them.
        if block.sidecars:
            block = dataclasses.replace(
                block, sidecars=(), calls=tuple(strip_blobs(c) for c in block.calls)
            )
        self.blocks.append(block)
        self.block_by_hash[block.hash] = block.header.number
        for r in block.receipts:
            self.receipts[r.tx_hash] = r

    def _take_snapshot(self, epoch: int, seed_block_hash: bytes) -> None:
        entries = tuple(
            SnapshotEntry(s.signing_key, s.owner, s.p2p_address, s.rpc_address, s.stake)
            for s in sorted(self.sequencers.values(), key=lambda s: s.signing_key)
            if s.status == "active"
        )
        seed = hashlib.sha256(b"seqnet/election-seed" + seed_block_hash).digest()
        self.snapshots[epoch] = StakeSnapshot(epoch, seed, entries)

    def _prune_snapshots(self) -> None:
        keep_from = self.current_epoch - self.config.unbonding_epochs - 2
        for e in [e for e in self.snapshots if e < keep_from and e != 0]:
            del self.snapshots[e]

    # --- execution -------------------------------------------------------------------------

    def _account(self, address: bytes) -> Account:
        acc = self.accounts.get(address)
        if acc is None:
            acc = self.accounts[address] = Account()
        return acc

    def _execute(self, call: L1Call, p: Any, h: bytes, number: int, dry: bool) -> None:
        sender = address_of(call.sender)
        epoch = self._pending_epoch if not dry else self._dry_run_epoch()
        if isinstance(p, Transfer):
            self._transfer(sender, p, dry)
        elif isinstance(p, RegisterSequencer):
            self._register(sender, p, dry)
        elif isinstance(p, LockStake):
            self._lock(sender, p, dry)
        elif isinstance(p, UnlockStake):
            self._unlock(sender, p, epoch, dry)
        elif isinstance(p, WithdrawStake):
            self._withdraw(sender, p, epoch, dry)
        elif isinstance(p, ClaimRewards):
            s = self._owned(sender, p.signing_key)
            if s.rewards == 0:
                raise CallFailed("no rewards to claim")
            if not dry:
                self._account(sender).balance += s.rewards
                s.rewards = 0
        elif isinstance(p, Unjail):
            self._unjail(sender, p, epoch, dry)
        elif isinstance(p, UpdateSequencer):
            s = self._owned(sender, p.signing_key)
            if not dry:
                s.p2p_address, s.rpc_address = p.p2p_address, p.rpc_address
        elif isinstance(p, SubmitEvidence):
            self._slash(sender, p, epoch, dry)
        elif isinstance(p, ReportDowntime):
            self._downtime(p, epoch, dry)
        elif isinstance(p, QueueForced):
            if not dry:
                self.forced.append(ForcedTransaction(len(self.forced), number, p.tx))
        elif isinstance(p, SubmitBatch):
            self._inbox(p, h, number, dry)
        else:  # pragma: no cover - decode_params only returns the types above
            raise CallFailed(f"unsupported method {call.method}")

    def _transfer(self, sender: bytes, p: Transfer, dry: bool) -> None:
        if p.amount_gwei * GWEI > self.balance(sender):
            raise CallFailed(f"transfer of {p.amount_gwei} gwei exceeds the balance")
        if not dry:
            self._account(sender).balance -= p.amount_gwei * GWEI
            self._account(p.to).balance += p.amount_gwei * GWEI

    def _owned(self, sender: bytes, key: bytes) -> Sequencer:
        s = self.sequencers.get(key)
        if s is None:
            raise CallFailed(f"no sequencer is registered with signing key {key.hex()}")
        if s.owner != sender:
            raise CallFailed(
                f"sequencer {key.hex()[:16]} belongs to account 0x{s.owner.hex()}, "
                f"not to the caller 0x{sender.hex()}"
            )
        return s

    def _register(self, sender: bytes, p: RegisterSequencer, dry: bool) -> None:
        cfg = self.config
        stake = p.stake_gwei * GWEI
        if p.signing_key in self.sequencers:
            raise CallFailed(f"signing key {p.signing_key.hex()} is already registered")
        if not cfg.min_stake <= stake <= cfg.max_stake:
            raise CallFailed(f"stake {stake} is outside [{cfg.min_stake}, {cfg.max_stake}]")
        if stake > self.balance(sender):
            raise CallFailed(f"stake {stake} exceeds the balance {self.balance(sender)}")
        if not dry:
            self._account(sender).balance -= stake
            self.sequencers[p.signing_key] = Sequencer(
                p.signing_key, sender, p.p2p_address, p.rpc_address, stake
            )

    def _lock(self, sender: bytes, p: LockStake, dry: bool) -> None:
        s = self._owned(sender, p.signing_key)
        total = s.stake + p.amount_gwei * GWEI
        if p.amount_gwei * GWEI == 0 or not self.config.min_stake <= total <= self.config.max_stake:
            raise CallFailed(
                f"stake would be {total}, outside [{self.config.min_stake}, "
                f"{self.config.max_stake}]"
            )
        if p.amount_gwei * GWEI > self.balance(sender):
            raise CallFailed(
                f"lock of {p.amount_gwei} gwei exceeds the balance {self.balance(sender)}"
            )
        if not dry:
            self._account(sender).balance -= p.amount_gwei * GWEI
            s.stake = total

    def _unlock(self, sender: bytes, p: UnlockStake, epoch: int, dry: bool) -> None:
        s = self._owned(sender, p.signing_key)
        amount = p.amount_gwei * GWEI or s.stake
        if amount == 0 or amount > s.stake:
            raise CallFailed(f"cannot unlock {amount}; the bonded stake is {s.stake}")
        rest = s.stake - amount
        if 0 < rest < self.config.min_stake:
            raise CallFailed(
                f"the remaining stake {rest} would be below the minimum {self.config.min_stake}; "
                "unlock everything (amount 0) or less"
            )
        if not dry:
            s.stake = rest
            s.unbonding.append((epoch + self.config.unbonding_epochs, amount))

    def _withdraw(self, sender: bytes, p: WithdrawStake, epoch: int, dry: bool) -> None:
        s = self._owned(sender, p.signing_key)
        ready = sum(a for release, a in s.unbonding if release <= epoch)
        if ready == 0:
            waits = [release for release, _ in s.unbonding]
            when = f"; the next release is at epoch {min(waits)}" if waits else ""
            raise CallFailed(f"nothing to withdraw at epoch {epoch}{when}")
        if not dry:
            s.unbonding = [(r, a) for r, a in s.unbonding if r > epoch]
            self._account(sender).balance += ready

    def _unjail(self, sender: bytes, p: Unjail, epoch: int, dry: bool) -> None:
        s = self._owned(sender, p.signing_key)
        if not s.jailed:
            raise CallFailed("the sequencer is not jailed")
        if epoch < s.jailed_until_epoch:
            raise CallFailed(f"jailed until epoch {s.jailed_until_epoch}; it is epoch {epoch}")
        if s.stake < self.config.min_stake:
            raise CallFailed(
                f"stake {s.stake} is below the minimum {self.config.min_stake}; lock more first"
            )
        if not dry:
            s.jailed = False
            s.slashed = False

    def _slash(self, reporter: bytes, p: SubmitEvidence, epoch: int, dry: bool) -> None:
        ev = p.evidence
        try:
            offender = verify_evidence(ev, self.config.l2_chain_id)
        except CertificateError as e:
            raise CallFailed(f"invalid evidence: {e}") from None
        key = (offender, ev.kind, ev.round)
        if key in self.offences:
            raise CallFailed(
                f"this offence ({ev.kind.value} at round {ev.round}) was already slashed"
            )
        s = self.sequencers.get(offender)
        if s is None or s.stake + s.unbonding_total == 0:
            raise CallFailed("the offender has no bonded or unbonding stake")
        if dry:
            return
        bps = self.config.slash_bps
        cut = s.stake * bps // 10_000
        s.stake -= cut
        new_unbonding = []
        for release, amount in s.unbonding:
            c = amount * bps // 10_000
            cut += c
            new_unbonding.append((release, amount - c))
        s.unbonding = new_unbonding
        share = cut * self.config.reporter_share_bps // 10_000
        self._account(reporter).balance += share
        self.burned += cut - share
        s.jailed = True
        s.slashed = True
        s.jailed_until_epoch = max(s.jailed_until_epoch, epoch + self.config.unjail_cooldown_epochs)
        self.offences.add(key)

    def _downtime(self, p: ReportDowntime, epoch: int, dry: bool) -> None:
        cert = p.certificate
        r = cert.report
        snap = self.snapshots.get(r.stake_epoch)
        if snap is None:
            raise CallFailed(f"no stake snapshot for epoch {r.stake_epoch} (too old or future)")
        rid = message_id(dataclasses.replace(r, signer=bytes(32), signature=bytes(64)))
        if rid in self.downtime_reports:
            raise CallFailed("this downtime report was already applied")
        try:
            verify_downtime_certificate(cert, snap.stakes, self.config.l2_chain_id)
        except CertificateError as e:
            raise CallFailed(f"invalid downtime certificate: {e}") from None
        s = self.sequencers.get(r.offender)
        if s is None:
            raise CallFailed("the reported sequencer is not registered")
        if s.jailed:
            raise CallFailed("the reported sequencer is already jailed")
        if dry:
            return
        s.jailed = True
        s.jailed_until_epoch = epoch + self.config.unjail_cooldown_epochs
        self.downtime_reports.add(rid)

    def _inbox(self, p: SubmitBatch, h: bytes, number: int, dry: bool) -> None:
        header = p.certificate.header
        cfg = self.config
        if header.chain_id != cfg.l2_chain_id:
            raise CallFailed(
                f"batch for L2 chain {header.chain_id}; this inbox is {cfg.l2_chain_id}"
            )
        last = self.batches[-1].header if self.batches else None
        want_number = last.batch_number + 1 if last else 0
        want_parent = batch_hash(last) if last else ZERO_HASH
        want_first = last.last_height + 1 if last else cfg.inbox_first_height
        if header.batch_number != want_number:
            raise CallFailed(f"batch number {header.batch_number}; expected {want_number}")
        if header.parent_batch_hash != want_parent:
            raise CallFailed("wrong parent: parent_batch_hash is not the last accepted batch")
        if header.first_height != want_first:
            raise CallFailed(f"first_height {header.first_height}; expected {want_first}")
        if header.da_kind == DA_CALLDATA:
            if hashlib.sha256(p.calldata).digest() != header.data_hash:
                raise CallFailed("data_hash is not sha256 of the calldata")
            if header.data_bytes != len(p.calldata):
                raise CallFailed("data_bytes is not the calldata length")
        elif header.da_kind == DA_BLOBS and not p.commitments:
            raise CallFailed("a blob batch needs blobs")
        current = self._pending_epoch if not dry else self._dry_run_epoch()
        e = header.stake_epoch
        if not (e == 0 or e <= current - 2):
            raise CallFailed(f"stake snapshot of epoch {e} is not finalized yet")
        if e + cfg.unbonding_epochs < current:
            raise CallFailed(f"stake snapshot of epoch {e} is older than the unbonding period")
        snap = self.snapshots.get(e)
        if snap is None:
            raise CallFailed(f"no stake snapshot for epoch {e}")
        if last and e < last.stake_epoch:
            raise CallFailed(
                f"stake epoch {e} is older than the previous batch's {last.stake_epoch}"
            )
        prev_forced = last.forced_index if last else 0
        if not prev_forced <= header.forced_index <= len(self.forced):
            raise CallFailed(
                f"forced_index {header.forced_index} outside [{prev_forced}, {len(self.forced)}]"
            )
        if header.forced_index < len(self.forced):
            # Entries are in L1 order: only the oldest one left out can be overdue.
            f = self.forced[header.forced_index]
            if f.l1_block + cfg.sequencing_window <= number:
                raise CallFailed(
                    f"skips forced transaction {f.queue_index} queued at L1 block {f.l1_block}, "
                    f"older than the sequencing window of {cfg.sequencing_window} blocks"
                )
        stakes = snap.stakes
        try:
            verify_batch_certificate(p.certificate, stakes, cfg.l2_chain_id)
        except CertificateError as err:
            raise CallFailed(f"bad certificate: {err}") from None
        if dry:
            return
        signers = tuple(s.signer for s in p.certificate.signatures)
        self.batches.append(AcceptedBatch(header, number, h, signers))
        blocks = header.last_height - header.first_height + 1
        total = blocks * cfg.reward_per_block
        signed = sum(stakes[s] for s in signers)
        for s in signers:
            share = total * stakes[s] // signed
            seq = self.sequencers.get(s)
            if seq is not None and share:
                seq.rewards += share
                self.minted += share


__all__ = [
    "INBOX_ADDRESS",
    "STAKING_ADDRESS",
    "TOKEN",
    "AcceptedBatch",
    "CallFailed",
    "CallRejected",
    "Chain",
    "ChainConfig",
    "Genesis",
    "GenesisSequencer",
    "L1Block",
    "Receipt",
    "Sequencer",
    "Sidecar",
    "StakeSnapshot",
    "check_retention",
    "strip_blobs",
    "tx_hash_of",
    "retention_floor_epoch",
]
