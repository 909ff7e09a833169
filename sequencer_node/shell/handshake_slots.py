"""Admission of inbound handshakes: who may hold one of the few pending-handshake slots.

Theory of operation
-------------------
A connection that has not finished its handshake costs a task, a socket and a deadline
(``handshake_timeout_s``) but proves nothing yet, so anyone who can open sockets could hold
every slot and keep real validators out (a restarting node could not rejoin). The rules:

* at most ``max_pending`` handshakes in total, ``max_per_host`` from one remote address and
  ``max_per_key`` per identity key (a key is known once the peer presents it);
* a new connection from an address that already holds ``max_per_host`` slots takes the slot of
  that address's oldest pending handshake (so one address can only churn its own slots);
* when every slot is taken, the oldest *stranger* (an address that is not a known validator's
  and that has not presented an allowed key) is evicted for the newcomer; a stranger is refused
  only when every pending handshake is a known validator's, and a known validator then evicts
  the oldest of them.

Pure bookkeeping: no sockets and no clock (``now`` is an argument); the peer manager cancels
the handshakes this module names as evicted.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass


@dataclass(slots=True, eq=False)
class PendingHandshake:
    """One inbound connection in its handshake."""

    host: str
    started: float
    #: From a known validator's address, or the peer presented an allowed key.
    known: bool
    key: bytes | None = None


@dataclass(frozen=True, slots=True)
class Admission:
    """The answer to a new connection: its slot (None: refused) and the handshakes it
    evicts (the caller cancels them)."""

    slot: PendingHandshake | None
    evict: tuple[PendingHandshake, ...]


class HandshakeSlots:
    """See the module docstring."""

    def __init__(self, max_pending: int, max_per_host: int, max_per_key: int) -> None:
        self.max_pending = max(1, max_pending)
        self.max_per_host = max(1, max_per_host)
        self.max_per_key = max(1, max_per_key)
        self._pending: list[PendingHandshake] = []  # oldest first
        self._hosts: Counter[str] = Counter()
        self._keys: Counter[bytes] = Counter()

    def __len__(self) -> int:
        return len(self._pending)

    def admit(self, host: str, *, known: bool, now: float) -> Admission:
        """Give a new connection from ``host`` a slot, evicting others if the rules say so."""
        evict: list[PendingHandshake] = []
        if self._hosts[host] >= self.max_per_host:
            evict.append(next(p for p in self._pending if p.host == host))
        elif len(self._pending) >= self.max_pending:
            victim = next((p for p in self._pending if not p.known), None)
            if victim is None and known:
                victim = self._pending[0]
            if victim is None:
                return Admission(None, ())
            evict.append(victim)
        for p in evict:
            self.release(p)
        slot = PendingHandshake(host, now, known)
        self._pending.append(slot)
        self._hosts[host] += 1
        return Admission(slot, tuple(evict))

    def present_key(self, slot: PendingHandshake, key: bytes, *, allowed: bool) -> bool:
        """The peer of ``slot`` proved ``key``; False if that key already holds
        ``max_per_key`` pending handshakes (refuse this one)."""
        if slot not in self._pending:
            return False  # evicted meanwhile
        if slot.key is None:
            if self._keys[key] >= self.max_per_key:
                return False
            slot.key = key
            self._keys[key] += 1
        slot.known = slot.known or allowed
        return True

    def release(self, slot: PendingHandshake) -> None:
        """The handshake ended (done, failed or evicted); idempotent."""
        if slot not in self._pending:
            return
        self._pending.remove(slot)
        self._hosts[slot.host] -= 1
        if self._hosts[slot.host] <= 0:
            del self._hosts[slot.host]
        if slot.key is not None:
            self._keys[slot.key] -= 1
            if self._keys[slot.key] <= 0:
                del self._keys[slot.key]


__all__ = ["Admission", "HandshakeSlots", "PendingHandshake"]
