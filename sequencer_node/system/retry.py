"""Retry pacing shared by every reconnecting loop (p2p dials, L1 polling and submissions)."""

from __future__ import annotations

import random


def backoff_delay(attempt: int, *, initial_s: float, max_s: float, rng: random.Random) -> float:
    """Delay before retry ``attempt`` (1-based): ``initial_s`` doubled per attempt, capped at
    ``max_s``, with "equal jitter" (half fixed, half drawn from the injected ``rng``) so that
    restarted processes do not retry in lockstep."""
    base: float = min(max_s, initial_s * 2.0 ** min(max(attempt, 1) - 1, 62))
    return base / 2 + rng.uniform(0, base / 2)


__all__ = ["backoff_delay"]
