"""L1 accounts: the native balance (wei) and call nonce of each 20-byte address, and the plain
``transfer`` call (a pure check, then an apply that cannot fail)."""

from __future__ import annotations

from dataclasses import dataclass

from l1_mock.chain.errors import CallFailed
from sequencer_node.wire.l1calls import GWEI, Transfer


@dataclass(slots=True)
class L1Account:
    """The balance (wei) and next call nonce of one L1 address."""

    balance: int = 0
    nonce: int = 0


class Accounts:
    """Every L1 address that ever held a balance or sent a call."""

    def __init__(self) -> None:
        self.by_address: dict[bytes, L1Account] = {}

    def balance(self, address: bytes) -> int:
        acc = self.by_address.get(address)
        return acc.balance if acc else 0

    def nonce(self, address: bytes) -> int:
        acc = self.by_address.get(address)
        return acc.nonce if acc else 0

    def account(self, address: bytes) -> L1Account:
        """The account of ``address``, created empty on first use."""
        acc = self.by_address.get(address)
        if acc is None:
            acc = self.by_address[address] = L1Account()
        return acc

    def credit(self, address: bytes, amount: int) -> None:
        self.account(address).balance += amount

    def debit(self, address: bytes, amount: int) -> None:
        """Take ``amount`` from ``address``; callers checked the balance first."""
        self.account(address).balance -= amount

    def total(self) -> int:
        return sum(a.balance for a in self.by_address.values())

    # --- transfer ------------------------------------------------------------------------

    def check_transfer(self, sender: bytes, p: Transfer) -> None:
        if p.amount_gwei * GWEI > self.balance(sender):
            raise CallFailed(f"transfer of {p.amount_gwei} gwei exceeds the balance")

    def apply_transfer(self, sender: bytes, p: Transfer) -> None:
        self.debit(sender, p.amount_gwei * GWEI)
        self.credit(p.to, p.amount_gwei * GWEI)


__all__ = ["Accounts", "L1Account"]
