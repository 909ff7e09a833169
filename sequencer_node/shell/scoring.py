"""Pure peer scoring: what each kind of bad input costs, flood limits, disconnects and bans.

Theory of operation
-------------------
Every peer identity has a score that starts at 0 and recovers towards 0 at
``recovery_per_s`` points per second. Each :class:`Offense` subtracts its cost. When the score
drops to ``disconnect_below`` or lower, the verdict is :attr:`Verdict.BAN`: the shell closes the
connection and refuses the identity until ``ban_s`` seconds have passed; after the ban the
score restarts at 0. Floods are limited by two token buckets per peer (``rate_per_s``
messages, ``burst`` deep; ``bytes_per_s`` bytes, ``bytes_burst`` deep); a message over either
limit is dropped and costs :attr:`Offense.FLOOD`.

Link failures are not misbehaviour on their own. The outer framing (the plaintext length) and
the AEAD tag of an established session can be broken by anyone on the path: a lost, duplicated,
reordered or altered frame makes every later frame fail to decrypt. So
:data:`LINK_FAILURES` (oversized, zero-length or truncated frames, decryption failures) close
the connection (the peer redials with a fresh handshake) and cost only
:data:`LINK_FAILURE_COST`: with the score recovering one point per second, a link that breaks
once every two seconds or less often is never banned, and only a peer that keeps breaking its
sessions far faster than a lossy path would (more than one per two seconds for a minute and
more) ends up banned. What is inside a frame that decrypted (the flag, the message) is the
peer's own doing and keeps its full cost.

This module does no I/O and reads no clock: ``now`` (seconds, monotonic) is an argument, so
the same calls give the same verdicts. Memory is bounded: at most ``max_tracked`` identities
are kept (least recently seen are forgotten first, banned ones last).
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from dataclasses import dataclass, field


class Offense(enum.Enum):
    """A kind of bad input; the values are the metric labels."""

    OVERSIZED_FRAME = "oversized_frame"
    TRUNCATED_FRAME = "truncated_frame"
    MALFORMED_FRAME = "malformed_frame"  # zero length
    DECRYPT_FAILURE = "decrypt_failure"  # AEAD failure: tampering, loss, replay or reordering
    MALFORMED_MESSAGE = "malformed_message"  # frame decrypted but its flag or decoding failed
    UNEXPECTED_MESSAGE = "unexpected_message"  # e.g. a handshake message after the handshake
    HANDSHAKE = "handshake"
    INVALID_SIGNATURE = "invalid_signature"
    INVALID_MESSAGE = "invalid_message"  # well formed, signed, but wrong (core's judgement)
    OUT_OF_RANGE = "out_of_range"  # far outside the current height/round
    FLOOD = "flood"
    TIMEOUT = "timeout"  # handshake deadline, slowloris, idle


#: Failures of the link rather than of the peer (see the module docstring): anyone on the path
#: can cause them. They always close the stream (it is desynchronised).
LINK_FAILURES = frozenset(
    {
        Offense.OVERSIZED_FRAME,
        Offense.TRUNCATED_FRAME,
        Offense.MALFORMED_FRAME,
        Offense.DECRYPT_FAILURE,
    }
)
#: What one link failure costs: below the recovery of two seconds, so an occasional one never
#: adds up; a peer breaking its sessions twice a second is banned in under two minutes.
LINK_FAILURE_COST = 2.0

#: Default cost of each offense.
DEFAULT_COSTS: dict[Offense, float] = {
    **dict.fromkeys(LINK_FAILURES, LINK_FAILURE_COST),
    Offense.MALFORMED_MESSAGE: 50.0,
    Offense.UNEXPECTED_MESSAGE: 50.0,
    Offense.HANDSHAKE: 25.0,
    Offense.INVALID_SIGNATURE: 40.0,
    Offense.INVALID_MESSAGE: 20.0,
    Offense.OUT_OF_RANGE: 5.0,
    Offense.FLOOD: 1.0,
    Offense.TIMEOUT: 10.0,
}


class Verdict(enum.Enum):
    OK = "ok"
    BAN = "ban"  # disconnect now and refuse the identity until the ban ends


@dataclass(frozen=True, slots=True)
class ScoringConfig:
    disconnect_below: float = -100.0
    recovery_per_s: float = 1.0
    ban_s: float = 60.0
    #: Messages per second a peer may send on average, and the bucket depth for bursts.
    rate_per_s: float = 5_000.0
    burst: float = 10_000.0
    #: Bytes per second on average, and the depth of the byte bucket (at least one max frame).
    bytes_per_s: float = 64 * 1024 * 1024
    bytes_burst: float = 128 * 1024 * 1024
    max_tracked: int = 1024
    costs: dict[Offense, float] = field(default_factory=lambda: dict(DEFAULT_COSTS))


@dataclass(slots=True)
class _Entry:
    score: float
    updated: float
    tokens: float
    byte_tokens: float
    banned_until: float | None = None
    offenses: int = 0


@dataclass(frozen=True, slots=True)
class PeerScoreStatus:
    score: float
    banned_until: float | None
    offenses: int


class ScoreBoard:
    """Scores, token buckets and bans of peer identities (public keys)."""

    def __init__(self, config: ScoringConfig | None = None) -> None:
        self.config = config or ScoringConfig()
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()
        self.offense_counts: dict[Offense, int] = dict.fromkeys(Offense, 0)

    def _entry(self, peer: bytes, now: float) -> _Entry:
        e = self._entries.get(peer)
        if e is None:
            e = _Entry(
                score=0.0,
                updated=now,
                tokens=self.config.burst,
                byte_tokens=self.config.bytes_burst,
            )
            self._entries[peer] = e
            self._evict()
        else:
            self._entries.move_to_end(peer)
            self._refresh(e, now)
        return e

    def _refresh(self, e: _Entry, now: float) -> None:
        elapsed = max(0.0, now - e.updated)
        e.updated = max(e.updated, now)
        if e.banned_until is not None and now >= e.banned_until:
            e.banned_until = None
            e.score = 0.0
        e.score = min(0.0, e.score + elapsed * self.config.recovery_per_s)
        e.tokens = min(self.config.burst, e.tokens + elapsed * self.config.rate_per_s)
        e.byte_tokens = min(
            self.config.bytes_burst, e.byte_tokens + elapsed * self.config.bytes_per_s
        )

    def _evict(self) -> None:
        while len(self._entries) > self.config.max_tracked:
            victim = next(
                (p for p, e in self._entries.items() if e.banned_until is None),
                next(iter(self._entries)),
            )
            del self._entries[victim]

    def penalize(self, peer: bytes, offense: Offense, now: float) -> Verdict:
        """Charge ``peer`` for ``offense``; BAN if its score fell to the threshold."""
        e = self._entry(peer, now)
        self.offense_counts[offense] += 1
        e.offenses += 1
        if e.banned_until is not None:
            return Verdict.BAN
        e.score -= self.config.costs.get(offense, 0.0)
        if e.score <= self.config.disconnect_below:
            e.banned_until = now + self.config.ban_s
            return Verdict.BAN
        return Verdict.OK

    def allow_message(self, peer: bytes, now: float, size: int = 0) -> bool:
        """Take one message token and ``size`` byte tokens from ``peer``'s buckets; False
        (drop the message and charge FLOOD) if either bucket is short."""
        e = self._entry(peer, now)
        if e.tokens >= 1.0 and e.byte_tokens >= size:
            e.tokens -= 1.0
            e.byte_tokens -= size
            return True
        return False

    def is_banned(self, peer: bytes, now: float) -> bool:
        e = self._entries.get(peer)
        if e is None:
            return False
        self._refresh(e, now)
        return e.banned_until is not None

    def status(self, peer: bytes, now: float) -> PeerScoreStatus:
        e = self._entries.get(peer)
        if e is None:
            return PeerScoreStatus(0.0, None, 0)
        self._refresh(e, now)
        return PeerScoreStatus(e.score, e.banned_until, e.offenses)


class RequestBudget:
    """Per-peer token buckets for one kind of request (e.g. catch-up): ``rate_per_s`` on
    average, ``burst`` at once. Pure (``now`` is an argument); at most ``max_tracked`` peers
    are remembered (the least recently seen are forgotten, which only refills their bucket)."""

    def __init__(self, rate_per_s: float, burst: float, max_tracked: int = 1024) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.max_tracked = max_tracked
        self._buckets: OrderedDict[bytes, tuple[float, float]] = OrderedDict()  # tokens, at

    def take(self, peer: bytes, now: float, cost: float = 1.0) -> bool:
        """Spend ``cost`` tokens of ``peer``'s bucket; False (refuse the request) if short."""
        tokens, at = self._buckets.pop(peer, (self.burst, now))
        tokens = min(self.burst, tokens + max(0.0, now - at) * self.rate_per_s)
        ok = tokens >= cost
        self._buckets[peer] = (tokens - cost if ok else tokens, max(at, now))
        while len(self._buckets) > self.max_tracked:
            self._buckets.popitem(last=False)
        return ok
