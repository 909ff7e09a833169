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

The forced-inclusion queue lives in :mod:`sequencer_node.core.forced` and is re-exported here.
"""

from __future__ import annotations

import enum
import heapq
from dataclasses import dataclass

from sequencer_node.core.forced import ForcedQueue, ForcedQueueError
from sequencer_node.core.ledger import Ledger, native_fee_view, verify_tx_signature
from sequencer_node.wire.codec import message_id
from sequencer_node.wire.crypto import address_of
from sequencer_node.wire.messages import Transaction


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


@dataclass(frozen=True, slots=True)
class AddResult:
    accepted: bool
    tx_hash: bytes
    reason: RejectReason | None
    detail: str


#: A replacement for a pooled (sender, nonce) must pay at least this much more, in percent.
REPLACEMENT_BUMP_PERCENT = 10


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
        # sender pubkey -> nonce -> (tx hash, tx)
        self._by_sender: dict[bytes, dict[int, tuple[bytes, Transaction]]] = {}
        self._by_hash: dict[bytes, Transaction] = {}

    def __len__(self) -> int:
        return len(self._by_hash)

    def __contains__(self, tx_hash: object) -> bool:
        return tx_hash in self._by_hash

    def get(self, tx_hash: bytes) -> Transaction | None:
        return self._by_hash.get(tx_hash)

    def sender_count(self, sender: bytes) -> int:
        return len(self._by_sender.get(sender, ()))

    def pending_nonce(self, sender: bytes, ledger: Ledger) -> int:
        """The nonce the sender's next new transaction should carry (account + pooled run)."""
        n = ledger.nonce(address_of(sender))
        pooled = self._by_sender.get(sender, {})
        while n in pooled:
            n += 1
        return n

    def pending_nonce_of(self, address: bytes, ledger: Ledger) -> int:
        """:meth:`pending_nonce` by account address (the RPC knows addresses, the pool senders).

        A scan of the pooled senders: bounded by ``max_txs``, and asked only by the RPC.
        """
        for sender in self._by_sender:
            if address_of(sender) == address:
                return self.pending_nonce(sender, ledger)
        return ledger.nonce(address)

    # --- admission ------------------------------------------------------------------------

    def add(self, tx: Transaction, ledger: Ledger) -> AddResult:
        """Admit ``tx`` against ``ledger`` (the latest state the pool builds on), or say why not."""
        h = message_id(tx)
        refusal = self._refusal(h, tx, ledger)
        if refusal is not None:
            return AddResult(False, h, refusal[0], refusal[1])
        replaced = self._by_sender.get(tx.sender, {}).get(tx.nonce)
        if replaced is not None:
            del self._by_hash[replaced[0]]
        self._by_sender.setdefault(tx.sender, {})[tx.nonce] = (h, tx)
        self._by_hash[h] = tx
        return AddResult(True, h, None, "replaced" if replaced is not None else "accepted")

    def _refusal(
        self, h: bytes, tx: Transaction, ledger: Ledger
    ) -> tuple[RejectReason, str] | None:
        """Why ``tx`` may not enter the pool (checks in order of cost, signature last)."""
        if h in self._by_hash:
            return RejectReason.DUPLICATE, "transaction is already in the pool"
        if tx.fee < self.min_fee:
            return RejectReason.FEE_TOO_LOW, f"fee {tx.fee} is below the minimum {self.min_fee}"
        if ledger.fee_state() is not None:
            quote = ledger.fee_quote(native_fee_view(tx))
            if isinstance(quote, str):
                return RejectReason.FEE_TOO_LOW, quote
        account_nonce = ledger.nonce(address_of(tx.sender))
        refusal = self._nonce_refusal(tx, account_nonce) or self._room_refusal(tx)
        if refusal is not None:
            return refusal
        pooled = self._by_sender.get(tx.sender, {})
        balance = ledger.balance(address_of(tx.sender))
        committed = sum(
            t.amount + t.fee for n, (_, t) in pooled.items() if n < tx.nonce and n >= account_nonce
        )
        cost = committed + tx.amount + tx.fee
        if cost > balance:
            return (
                RejectReason.INSUFFICIENT_BALANCE,
                f"balance {balance} does not cover {cost} (this transaction's amount + fee "
                f"plus the sender's pending transactions before it)",
            )
        if not verify_tx_signature(tx, self.chain_id):
            return (
                RejectReason.BAD_SIGNATURE,
                f"the signature is not the sender's signature for chain {self.chain_id}",
            )
        return None

    def _nonce_refusal(
        self, tx: Transaction, account_nonce: int
    ) -> tuple[RejectReason, str] | None:
        if tx.nonce < account_nonce:
            return (
                RejectReason.NONCE_TOO_LOW,
                f"nonce {tx.nonce} is already used; the account nonce is {account_nonce}",
            )
        if tx.nonce > account_nonce + self.max_nonce_gap:
            return (
                RejectReason.NONCE_TOO_HIGH,
                f"nonce {tx.nonce} is too far ahead of the account nonce {account_nonce} "
                f"(at most {self.max_nonce_gap} ahead); send the missing nonces first",
            )
        return None

    def _room_refusal(self, tx: Transaction) -> tuple[RejectReason, str] | None:
        """A replacement must pay enough more; a new transaction needs room in the pool."""
        pooled = self._by_sender.get(tx.sender, {})
        replaced = pooled.get(tx.nonce)
        if replaced is not None:
            old_fee = replaced[1].fee
            if tx.fee * 100 < old_fee * (100 + REPLACEMENT_BUMP_PERCENT) or tx.fee <= old_fee:
                return (
                    RejectReason.REPLACEMENT_UNDERPRICED,
                    f"nonce {tx.nonce} is taken by a pooled transaction with fee {old_fee}; "
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

    def _executable(self, sender: bytes, ledger: Ledger) -> list[tuple[bytes, Transaction]]:
        """The sender's consecutive, affordable run starting at the account nonce."""
        pooled = self._by_sender[sender]
        addr = address_of(sender)
        n = ledger.nonce(addr)
        balance = ledger.balance(addr)
        run: list[tuple[bytes, Transaction]] = []
        while n in pooled:
            h, tx = pooled[n]
            cost = tx.amount + tx.fee
            if cost > balance:
                break
            balance -= cost
            run.append((h, tx))
            n += 1
        return run

    def select(self, ledger: Ledger, max_txs: int) -> list[Transaction]:
        """Up to ``max_txs`` executable transactions: per-sender nonce order, senders by fee."""
        if max_txs <= 0:
            return []
        # Heap of (-fee, tx hash, position in run, run); ties by hash make it deterministic.
        heap: list[tuple[int, bytes, int, list[tuple[bytes, Transaction]]]] = []
        for sender in self._by_sender:
            run = self._executable(sender, ledger)
            if run:
                h, tx = run[0]
                heap.append((-tx.fee, h, 0, run))
        heapq.heapify(heap)
        out: list[Transaction] = []
        while heap and len(out) < max_txs:
            _, _, pos, run = heapq.heappop(heap)
            out.append(run[pos][1])
            if pos + 1 < len(run):
                h, tx = run[pos + 1]
                heapq.heappush(heap, (-tx.fee, h, pos + 1, run))
        return out

    # --- pruning --------------------------------------------------------------------------

    def remove_committed(self, ledger: Ledger) -> None:
        """Drop transactions that ``ledger`` (the newest committed state) made stale.

        Removed: nonces below the account nonce (included, or replaced on chain), and the
        tail of a sender's run from the first transaction the balance no longer covers.
        Transactions above a nonce gap are kept: the gap may still be filled.
        """
        for sender in list(self._by_sender):
            pooled = self._by_sender[sender]
            addr = address_of(sender)
            n = ledger.nonce(addr)
            balance = ledger.balance(addr)
            drop = [k for k in pooled if k < n]
            spend = 0
            k = n
            while k in pooled:
                spend += pooled[k][1].amount + pooled[k][1].fee
                if spend > balance:
                    drop.extend(j for j in pooled if j >= k)
                    break
                k += 1
            for j in drop:
                h, _ = pooled.pop(j)
                self._by_hash.pop(h, None)
            if not pooled:
                del self._by_sender[sender]

    def remove(self, tx_hash: bytes) -> bool:
        """Drop one transaction (e.g. found invalid at execution); True if it was pooled."""
        tx = self._by_hash.pop(tx_hash, None)
        if tx is None:
            return False
        pooled = self._by_sender[tx.sender]
        del pooled[tx.nonce]
        if not pooled:
            del self._by_sender[tx.sender]
        return True


__all__ = [
    "AddResult",
    "ForcedQueue",
    "ForcedQueueError",
    "Mempool",
    "RejectReason",
]
