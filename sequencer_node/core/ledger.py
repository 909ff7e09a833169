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

Signatures: :func:`verify_tx_signature` checks the domain-separated Ed25519 signature; good
signatures are remembered process-wide by :func:`sequencer_node.wire.crypto.verify`, because
verification is the node's CPU bottleneck (about 12 k/s per core).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import msgpack

from sequencer_node.wire.codec import message_id, signing_bytes
from sequencer_node.wire.crypto import address_of, verify
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
    fee_paid: int


# --- signatures ------------------------------------------------------------------------------


def verify_tx_signature(tx: Transaction, chain_id: int) -> bool:
    """True iff ``tx`` carries its sender's valid signature for ``chain_id``.

    Good signatures are remembered process-wide (:data:`~sequencer_node.wire.crypto.
    SIGNATURE_CACHE`), so a transfer checked by the mempool costs nothing when a block
    includes it.
    """
    return verify(tx.sender, tx.signature, signing_bytes(tx, chain_id))


def tx_root(txs: Sequence[Transaction], forced: Sequence[ForcedTransaction]) -> bytes:
    """Commitment to a block's forced entries and transactions, in execution order."""
    h = hashlib.sha256(_TX_ROOT_TAG)
    h.update(len(forced).to_bytes(4, "big"))
    for f in forced:
        h.update(message_id(f))
    h.update(len(txs).to_bytes(4, "big"))
    for tx in txs:
        h.update(message_id(tx))
    return h.digest()


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
    #: The 256 bucket hashes in index order (zeros for an empty bucket), kept so that the
    #: shard hash is one join, not 256 lookups.
    hashes: tuple[bytes, ...]
    hash: bytes


_EMPTY_HASHES = (_EMPTY,) * 256


def _root_hash(shard_hashes: Sequence[bytes], forced_index: int) -> bytes:
    return hashlib.sha256(
        _ROOT_TAG + forced_index.to_bytes(8, "big") + b"".join(shard_hashes)
    ).digest()


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
            hashes = list(old_shard.hashes)
        else:
            buckets = {}
            hashes = list(_EMPTY_HASHES)
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
            if merged:
                bucket = _Bucket(merged, _bucket_hash(merged))
                buckets[b_idx] = bucket
                hashes[b_idx] = bucket.hash
            else:
                buckets.pop(b_idx, None)
                hashes[b_idx] = _EMPTY
        if buckets:
            shard_hash = hashlib.sha256(_SHARD_TAG + b"".join(hashes)).digest()
            new_shards[s_idx] = _Shard(buckets, tuple(hashes), shard_hash)
        else:
            new_shards.pop(s_idx, None)
    return new_shards, delta


def _check_address(address: bytes, what: str) -> None:
    if type(address) is not bytes or len(address) != ADDRESS_BYTES:
        raise ValueError(f"{what}: an address has 20 bytes, got {address!r}")


class Ledger:
    """The L2 account state after some block. Immutable: applying returns a new ledger."""

    __slots__ = ("_count", "_forced_index", "_root", "_shards")

    def __init__(self, shards: dict[int, _Shard], forced_index: int, count: int) -> None:
        # Private: use genesis() or from_bytes().
        self._shards = shards
        self._forced_index = forced_index
        get = shards.get
        self._root = _root_hash(
            [_EMPTY if (sh := get(i)) is None else sh.hash for i in range(256)], forced_index
        )
        self._count = count

    # --- construction ---------------------------------------------------------------------

    @classmethod
    def genesis(cls, balances: Mapping[bytes, int]) -> Ledger:
        """The initial state: ``balances`` (address -> amount), every nonce 0."""
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
        return cls(shards, 0, count)

    @classmethod
    def _from_accounts(cls, accounts: Iterable[tuple[bytes, Account]], forced_index: int) -> Ledger:
        shards, count = _with_changes({}, dict(accounts))
        return cls(shards, forced_index, count)

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

    def check_tx(self, tx: Transaction) -> str | None:
        """Why ``tx`` could not run on this state as the sender's next transaction (or None).

        The signature is not checked here: see :func:`verify_tx_signature`.
        """
        return _check_transfer(tx, self._get(address_of(tx.sender)))

    # --- execution ------------------------------------------------------------------------

    def apply_block(
        self,
        txs: Sequence[Transaction],
        forced: Sequence[ForcedTransaction],
        *,
        proposer: bytes,
        chain_id: int | None = None,
    ) -> tuple[Ledger, list[Receipt]]:
        """Execute forced entries (in queue order), then ``txs``; return the new state.

        ``chain_id``: when given, every signature is checked (cached): a bad one in ``txs``
        makes the block invalid, a bad one in ``forced`` skips that entry. When None, the
        caller vouches for the signatures of ``txs`` *and* ``forced``; pass it whenever the
        forced entries come from L1, which does not check L2 signatures.

        Raises:
            InvalidBlock: a normal transaction fails, or ``forced`` does not continue the
                queue at :meth:`forced_index` with consecutive indices.
        """
        run = _BlockRun(self, proposer, chain_id, forced)
        for i, tx in enumerate(txs):
            tid = message_id(tx)
            reason = run.transfer(tx)
            if reason is not None:
                raise InvalidBlock(f"transaction {i} ({to_hex(tid)[:18]}): {reason}")
            run.receipts.append(Receipt(tid, True, None, tx.fee))
        return run.finish(), run.receipts

    def build_block(
        self,
        candidates: Sequence[Transaction],
        forced: Sequence[ForcedTransaction],
        *,
        proposer: bytes,
        chain_id: int | None = None,
    ) -> tuple[Ledger, list[Transaction], list[Receipt], list[tuple[Transaction, str]]]:
        """What a proposer runs: like :meth:`apply_block`, but a candidate that fails is
        left out instead of invalidating the block.

        A forced entry can spend a sender's balance or use its nonce before that sender's
        pooled transactions run, so a mempool selection is not always executable after the
        block's forced entries; this keeps the rest of the selection instead of proposing an
        empty block. Returns ``(ledger, included, receipts, dropped)`` where ``dropped`` lists
        each left-out candidate with its reason. ``apply_block(included, forced)`` gives the
        same ledger and receipts.

        Raises:
            InvalidBlock: ``forced`` does not continue the queue.
        """
        run = _BlockRun(self, proposer, chain_id, forced)
        included: list[Transaction] = []
        dropped: list[tuple[Transaction, str]] = []
        for tx in candidates:
            tid = message_id(tx)
            reason = run.transfer(tx)
            if reason is not None:
                dropped.append((tx, reason))
                continue
            included.append(tx)
            run.receipts.append(Receipt(tid, True, None, tx.fee))
        return run.finish(), included, run.receipts, dropped

    # --- snapshots ------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """A self-checking snapshot: magic, version, then msgpack [root, forced_index, accounts]."""
        body: bytes = msgpack.packb(
            [
                self._root,
                self._forced_index,
                [[a, acct.balance.to_bytes(16, "big"), acct.nonce] for a, acct in self.accounts()],
            ],
            use_bin_type=True,
        )
        return SNAPSHOT_MAGIC + bytes([SNAPSHOT_VERSION]) + body

    @classmethod
    def from_bytes(cls, data: bytes) -> Ledger:
        """Decode :meth:`to_bytes` output strictly; the recomputed root must match.

        Raises:
            ValueError: the bytes are not a well-formed, consistent ledger snapshot.
        """
        if data[:4] != SNAPSHOT_MAGIC:
            raise ValueError("not a ledger snapshot (bad magic)")
        if data[4:5] != bytes([SNAPSHOT_VERSION]):
            raise ValueError(f"unsupported ledger snapshot version {data[4:5].hex() or 'none'}")
        try:
            obj = msgpack.unpackb(
                data[5:],
                raw=False,
                max_map_len=0,
                max_ext_len=0,
                max_str_len=0,
                max_bin_len=32,
                max_array_len=MAX_SNAPSHOT_ACCOUNTS,
            )
        except (ValueError, msgpack.UnpackException) as e:
            raise ValueError(f"ledger snapshot is not valid msgpack: {e}") from None
        if type(obj) is not list or len(obj) != 3:
            raise ValueError("ledger snapshot: expected [root, forced_index, accounts]")
        root, forced_index, rows = obj
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
        ledger = cls._from_accounts(accounts, forced_index)
        if ledger.state_root() != root:
            raise ValueError("ledger snapshot: recomputed state root does not match")
        return ledger

    def __repr__(self) -> str:
        return (
            f"Ledger(accounts={self._count}, forced_index={self._forced_index}, "
            f"root={self._root.hex()[:16]}...)"
        )


class _BlockRun:
    """One block's execution on top of ``base``: forced entries first (at construction),
    then transfers one by one; an overlay of changed accounts until :meth:`finish`."""

    def __init__(
        self,
        base: Ledger,
        proposer: bytes,
        chain_id: int | None,
        forced: Sequence[ForcedTransaction],
    ) -> None:
        if len(proposer) != 32:
            raise InvalidBlock(f"proposer must be a 32-byte public key, got {len(proposer)} bytes")
        self._base = base
        self._fee_to = address_of(proposer)
        self._chain_id = chain_id
        self._overlay: dict[bytes, Account] = {}
        self.receipts: list[Receipt] = []
        self._next_index = base.forced_index()
        for i, entry in enumerate(forced):
            if entry.queue_index != self._next_index:
                raise InvalidBlock(
                    f"forced entry {i} has queue index {entry.queue_index}, "
                    f"expected {self._next_index}"
                )
            self._next_index += 1
            fid = message_id(entry.tx)
            reason = self.transfer(entry.tx)
            fee = entry.tx.fee if not reason else 0
            self.receipts.append(Receipt(fid, reason is None, reason, fee))

    def _get(self, addr: bytes) -> Account:
        acct = self._overlay.get(addr)
        return acct if acct is not None else self._base._get(addr)

    def transfer(self, tx: Transaction) -> str | None:
        """Apply ``tx`` to the overlay, or say why it fails (and change nothing)."""
        if self._chain_id is not None and not verify_tx_signature(tx, self._chain_id):
            return "bad signature"
        sender = address_of(tx.sender)
        acct = self._get(sender)
        reason = _check_transfer(tx, acct)
        if reason is not None:
            return reason
        self._overlay[sender] = Account(acct.balance - tx.amount - tx.fee, acct.nonce + 1)
        to = self._get(tx.to)
        self._overlay[tx.to] = Account(to.balance + tx.amount, to.nonce)
        if tx.fee:
            p = self._get(self._fee_to)
            self._overlay[self._fee_to] = Account(p.balance + tx.fee, p.nonce)
        return None

    def finish(self) -> Ledger:
        shards, delta = _with_changes(self._base._shards, self._overlay)
        return Ledger(shards, self._next_index, self._base._count + delta)


def _check_transfer(tx: Transaction, acct: Account) -> str | None:
    if tx.nonce < acct.nonce:
        return f"nonce too low: {tx.nonce}, account nonce is {acct.nonce}"
    if tx.nonce > acct.nonce:
        return f"nonce too high: {tx.nonce}, account nonce is {acct.nonce}"
    if acct.nonce >= MAX_NONCE:
        return "account nonce exhausted"
    cost = tx.amount + tx.fee
    if cost > acct.balance:
        return f"insufficient balance: needs {cost} (amount + fee), has {acct.balance}"
    return None
