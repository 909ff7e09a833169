"""Catch-up bookkeeping: which peers to ask for missing blocks, and how often.

A node that sees a QC or block it cannot place (unknown parent, unknown epoch table) asks the
sender for certified blocks above its committed head; a node that sees a peer time out in an
old round sends it what moved it on. Both are rate-limited per peer to one per block time, so
a flood of such messages costs one request or answer per peer and block time.
"""

from __future__ import annotations

from collections import OrderedDict

from sequencer_node.core.api import MAX_SYNC_BLOCKS, Source, SyncRequest

#: Peers remembered for asking in turn, and rate-limit entries kept per direction.
_PEERS = 64
_RATE_ENTRIES = 1_024


class CatchUp:
    """Known peers and per-peer rate limits for sync requests and help."""

    def __init__(self, own_key: bytes | None, interval_ms: int) -> None:
        self._own = own_key
        self._interval_ms = interval_ms
        self._peers: OrderedDict[bytes, None] = OrderedDict()
        self._asked_ms: dict[bytes, int] = {}
        self._helped_ms: dict[bytes, int] = {}
        self._turn = 0

    def note_peer(self, sender: Source) -> None:
        if isinstance(sender, bytes) and sender != self._own and sender not in self._peers:
            self._peers[sender] = None
            if len(self._peers) > _PEERS:
                self._peers.popitem(last=False)

    def next_peer(self) -> bytes | None:
        """The known peers, one after the other (None if none is known)."""
        if not self._peers:
            return None
        self._turn += 1
        peers = list(self._peers)
        return peers[self._turn % len(peers)]

    def request(
        self, peer: Source, committed_height: int, to_height: int, now_ms: int
    ) -> SyncRequest | None:
        """A request for the blocks above ``committed_height`` (up to ``to_height``) to send
        to ``peer``, unless it is not a peer or was asked less than an interval ago."""
        if not isinstance(peer, bytes) or peer == self._own:
            return None
        if not self._due(self._asked_ms, peer, now_ms):
            return None
        start = committed_height + 1
        return SyncRequest(start, max(start, min(to_height, start + MAX_SYNC_BLOCKS - 1)))

    def may_help(self, peer: bytes, now_ms: int) -> bool:
        """Whether to send ``peer`` (stuck in an old round) what moved this node on."""
        return self._due(self._helped_ms, peer, now_ms)

    def _due(self, last_ms: dict[bytes, int], peer: bytes, now_ms: int) -> bool:
        last = last_ms.get(peer)
        if last is not None and now_ms - last < self._interval_ms:
            return False
        if len(last_ms) > _RATE_ENTRIES:
            last_ms.clear()
        last_ms[peer] = now_ms
        return True


__all__ = ["CatchUp"]
