"""The transaction pool: admission with clear rejection reasons, and block selection.

Admission (:meth:`Mempool.add`) runs the cheap checks first and the Ed25519 verification
last, so that a flood of malformed or stale transactions costs no signature checks:

1. ``DUPLICATE``: the same transaction hash is already pooled;
2. ``FEE_TOO_LOW``: below the configured minimum fee, or (under a fee model with a base fee,
   :mod:`sequencer_node.core.fees`) below what the next block charges: L2 base fee * gas +
   L1 data fee, at the tip's base fee and L1 origin;
3. ``NONCE_TOO_LOW`` / ``NONCE_TOO_HIGH``: the nonce must lie in
   ``[account nonce, account nonce + max_nonce_gap]``;
4. ``REPLACEMENT_UNDERPRICED``: a different transaction holds that (sender, nonce) and the
   new fee is not at least 10 % higher (replace-by-fee);
5. ``POOL_FULL`` / ``SENDER_LIMIT``: total and per-sender bounds;
6. ``INSUFFICIENT_BALANCE``: the sender's pooled transactions up to and including this one
   cost more than the balance (credits that may arrive later are not counted);
7. ``BAD_SIGNATURE``.

Selection (:meth:`Mempool.select`) returns, for each sender, the run of consecutive nonces
starting at the account nonce that the balance covers, merged across senders by fee (highest
first; ties by transaction hash, so every node selects the same list from the same pool).
Because a sender's balance can only grow from other senders' transfers, the selected list is
valid in any interleaving, and in particular in the order returned.

Ethereum transactions (:class:`~sequencer_node.wire.eth.EthTransaction`) share the pool and
its rules: their sender is the recovered 20-byte address (a native sender is its 32-byte
public key; the two never collide), their hash the Ethereum one (``keccak256(raw)``), their
cost ``value + gas_limit * max_fee_per_gas`` and their fee for ordering and replacement the
most priority fee they can pay (``21000 * min(max_priority_fee, max_fee)``). Instead of the
Ed25519 check they are decoded and their sender recovered (:func:`~sequencer_node.wire.eth.
decode_checked`, cached); a malformed, unsupported or other-chain transaction is refused with
``INVALID_TRANSACTION`` or ``WRONG_CHAIN``.

The forced-inclusion queue lives in :mod:`sequencer_node.core.forced` and is re-exported here.
"""

from __future__ import annotations

import enum
import heapq
from dataclasses import dataclass
from typing import NamedTuple

from sequencer_node.core.fees import TxFeeView
from sequencer_node.core.forced import ForcedQueue, ForcedQueueError
from sequencer_node.core.ledger import Ledger, eth_fee_view, native_fee_view, verify_tx_signature
from sequencer_node.wire.codec import message_id
from sequencer_node.wire.crypto import address_of
from sequencer_node.wire.eth import (
    TRANSFER_GAS,
    EthTransaction,
    EthTx,
    decode_checked,
    decode_eth,
    eth_tx_hash,
)
from sequencer_node.wire.messages import Transaction

#: What the pool holds: native transfers and Ethereum transactions.
PoolTx = Transaction | EthTransaction


class RejectReason(enum.Enum):
    BAD_SIGNATURE = "bad_signature"
    NONCE_TOO_LOW = "nonce_too_low"
    NONCE_TOO_HIGH = "nonce_too_high"
    INSUFFICIENT_BALANCE = "insufficient_balance"
    POOL_FULL = "pool_full"
    DUPLICATE = "duplicate"
    SENDER_LIMIT = "sender_limit"
    FEE_TOO_LOW = "fee_too_low"
    REPLACEMENT_UNDERPRICED = "replacement_underpriced"
    #: An Ethereum transaction that is malformed or can never run here (data, creation, ...).
    INVALID_TRANSACTION = "invalid_transaction"
    #: An Ethereum transaction signed for another chain id.
    WRONG_CHAIN = "wrong_chain"


@dataclass(frozen=True, slots=True)
class AddResult:
    accepted: bool
    tx_hash: bytes
    reason: RejectReason | None
    detail: str


#: A replacement for a pooled (sender, nonce) must pay at least this much more, in percent.
REPLACEMENT_BUMP_PERCENT = 10


class _Entry(NamedTuple):
    """One pooled transaction with what the rules read of it, whatever its kind."""

    hash: bytes
    tx: PoolTx
    #: Native: the Ed25519 public key; Ethereum: the recovered address.
    sender: bytes
    nonce: int
    #: Most the transaction can take from the sender's balance.
    cost: int
    #: Its fee for ordering and replacement.
    fee: int


def _native_entry(tx: Transaction) -> _Entry:
    return _Entry(message_id(tx), tx, tx.sender, tx.nonce, tx.amount + tx.fee, tx.fee)


def _eth_entry(tx: EthTransaction, etx: EthTx) -> _Entry:
    tip = TRANSFER_GAS * min(etx.max_priority_fee_per_gas, etx.max_fee_per_gas)
    return _Entry(etx.hash, tx, etx.sender, etx.nonce, etx.max_cost, tip)


def _fee_view(tx: PoolTx) -> TxFeeView:
    if isinstance(tx, EthTransaction):
        return eth_fee_view(decode_eth(tx.raw))  # decoded at admission: a cache hit
    return native_fee_view(tx)


def account_of(sender: bytes) -> bytes:
    """The account address of a pool sender (a 32-byte public key or a 20-byte address)."""
    return sender if len(sender) == 20 else address_of(sender)


class Mempool:
    """Pending transactions, per sender by nonce. Bounded in total and per sender."""

    def __init__(
        self,
        *,
        chain_id: int,
        max_txs: int,
        max_per_sender: int,
        max_nonce_gap: int,
        min_fee: int = 0,
    ) -> None:
        if max_txs < 1 or max_per_sender < 1 or max_nonce_gap < 0 or min_fee < 0:
            raise ValueError(
                "mempool bounds: max_txs and max_per_sender must be >= 1, "
                "max_nonce_gap and min_fee >= 0"
            )
        self.chain_id = chain_id
        self.max_txs = max_txs
        self.max_per_sender = max_per_sender
        self.max_nonce_gap = max_nonce_gap
        self.min_fee = min_fee
        # sender (public key or Ethereum address) -> nonce -> entry
        self._by_sender: dict[bytes, dict[int, _Entry]] = {}
        self._by_hash: dict[bytes, _Entry] = {}

    def __len__(self) -> int:
        return len(self._by_hash)

    def __contains__(self, tx_hash: object) -> bool:
        return tx_hash in self._by_hash

    def get(self, tx_hash: bytes) -> PoolTx | None:
        entry = self._by_hash.get(tx_hash)
        return None if entry is None else entry.tx

    def sender_count(self, sender: bytes) -> int:
        return len(self._by_sender.get(sender, ()))

    def pending_nonce(self, sender: bytes, ledger: Ledger) -> int:
        """The nonce the sender's next new transaction should carry (account + pooled run)."""
        n = ledger.nonce(account_of(sender))
        pooled = self._by_sender.get(sender, {})
        while n in pooled:
            n += 1
        return n

    def pending_nonce_of(self, address: bytes, ledger: Ledger) -> int:
        """:meth:`pending_nonce` by account address (the RPC knows addresses, the pool senders).

        An Ethereum sender is its address; native senders are found by a scan of the pooled
        senders: bounded by ``max_txs``, and asked only by the RPC.
        """
        if address in self._by_sender:
            return self.pending_nonce(address, ledger)
        for sender in self._by_sender:
            if len(sender) != 20 and address_of(sender) == address:
                return self.pending_nonce(sender, ledger)
        return ledger.nonce(address)

    # --- admission ------------------------------------------------------------------------

    def add(self, tx: PoolTx, ledger: Ledger) -> AddResult:
        """Admit ``tx`` against ``ledger`` (the latest state the pool builds on), or say why not."""
        if isinstance(tx, EthTransaction):
            decoded = decode_checked(tx, self.chain_id)
            if isinstance(decoded, str):
                wrong_chain = decoded.startswith("invalid chain id")
                reason = RejectReason.WRONG_CHAIN if wrong_chain else (
                    RejectReason.INVALID_TRANSACTION)  # fmt: skip
                return AddResult(False, eth_tx_hash(tx), reason, decoded)
            entry = _eth_entry(tx, decoded)
        else:
            entry = _native_entry(tx)
        refusal = self._refusal(entry, ledger)
        if refusal is not None:
            return AddResult(False, entry.hash, refusal[0], refusal[1])
        replaced = self._by_sender.get(entry.sender, {}).get(entry.nonce)
        if replaced is not None:
            del self._by_hash[replaced.hash]
        self._by_sender.setdefault(entry.sender, {})[entry.nonce] = entry
        self._by_hash[entry.hash] = entry
        return AddResult(True, entry.hash, None, "replaced" if replaced is not None else "accepted")

    def _refusal(self, entry: _Entry, ledger: Ledger) -> tuple[RejectReason, str] | None:
        """Why ``entry`` may not enter the pool (checks in order of cost, signature last)."""
        if entry.hash in self._by_hash:
            return RejectReason.DUPLICATE, "transaction is already in the pool"
        if entry.fee < self.min_fee:
            return RejectReason.FEE_TOO_LOW, f"fee {entry.fee} is below the minimum {self.min_fee}"
        if ledger.fee_state() is not None:
            quote = ledger.fee_quote(_fee_view(entry.tx))
            if isinstance(quote, str):
                return RejectReason.FEE_TOO_LOW, quote
        account = account_of(entry.sender)
        account_nonce = ledger.nonce(account)
        refusal = self._nonce_refusal(entry, account_nonce) or self._room_refusal(entry)
        if refusal is not None:
            return refusal
        pooled = self._by_sender.get(entry.sender, {})
        balance = ledger.balance(account)
        committed = sum(e.cost for n, e in pooled.items() if account_nonce <= n < entry.nonce)
        cost = committed + entry.cost
        if cost > balance:
            what = "amount + fee" if isinstance(entry.tx, Transaction) else (
                "value + gas limit * max fee per gas")  # fmt: skip
            return (
                RejectReason.INSUFFICIENT_BALANCE,
                f"balance {balance} does not cover {cost} (this transaction's {what} "
                f"plus the sender's pending transactions before it)",
            )
        tx = entry.tx
        if isinstance(tx, Transaction) and not verify_tx_signature(tx, self.chain_id):
            return (
                RejectReason.BAD_SIGNATURE,
                f"the signature is not the sender's signature for chain {self.chain_id}",
            )
        return None

    def _nonce_refusal(self, entry: _Entry, account_nonce: int) -> tuple[RejectReason, str] | None:
        if entry.nonce < account_nonce:
            return (
                RejectReason.NONCE_TOO_LOW,
                f"nonce {entry.nonce} is already used; the account nonce is {account_nonce}",
            )
        if entry.nonce > account_nonce + self.max_nonce_gap:
            return (
                RejectReason.NONCE_TOO_HIGH,
                f"nonce {entry.nonce} is too far ahead of the account nonce {account_nonce} "
                f"(at most {self.max_nonce_gap} ahead); send the missing nonces first",
            )
        return None

    def _room_refusal(self, entry: _Entry) -> tuple[RejectReason, str] | None:
        """A replacement must pay enough more; a new transaction needs room in the pool."""
        pooled = self._by_sender.get(entry.sender, {})
        replaced = pooled.get(entry.nonce)
        if replaced is not None:
            old_fee, fee = replaced.fee, entry.fee
            if fee * 100 < old_fee * (100 + REPLACEMENT_BUMP_PERCENT) or fee <= old_fee:
                return (
                    RejectReason.REPLACEMENT_UNDERPRICED,
                    f"nonce {entry.nonce} is taken by a pooled transaction with fee {old_fee}; "
                    f"a replacement needs a fee at least {REPLACEMENT_BUMP_PERCENT}% higher",
                )
            return None
        if len(self._by_hash) >= self.max_txs:
            return (
                RejectReason.POOL_FULL,
                f"the pool holds its maximum of {self.max_txs} transactions; retry later",
            )
        if len(pooled) >= self.max_per_sender:
            return (
                RejectReason.SENDER_LIMIT,
                f"the sender already has {len(pooled)} pending transactions "
                f"(limit {self.max_per_sender}); wait for some to be included",
            )
        return None

    # --- selection ------------------------------------------------------------------------

    def _executable(self, sender: bytes, ledger: Ledger) -> list[_Entry]:
        """The sender's consecutive, affordable run starting at the account nonce."""
        pooled = self._by_sender[sender]
        addr = account_of(sender)
        n = ledger.nonce(addr)
        balance = ledger.balance(addr)
        run: list[_Entry] = []
        while n in pooled:
            entry = pooled[n]
            if entry.cost > balance:
                break
            balance -= entry.cost
            run.append(entry)
            n += 1
        return run

    def select(self, ledger: Ledger, max_txs: int) -> list[PoolTx]:
        """Up to ``max_txs`` executable transactions: per-sender nonce order, senders by fee."""
        if max_txs <= 0:
            return []
        # Heap of (-fee, tx hash, position in run, run); ties by hash make it deterministic.
        heap: list[tuple[int, bytes, int, list[_Entry]]] = []
        for sender in self._by_sender:
            run = self._executable(sender, ledger)
            if run:
                heap.append((-run[0].fee, run[0].hash, 0, run))
        heapq.heapify(heap)
        out: list[PoolTx] = []
        while heap and len(out) < max_txs:
            _, _, pos, run = heapq.heappop(heap)
            out.append(run[pos].tx)
            if pos + 1 < len(run):
                nxt = run[pos + 1]
                heapq.heappush(heap, (-nxt.fee, nxt.hash, pos + 1, run))
        return out

    def heads(self, ledger: Ledger, max_txs: int) -> list[tuple[bytes, PoolTx]]:
        """(hash, transaction) of the next executable transaction of each sender, up to
        ``max_txs`` in hash order: the ones that hold up all the others of their sender."""
        found = []
        for sender, pooled in self._by_sender.items():
            entry = pooled.get(ledger.nonce(account_of(sender)))
            if entry is not None and entry.cost <= ledger.balance(account_of(sender)):
                found.append((entry.hash, entry.tx))
        return sorted(found, key=lambda item: item[0])[: max(0, max_txs)]

    # --- pruning --------------------------------------------------------------------------

    def remove_committed(self, ledger: Ledger) -> None:
        """Drop transactions that ``ledger`` (the newest committed state) made stale.

        Removed: nonces below the account nonce (included, or replaced on chain), and the
        tail of a sender's run from the first transaction the balance no longer covers.
        Transactions above a nonce gap are kept: the gap may still be filled.
        """
        for sender in list(self._by_sender):
            pooled = self._by_sender[sender]
            addr = account_of(sender)
            n = ledger.nonce(addr)
            balance = ledger.balance(addr)
            drop = [k for k in pooled if k < n]
            spend = 0
            k = n
            while k in pooled:
                spend += pooled[k].cost
                if spend > balance:
                    drop.extend(j for j in pooled if j >= k)
                    break
                k += 1
            for j in drop:
                self._by_hash.pop(pooled.pop(j).hash, None)
            if not pooled:
                del self._by_sender[sender]

    def remove(self, tx_hash: bytes) -> bool:
        """Drop one transaction (e.g. found invalid at execution); True if it was pooled."""
        entry = self._by_hash.pop(tx_hash, None)
        if entry is None:
            return False
        pooled = self._by_sender[entry.sender]
        del pooled[entry.nonce]
        if not pooled:
            del self._by_sender[entry.sender]
        return True


__all__ = [
    "AddResult",
    "PoolTx",
    "ForcedQueue",
    "ForcedQueueError",
    "Mempool",
    "RejectReason",
]
