"""L2 execution: accounts, transfers, forced inclusions, receipts and the state root.

Theory of operation
-------------------
An account is ``(balance, nonce)`` under a 20-byte address (``address_of(pubkey)``). A
:class:`Ledger` is an immutable value: :meth:`Ledger.apply_block` returns a *new* ledger and
leaves the old one untouched, so the consensus core can keep the state of every uncommitted
block of a fork without copying all accounts.

That is cheap because the accounts live in a fixed-depth, copy-on-write tree: 256 *shards*
(by the first address byte), each holding up to 256 *buckets* (by the second byte), each a
small dict of accounts. A block copies only the shards and buckets it touches, and only
their hashes are recomputed:

* bucket hash = ``sha256("seqnet/state/bucket" || address || balance (16 B) || nonce (8 B) ...)``
  over the bucket's accounts sorted by address;
* shard hash = ``sha256("seqnet/state/shard" || 256 bucket hashes)`` (zeros for empty buckets);
* state root = ``sha256("seqnet/state/v1" || forced_index (8 B) || 256 shard hashes)``
  (zeros for an empty shard).

The root therefore depends only on the set of accounts and the forced-queue position, never
on dict insertion order, and a block touching *k* accounts costs *k* bucket hashes plus at
most ``min(k, 256)`` 8 KiB shard hashes (see ``scripts/bench_execution.py``). The layout
also makes Merkle proofs possible (bucket, shard preimage, root preimage) should a light
client need them.

Transfer rule (:meth:`Ledger.apply_block`): a transaction from ``sender`` with nonce equal
to the account nonce and ``amount + fee <= balance`` debits ``amount + fee``, credits
``amount`` to ``to``, credits ``fee`` to the proposer's account and bumps the nonce. Forced
transactions (queued on L1) run first, in queue order; one that fails (bad signature, nonce,
balance) is skipped with a failed receipt but still consumes its queue index, because L1
queued it unconditionally. A normal transaction that fails makes the whole block invalid.

Fees (:mod:`sequencer_node.core.fees`): a ledger made without fee parameters keeps the flat
rule above and the root and snapshot format of before. A ledger made with them carries a
:class:`~sequencer_node.core.fees.FeeState`, committed to by the root (``sha256`` of its
canonical bytes appended to the root preimage). Its blocks take a :class:`FeeInput` (the L1
data of the blocks their origin moved over, and whether the block starts an L2 epoch), and each
transfer pays what :func:`~sequencer_node.core.fees.charge` says: the L2 base fee to the
base-fee vault, the L1 data fee to the L1 fee vault, the rest (priority) to the proposer. The
``fee`` of a native transfer is then the sender's maximum, always paid in full. A block's gas
(21,000 per transfer) may not exceed the model's gas limit. The posting cost of each batch the
L1 reports is paid by the L1 fee vault to the batcher account (what it cannot pay is owed).

Ethereum transactions (:mod:`sequencer_node.wire.eth`, a block's ``eth_transactions``) run
after the native ones, on the same accounts (the sender is the 20-byte address recovered from
the secp256k1 signature). Value transfers only: the chain id must be the L2's, the nonce the
account's, the gas limit at least 21,000, and the balance must cover ``value + gas_limit *
max_fee_per_gas`` (plus the L1 data fee under a model that charges one). The transfer uses
21,000 gas and pays ``21,000 * min(max_fee_per_gas, base_fee + max_priority_fee_per_gas)``
(a legacy transaction: ``21,000 * gas_price``), through the same fee seam as native transfers
(:func:`eth_fee_view`): without a fee model, or under ``flat``, the base fee is 0 and the whole
fee goes to the proposer. Their receipts carry the Ethereum hash (``keccak256(raw)``).

Signatures: :func:`verify_tx_signature` checks the domain-separated Ed25519 signature; good
signatures are remembered process-wide by :func:`sequencer_node.wire.crypto.verify`, because
verification is the node's CPU bottleneck (about 12 k/s per core).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple

import msgpack

from sequencer_node.core import fees as _fees
from sequencer_node.core.fees import FeeCharge, FeeParams, FeeState, L1FeeInfo, TxFeeView
from sequencer_node.wire.codec import encode, message_id, signing_bytes
from sequencer_node.wire.crypto import address_of, verify
from sequencer_node.wire.eth import (
    TRANSFER_GAS,
    EthTransaction,
    EthTx,
    EthTxError,
    decode_eth,
    static_refusal,
)
from sequencer_node.wire.hexstr import to_hex
from sequencer_node.wire.messages import ForcedTransaction, Transaction

ADDRESS_BYTES = 20
#: Balances are kept below 2**128; the genesis total supply must be too, and transfers
#: conserve it, so no balance can ever overflow.
MAX_BALANCE = (1 << 128) - 1
MAX_NONCE = (1 << 64) - 1
#: Upper bound of accounts in a decoded snapshot (bounds :meth:`Ledger.from_bytes`).
MAX_SNAPSHOT_ACCOUNTS = 50_000_000
SNAPSHOT_MAGIC = b"SQLG"
SNAPSHOT_VERSION = 1
#: Snapshot version of a ledger with a fee state (version 1 has none).
SNAPSHOT_VERSION_FEES = 2
_MAX_FEE_STATE_BYTES = 1024

_EMPTY = bytes(32)
_BUCKET_TAG = b"seqnet/state/bucket"
_SHARD_TAG = b"seqnet/state/shard"
_ROOT_TAG = b"seqnet/state/v1"
_TX_ROOT_TAG = b"seqnet/tx-root/v1"


class InvalidBlock(Exception):
    """A block that cannot be executed; ``reason`` says which transaction and why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Account(NamedTuple):
    balance: int
    nonce: int


_NO_ACCOUNT = Account(0, 0)


@dataclass(frozen=True, slots=True)
class Receipt:
    """The outcome of one transaction (forced ones first, then normal ones, in block order)."""

    tx_hash: bytes
    ok: bool
    reason: str | None
    #: Everything the sender paid in fees (base + L1 data + priority).
    fee_paid: int
    #: The parts that went to the base-fee vault and to the L1 fee vault (the rest went to
    #: the proposer); zero under the flat model.
    base_fee_paid: int = 0
    l1_fee_paid: int = 0


@dataclass(frozen=True, slots=True)
class FeeInput:
    """The fee inputs of one block of a ledger with a fee state.

    ``l1_origin``: the block's L1 origin; ``l1``: the :class:`~sequencer_node.core.fees.
    L1FeeInfo` of every L1 block in :meth:`Ledger.l1_needed` (``l1_origin``), in order;
    ``epoch_start``: the block is the first of an L2 epoch (a pending model takes over).
    """

    l1_origin: int
    l1: tuple[L1FeeInfo, ...] = ()
    epoch_start: bool = False


# --- signatures ------------------------------------------------------------------------------


def verify_tx_signature(tx: Transaction, chain_id: int) -> bool:
    """True iff ``tx`` carries its sender's valid signature for ``chain_id``.

    Good signatures are remembered process-wide (:data:`~sequencer_node.wire.crypto.
    SIGNATURE_CACHE`), so a transfer checked by the mempool costs nothing when a block
    includes it. The object itself remembers the chain it was found good for: one node asks
    three to five times of each transfer object (peer check or mempool, block execution, the
    leader's block building), and building its signing bytes and the cache key again cost
    2.9 us each time (0.07 us with the memo; docs/benchmarks.md, seventh part). A frozen
    object's fields never change, and only a success is remembered, so the answer is the one
    ``verify`` gives.
    """
    if tx._good_for == chain_id:
        return True
    if not verify(tx.sender, tx.signature, signing_bytes(tx, chain_id)):
        return False
    object.__setattr__(tx, "_good_for", chain_id)
    return True


def tx_root(
    txs: Sequence[Transaction],
    forced: Sequence[ForcedTransaction],
    eth: Sequence[EthTransaction] = (),
) -> bytes:
    """Commitment to a block's forced entries, transactions and Ethereum transactions, in
    execution order. The Ethereum part (count, then each message id) is appended only when
    there is one, so a block without Ethereum transactions keeps its root of before; the
    counts make the preimage unambiguous."""
    h = hashlib.sha256(_TX_ROOT_TAG)
    h.update(len(forced).to_bytes(4, "big"))
    for f in forced:
        h.update(message_id(f))
    h.update(len(txs).to_bytes(4, "big"))
    for tx in txs:
        h.update(message_id(tx))
    if eth:
        h.update(len(eth).to_bytes(4, "big"))
        for e in eth:
            h.update(message_id(e))
    return h.digest()


def split_txs(
    txs: Iterable[Transaction | EthTransaction],
) -> tuple[tuple[Transaction, ...], tuple[EthTransaction, ...]]:
    """A block's ``transactions`` and ``eth_transactions`` from a mixed list (order kept)."""
    native: list[Transaction] = []
    eth: list[EthTransaction] = []
    for tx in txs:
        if isinstance(tx, EthTransaction):
            eth.append(tx)
        else:
            native.append(tx)
    return tuple(native), tuple(eth)


# --- the account tree ------------------------------------------------------------------------


def _bucket_hash(accounts: Mapping[bytes, Account]) -> bytes:
    if not accounts:
        return _EMPTY
    h = hashlib.sha256(_BUCKET_TAG)
    for addr in sorted(accounts):
        bal, nonce = accounts[addr]
        h.update(addr + bal.to_bytes(16, "big") + nonce.to_bytes(8, "big"))
    return h.digest()


@dataclass(frozen=True, slots=True)
class _Bucket:
    accounts: dict[bytes, Account]  # never mutated once built
    hash: bytes


@dataclass(frozen=True, slots=True)
class _Shard:
    buckets: dict[int, _Bucket]  # never mutated once built; no empty buckets
    #: The shard hash's preimage: the tag, then the 256 bucket hashes in index order (zeros
    #: for an empty bucket). One ``bytes`` value, so that a change is one copy of 8 KiB and
    #: a slice assignment, and the hash needs no join (issue 13: the per-block cost).
    preimage: bytes
    hash: bytes


_BUCKET_AT = len(_SHARD_TAG)
_EMPTY_SHARD_PREIMAGE = _SHARD_TAG + _EMPTY * 256


def _root_hash(
    shard_hashes: Sequence[bytes], forced_index: int, fee_state: FeeState | None = None
) -> bytes:
    h = hashlib.sha256(_ROOT_TAG + forced_index.to_bytes(8, "big") + b"".join(shard_hashes))
    if fee_state is not None:
        h.update(hashlib.sha256(fee_state.canonical()).digest())
    return h.digest()


def _with_changes(
    shards: Mapping[int, _Shard], changes: Mapping[bytes, Account]
) -> tuple[dict[int, _Shard], int]:
    """A new shard map with ``changes`` written, and the change in the number of accounts.

    Copy-on-write: untouched shards and buckets are shared with ``shards``.
    """
    grouped: dict[int, dict[int, dict[bytes, Account]]] = {}
    for addr, acct in changes.items():
        grouped.setdefault(addr[0], {}).setdefault(addr[1], {})[addr] = acct
    new_shards = dict(shards)
    delta = 0
    for s_idx, by_bucket in grouped.items():
        old_shard = shards.get(s_idx)
        if old_shard is not None:
            buckets = dict(old_shard.buckets)
            preimage = bytearray(old_shard.preimage)
        else:
            buckets = {}
            preimage = bytearray(_EMPTY_SHARD_PREIMAGE)
        for b_idx, accts in by_bucket.items():
            old_bucket = buckets.get(b_idx)
            merged = dict(old_bucket.accounts) if old_bucket is not None else {}
            before = len(merged)
            for addr, acct in accts.items():
                # An account that is back to (0, 0) is indistinguishable from a missing one;
                # dropping it keeps the root a function of the meaningful state only.
                if acct == _NO_ACCOUNT:
                    merged.pop(addr, None)
                else:
                    merged[addr] = acct
            delta += len(merged) - before
            at = _BUCKET_AT + 32 * b_idx
            if merged:
                bucket = _Bucket(merged, _bucket_hash(merged))
                buckets[b_idx] = bucket
                preimage[at : at + 32] = bucket.hash
            else:
                buckets.pop(b_idx, None)
                preimage[at : at + 32] = _EMPTY
        if buckets:
            data = bytes(preimage)
            new_shards[s_idx] = _Shard(buckets, data, hashlib.sha256(data).digest())
        else:
            new_shards.pop(s_idx, None)
    return new_shards, delta


def _check_address(address: bytes, what: str) -> None:
    if type(address) is not bytes or len(address) != ADDRESS_BYTES:
        raise ValueError(f"{what}: an address has 20 bytes, got {address!r}")


class Ledger:
    """The L2 account state after some block. Immutable: applying returns a new ledger."""

    __slots__ = ("_count", "_fees", "_forced_index", "_root", "_shards")

    def __init__(
        self,
        shards: dict[int, _Shard],
        forced_index: int,
        count: int,
        fees: FeeState | None = None,
    ) -> None:
        # Private: use genesis() or from_bytes().
        self._shards = shards
        self._forced_index = forced_index
        self._fees = fees
        get = shards.get
        self._root = _root_hash(
            [_EMPTY if (sh := get(i)) is None else sh.hash for i in range(256)], forced_index, fees
        )
        self._count = count

    # --- construction ---------------------------------------------------------------------

    @classmethod
    def genesis(cls, balances: Mapping[bytes, int], fees: FeeParams | None = None) -> Ledger:
        """The initial state: ``balances`` (address -> amount), every nonce 0; with ``fees``,
        a fee state under that model (else the historical flat rule, no fee state)."""
        total = 0
        accounts: dict[bytes, Account] = {}
        for addr, amount in balances.items():
            _check_address(addr, "genesis")
            if type(amount) is not int or amount < 0:
                raise ValueError(f"genesis balance of {to_hex(addr)} must be an int >= 0")
            total += amount
            accounts[addr] = Account(amount, 0)
        if total > MAX_BALANCE:
            raise ValueError(f"genesis total supply {total} exceeds 2**128 - 1")
        shards, count = _with_changes({}, accounts)
        return cls(shards, 0, count, None if fees is None else FeeState.genesis(fees))

    @classmethod
    def _from_accounts(
        cls,
        accounts: Iterable[tuple[bytes, Account]],
        forced_index: int,
        fees: FeeState | None = None,
    ) -> Ledger:
        shards, count = _with_changes({}, dict(accounts))
        return cls(shards, forced_index, count, fees)

    # --- queries --------------------------------------------------------------------------

    def _get(self, address: bytes) -> Account:
        shard = self._shards.get(address[0]) if address else None
        if shard is None:
            return _NO_ACCOUNT
        bucket = shard.buckets.get(address[1])
        if bucket is None:
            return _NO_ACCOUNT
        return bucket.accounts.get(address, _NO_ACCOUNT)

    def state_root(self) -> bytes:
        return self._root

    def balance(self, address: bytes) -> int:
        return self._get(address).balance

    def nonce(self, address: bytes) -> int:
        return self._get(address).nonce

    def forced_index(self) -> int:
        """Forced-queue entries consumed so far (the next expected ``queue_index``)."""
        return self._forced_index

    def account_count(self) -> int:
        return self._count

    def accounts(self) -> Iterable[tuple[bytes, Account]]:
        """Every non-empty account, sorted by address."""
        items = [
            (a, acct)
            for s in self._shards.values()
            for b in s.buckets.values()
            for a, acct in b.accounts.items()
        ]
        items.sort()
        return items

    def total_supply(self) -> int:
        return sum(acct.balance for _, acct in self.accounts())

    def fee_state(self) -> FeeState | None:
        """The fee model's state (None: the historical flat rule without fee state)."""
        return self._fees

    def l1_needed(self, l1_origin: int) -> range:
        """L1 block numbers whose fee data a block with ``l1_origin`` on this state needs in
        its :class:`FeeInput` (empty without a fee state, or when the origin stays)."""
        return range(0) if self._fees is None else self._fees.l1_needed(l1_origin)

    def fee_quote(self, view: TxFeeView) -> FeeCharge | str:
        """What a transaction would pay in a block on this state with an unchanged L1 origin
        (mempool admission, estimates), or why it cannot pay."""
        return _fees.charge(None if self._fees is None else self._fees.context(), view)

    def check_tx(self, tx: Transaction) -> str | None:
        """Why ``tx`` could not run on this state as the sender's next transaction (or None).

        The signature is not checked here: see :func:`verify_tx_signature`.
        """
        reason = _check_transfer(tx, self._get(address_of(tx.sender)))
        if reason is None and self._fees is not None:
            quote = self.fee_quote(native_fee_view(tx))
            reason = quote if isinstance(quote, str) else None
        return reason

    # --- execution ------------------------------------------------------------------------

    def apply_block(
        self,
        txs: Sequence[Transaction],
        forced: Sequence[ForcedTransaction],
        *,
        proposer: bytes,
        chain_id: int | None = None,
        fee_input: FeeInput | None = None,
        eth_txs: Sequence[EthTransaction] = (),
        vouched: bool = False,
    ) -> tuple[Ledger, list[Receipt]]:
        """Execute forced entries (in queue order), then ``txs``, then ``eth_txs``; return
        the new state.

        ``chain_id``: when given, every signature is checked (cached): a bad one in ``txs``
        makes the block invalid, a bad one in ``forced`` skips that entry. When None, the
        caller vouches for the signatures of ``txs`` *and* ``forced``; pass it whenever the
        forced entries come from L1, which does not check L2 signatures.

        ``vouched``: the caller vouches for the signatures of ``txs`` only (a block with a
        valid QC: validators with more than 2/3 of the stake executed it, so at least one
        honest one checked every signature; docs/protocol.md section 7). ``forced`` entries
        are still checked with ``chain_id``, because their outcome depends on the check.

        ``fee_input``: required when this ledger has a fee state (see :class:`FeeInput`);
        ignored without one.

        Raises:
            InvalidBlock: a normal transaction fails, or ``forced`` does not continue the
                queue at :meth:`forced_index` with consecutive indices.
            ValueError: a fee state but no (or incomplete) ``fee_input``: a caller's bug.
        """
        run = _BlockRun(self, proposer, chain_id, forced, fee_input)
        if vouched:
            run.vouch_for_transfers()
        for i, tx in enumerate(txs):
            tid = message_id(tx)
            reason = run.transfer(tx)
            if reason is not None:
                raise InvalidBlock(f"transaction {i} ({to_hex(tid)[:18]}): {reason}")
            run.receipts.append(run.receipt(tid))
        for i, etx in enumerate(eth_txs):
            reason = run.eth_transfer(etx)
            if reason is not None:
                raise InvalidBlock(f"Ethereum transaction {i}: {reason}")
        return run.finish(), run.receipts

    def build_block(
        self,
        candidates: Sequence[Transaction | EthTransaction],
        forced: Sequence[ForcedTransaction],
        *,
        proposer: bytes,
        chain_id: int | None = None,
        fee_input: FeeInput | None = None,
    ) -> tuple[
        Ledger,
        list[Transaction | EthTransaction],
        list[Receipt],
        list[tuple[Transaction | EthTransaction, str]],
    ]:
        """What a proposer runs: like :meth:`apply_block`, but a candidate that fails is
        left out instead of invalidating the block.

        A forced entry can spend a sender's balance or use its nonce before that sender's
        pooled transactions run, so a mempool selection is not always executable after the
        block's forced entries; this keeps the rest of the selection instead of proposing an
        empty block. Returns ``(ledger, included, receipts, dropped)`` where ``dropped`` lists
        each left-out candidate with its reason. ``apply_block(included, forced)`` gives the
        same ledger and receipts.

        Ethereum candidates run after the native ones whatever their place in
        ``candidates`` (the block's order); ``included`` lists the native ones first, and
        :func:`split_txs` splits it into the block's two fields.

        Raises:
            InvalidBlock: ``forced`` does not continue the queue.
        """
        run = _BlockRun(self, proposer, chain_id, forced, fee_input)
        native, eth = split_txs(candidates)
        included: list[Transaction | EthTransaction] = []
        dropped: list[tuple[Transaction | EthTransaction, str]] = []
        for tx in native:
            tid = message_id(tx)
            reason = run.transfer(tx)
            if reason is not None:
                dropped.append((tx, reason))
                continue
            included.append(tx)
            run.receipts.append(run.receipt(tid))
        for etx in eth:
            reason = run.eth_transfer(etx)
            if reason is not None:
                dropped.append((etx, reason))
            else:
                included.append(etx)
        return run.finish(), included, run.receipts, dropped

    # --- snapshots ------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """A self-checking snapshot: magic, version, then msgpack [root, forced_index, accounts]
        (version 2 appends the fee state's canonical bytes)."""
        fields: list[object] = [
            self._root,
            self._forced_index,
            [[a, acct.balance.to_bytes(16, "big"), acct.nonce] for a, acct in self.accounts()],
        ]
        version = SNAPSHOT_VERSION
        if self._fees is not None:
            fields.append(self._fees.canonical())
            version = SNAPSHOT_VERSION_FEES
        body: bytes = msgpack.packb(fields, use_bin_type=True)
        return SNAPSHOT_MAGIC + bytes([version]) + body

    @classmethod
    def from_bytes(cls, data: bytes) -> Ledger:
        """Decode :meth:`to_bytes` output strictly; the recomputed root must match.

        Raises:
            ValueError: the bytes are not a well-formed, consistent ledger snapshot.
        """
        if data[:4] != SNAPSHOT_MAGIC:
            raise ValueError("not a ledger snapshot (bad magic)")
        if data[4:5] not in (bytes([SNAPSHOT_VERSION]), bytes([SNAPSHOT_VERSION_FEES])):
            raise ValueError(f"unsupported ledger snapshot version {data[4:5].hex() or 'none'}")
        with_fees = data[4] == SNAPSHOT_VERSION_FEES
        try:
            obj = msgpack.unpackb(
                data[5:],
                raw=False,
                max_map_len=0,
                max_ext_len=0,
                max_str_len=0,
                max_bin_len=_MAX_FEE_STATE_BYTES if with_fees else 32,
                max_array_len=MAX_SNAPSHOT_ACCOUNTS,
            )
        except (ValueError, msgpack.UnpackException) as e:
            raise ValueError(f"ledger snapshot is not valid msgpack: {e}") from None
        if type(obj) is not list or len(obj) != 3 + with_fees:
            raise ValueError("ledger snapshot: expected [root, forced_index, accounts(, fees)]")
        root, forced_index, rows = obj[:3]
        fee_state = _fee_state_of(obj[3]) if with_fees else None
        if type(root) is not bytes or len(root) != 32:
            raise ValueError("ledger snapshot: root must be 32 bytes")
        if type(forced_index) is not int or not 0 <= forced_index <= MAX_NONCE:
            raise ValueError("ledger snapshot: bad forced index")
        if type(rows) is not list:
            raise ValueError("ledger snapshot: accounts must be a list")
        accounts: list[tuple[bytes, Account]] = []
        prev = b""
        for n, row in enumerate(rows):
            if type(row) is not list or len(row) != 3:
                raise ValueError(f"ledger snapshot: account {n} is not [address, balance, nonce]")
            addr, bal, nonce = row
            if type(addr) is not bytes or len(addr) != ADDRESS_BYTES or addr <= prev:
                raise ValueError(f"ledger snapshot: account {n} address bad or out of order")
            if type(bal) is not bytes or len(bal) != 16:
                raise ValueError(f"ledger snapshot: account {n} balance must be 16 bytes")
            if type(nonce) is not int or not 0 <= nonce <= MAX_NONCE:
                raise ValueError(f"ledger snapshot: account {n} nonce out of range")
            acct = Account(int.from_bytes(bal, "big"), nonce)
            if acct == _NO_ACCOUNT:
                raise ValueError(f"ledger snapshot: account {n} is empty")
            accounts.append((addr, acct))
            prev = addr
        ledger = cls._from_accounts(accounts, forced_index, fee_state)
        if ledger.state_root() != root:
            raise ValueError("ledger snapshot: recomputed state root does not match")
        return ledger

    def __repr__(self) -> str:
        return (
            f"Ledger(accounts={self._count}, forced_index={self._forced_index}, "
            f"root={self._root.hex()[:16]}...)"
        )


def _fee_state_of(raw: object) -> FeeState:
    if type(raw) is not bytes:
        raise ValueError("ledger snapshot: the fee state must be bytes")
    try:
        return FeeState.from_canonical(raw)
    except ValueError as e:
        raise ValueError(f"ledger snapshot: {e}") from None


def native_fee_view(tx: Transaction) -> TxFeeView:
    """The fee view of a native transfer: ``fee`` is the maximum total, its wire encoding
    the bytes a batch carries for it."""
    return TxFeeView.native(tx.fee, encode(tx))


def base_fee_of(ledger: Ledger) -> int:
    """The L2 base fee (wei per gas) of a block built on ``ledger``: its fee state's, under a
    model that charges one; else 0."""
    state = ledger.fee_state()
    return state.base_fee if state is not None and state.params.charges_base_fee else 0


def eth_fee_view(tx: EthTx) -> TxFeeView:
    """The fee view of an Ethereum transfer: its caps, 21,000 gas, and its raw bytes (what a
    batch carries for it) for the L1 data fee."""
    return TxFeeView.eip1559(tx.max_fee_per_gas, tx.max_priority_fee_per_gas, TRANSFER_GAS, tx.raw)


class _BlockRun:
    """One block's execution on top of ``base``: the L1 fee data first, then forced entries
    (at construction), then transfers one by one; an overlay of changed accounts until
    :meth:`finish`."""

    def __init__(
        self,
        base: Ledger,
        proposer: bytes,
        chain_id: int | None,
        forced: Sequence[ForcedTransaction],
        fee_input: FeeInput | None = None,
    ) -> None:
        if len(proposer) != 32:
            raise InvalidBlock(f"proposer must be a 32-byte public key, got {len(proposer)} bytes")
        self._base = base
        self._fee_to = address_of(proposer)
        self._chain_id = chain_id
        self._vouched = False
        self._overlay: dict[bytes, Account] = {}
        self.receipts: list[Receipt] = []
        self._next_index = base.forced_index()
        self._fees: FeeState | None = None
        self._ctx: _fees.FeeContext | None = None
        self._gas_used = 0
        self._bytes = 0
        self._charge = FeeCharge()
        self._collected = [0, 0, 0]  # base, L1, priority fees of this block
        if base._fees is not None:
            if fee_input is None:
                raise ValueError("this ledger has a fee state: apply_block needs a fee_input")
            self._fees = self._advance_l1(base._fees, fee_input)
            self._ctx = self._fees.context()
        for i, entry in enumerate(forced):
            if entry.queue_index != self._next_index:
                raise InvalidBlock(
                    f"forced entry {i} has queue index {entry.queue_index}, "
                    f"expected {self._next_index}"
                )
            self._next_index += 1
            fid = message_id(entry.tx)
            reason = self.transfer(entry.tx)
            if reason:
                self.receipts.append(Receipt(fid, False, reason, 0))
            else:
                self.receipts.append(self.receipt(fid))

    def vouch_for_transfers(self) -> None:
        """Check no signature of the transfers still to come (the forced entries, whose
        outcome depends on their check, were executed at construction). Ethereum
        transactions are unaffected: recovering the sender is their execution."""
        self._vouched = True

    def _get(self, addr: bytes) -> Account:
        acct = self._overlay.get(addr)
        return acct if acct is not None else self._base._get(addr)

    def _credit(self, addr: bytes, amount: int) -> None:
        if amount:
            a = self._get(addr)
            self._overlay[addr] = Account(a.balance + amount, a.nonce)

    # --- fees -------------------------------------------------------------------------------

    def _advance_l1(self, state: FeeState, fin: FeeInput) -> FeeState:
        """Consume the L1 blocks the origin moved over: owner's model changes (pending),
        batch posting costs (paid by the L1 fee vault), the origin's base fees; then, at an
        epoch start, the pending model takes over."""
        need = state.l1_needed(fin.l1_origin)
        got = [info.number for info in fin.l1]
        if len(got) != len(need) or (got and (got[0] != need[0] or got[-1] != need[-1])):
            raise ValueError(f"fee input: L1 data for blocks {need} needed, got {got[:3]}...")
        for info in fin.l1:
            if info.fee_config is not None:
                state = replace(state, pending=info.fee_config)
            for cost in info.batch_costs:
                state = self._pay_batch(state, cost)
        if fin.l1:
            last = fin.l1[-1]
            state = replace(state, l1_origin=last.number, l1_base_fee=last.base_fee,
                            l1_blob_base_fee=last.blob_base_fee)  # fmt: skip
        if fin.epoch_start and state.pending is not None:
            state = _switch_model(state, state.pending)
        return state

    def _pay_batch(self, state: FeeState, cost: _fees.BatchCost) -> FeeState:
        """The L1 fee vault pays a batch's posting cost (and older debts) to the batcher
        account, as far as its balance goes; the L1 pricer reprices from the surplus."""
        p = state.params
        vault = self._get(p.l1_fee_vault).balance
        due = state.owed + cost.cost
        pay = min(vault, due)
        if pay:
            self._overlay[p.l1_fee_vault] = Account(vault - pay, self._get(p.l1_fee_vault).nonce)
            self._credit(p.batcher_account, pay)
        owed = due - pay
        surplus = vault - pay - owed
        price = state.price_per_byte
        if p.model == _fees.ARBITRUM_L1_PRICER:
            price = _fees.reprice(state, surplus, state.bytes_since_report)
        return replace(state, owed=owed, last_surplus=surplus, price_per_byte=price,
                       bytes_since_report=0,
                       paid_to_batcher=state.paid_to_batcher + pay)  # fmt: skip

    def _pay_fees(self, tx: Transaction) -> FeeCharge | str:
        """What ``tx`` pays under the block's model (gas limit included), or why not."""
        if self._ctx is None:
            return FeeCharge(priority=tx.fee)
        return self._charge_view(native_fee_view(tx))

    def _charge_view(self, view: TxFeeView) -> FeeCharge | str:
        """What a transaction with fee view ``view`` pays in this block, counting its gas and
        bytes (the gas limit included), or why it cannot be included."""
        if self._ctx is None:
            return _fees.charge(None, view)
        if self._ctx.params.charges_base_fee and (
            self._gas_used + view.gas_used > self._ctx.params.gas_limit
        ):
            return f"block gas limit {self._ctx.params.gas_limit} reached"
        charged = _fees.charge(self._ctx, view)
        if isinstance(charged, FeeCharge):
            self._gas_used += view.gas_used
            self._bytes += view.compressed_size
        return charged

    def receipt(self, tid: bytes) -> Receipt:
        """The receipt of the transfer that just succeeded."""
        c = self._charge
        return Receipt(tid, True, None, c.total, c.base, c.l1)

    # --- transfers --------------------------------------------------------------------------

    def transfer(self, tx: Transaction) -> str | None:
        """Apply ``tx`` to the overlay, or say why it fails (and change nothing)."""
        chain_id = self._chain_id
        if chain_id is not None and not self._vouched and not verify_tx_signature(tx, chain_id):
            return "bad signature"
        sender = address_of(tx.sender)
        acct = self._get(sender)
        reason = _check_transfer(tx, acct)
        if reason is not None:
            return reason
        charged = self._pay_fees(tx)
        if isinstance(charged, str):
            return charged
        self._charge = charged
        self._overlay[sender] = Account(acct.balance - tx.amount - charged.total, acct.nonce + 1)
        self._credit(tx.to, tx.amount)
        self._pay(charged)
        return None

    def _pay(self, charged: FeeCharge) -> None:
        """Credit a transaction's fee parts to the vaults and the proposer; count them."""
        if self._fees is not None:
            self._credit(self._fees.params.base_fee_vault, charged.base)
            self._credit(self._fees.params.l1_fee_vault, charged.l1)
        self._credit(self._fee_to, charged.priority)
        self._collected[0] += charged.base
        self._collected[1] += charged.l1
        self._collected[2] += charged.priority

    def eth_transfer(self, tx: EthTransaction) -> str | None:
        """Apply an Ethereum value transfer to the overlay and append its receipt, or say why
        it fails (and change nothing)."""
        try:
            etx = decode_eth(tx.raw)
        except EthTxError as e:
            return str(e)
        refusal = static_refusal(etx, etx.chain_id if self._chain_id is None else self._chain_id)
        if refusal is not None:
            return refusal
        acct = self._get(etx.sender)
        reason = _check_nonce(etx.nonce, acct)
        if reason is not None:
            return reason
        view = eth_fee_view(etx)
        quote = _fees.charge(self._ctx, view)  # the L1 fee, before any gas is counted
        l1 = quote.l1 if isinstance(quote, FeeCharge) else 0
        if etx.max_cost + l1 > acct.balance:
            what = "value + gas limit * max fee per gas" + (" + L1 data fee" if l1 else "")
            return f"insufficient funds: needs {etx.max_cost + l1} ({what}), has {acct.balance}"
        charged = self._charge_view(view)
        if isinstance(charged, str):
            return charged
        assert etx.to is not None  # static_refusal: no contract creation
        self._overlay[etx.sender] = Account(
            acct.balance - etx.value - charged.total, acct.nonce + 1
        )
        self._credit(etx.to, etx.value)
        self._pay(charged)
        self.receipts.append(Receipt(etx.hash, True, None, charged.total, charged.base, charged.l1))
        return None

    def finish(self) -> Ledger:
        fees = self._fees
        if fees is not None:
            base_fee = fees.base_fee
            if fees.params.charges_base_fee:
                base_fee = _fees.next_base_fee(fees.params, fees.base_fee, self._gas_used)
            b, l1, tip = self._collected
            fees = replace(
                fees, base_fee=base_fee, bytes_since_report=fees.bytes_since_report + self._bytes,
                collected_base=fees.collected_base + b, collected_l1=fees.collected_l1 + l1,
                collected_priority=fees.collected_priority + tip,
            )  # fmt: skip
        shards, delta = _with_changes(self._base._shards, self._overlay)
        return Ledger(shards, self._next_index, self._base._count + delta, fees)


def _switch_model(state: FeeState, new: FeeParams) -> FeeState:
    """Put ``new`` in force: a model that starts charging a base fee or pricing L1 bytes
    starts from its initial values; otherwise the running values carry over."""
    old = state.params
    base_fee = state.base_fee
    if not old.charges_base_fee or base_fee < new.min_base_fee:
        base_fee = max(new.initial_base_fee if not old.charges_base_fee else base_fee,
                       new.min_base_fee)  # fmt: skip
    price = state.price_per_byte
    if new.model == _fees.ARBITRUM_L1_PRICER and old.model != _fees.ARBITRUM_L1_PRICER:
        price = new.initial_price_per_byte
    return replace(state, params=new, pending=None, base_fee=base_fee, price_per_byte=price)


def _check_nonce(nonce: int, acct: Account) -> str | None:
    if nonce < acct.nonce:
        return f"nonce too low: {nonce}, account nonce is {acct.nonce}"
    if nonce > acct.nonce:
        return f"nonce too high: {nonce}, account nonce is {acct.nonce}"
    if acct.nonce >= MAX_NONCE:
        return "account nonce exhausted"
    return None


def _check_transfer(tx: Transaction, acct: Account) -> str | None:
    reason = _check_nonce(tx.nonce, acct)
    if reason is not None:
        return reason
    cost = tx.amount + tx.fee
    if cost > acct.balance:
        return f"insufficient balance: needs {cost} (amount + fee), has {acct.balance}"
    return None
