"""Stake-weighted leader schedules and the leader rule of a round.

Schedule of an L2 epoch: an ordered list of every staked sequencer (leader first, then the
back-ups), drawn by stake *without replacement* from ``seed``: at each position the next
sequencer is picked with probability proportional to its stake among those not yet placed.
Position 0 is therefore drawn exactly in proportion to stake. The draw is a pure function of
the stake table and the seed (SHA-256 of the seed and the position), so every node computes the
same schedule; the seed is finalized L1 data that no single sequencer controls (see
``docs/protocol.md``). Sequencers with zero stake (jailed, slashed, unbonded: the L1 snapshot
leaves them out) are never drawn.

Leader of a round (stable leader with failover): a proposal for round ``r`` extends a certified
block X (its ``justify``). If X is in the same epoch as the new block, the leader is X's
proposer shifted by the number of rounds that failed since X: ``order[(i(X) + r - X.round - 1)
mod n]``; in the happy path (``r == X.round + 1``) that is X's proposer itself, and each failed
round moves leadership one step down the back-up list (never back to a leader that just failed
until the list wraps around). The first block of an epoch starts at ``order[0]`` the same way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

_TAG = b"seqnet/v1/leader-order\x00"


def epoch_seed(snapshot_seed: bytes, epoch: int) -> bytes:
    """The seed of L2 ``epoch``'s schedule, from the L1 snapshot's randomness."""
    return hashlib.sha256(_TAG + snapshot_seed + epoch.to_bytes(8, "big")).digest()


def weighted_order(stakes: Mapping[bytes, int], seed: bytes) -> tuple[bytes, ...]:
    """Every key with positive stake, ordered by a stake-weighted draw without replacement."""
    remaining = sorted((pk, s) for pk, s in stakes.items() if s > 0)
    out: list[bytes] = []
    position = 0
    while remaining:
        total = sum(s for _, s in remaining)
        digest = hashlib.sha256(seed + position.to_bytes(4, "big")).digest()
        # 256 random bits modulo a stake total below 2**128: the bias is below 2**-128.
        ticket = int.from_bytes(digest, "big") % total
        for i, (pk, s) in enumerate(remaining):
            if ticket < s:
                out.append(pk)
                del remaining[i]
                break
            ticket -= s
        position += 1
    return tuple(out)


def leader_for(
    order: Sequence[bytes],
    round_: int,
    parent_round: int,
    parent_proposer: bytes | None,
) -> bytes:
    """The leader of ``round_`` for a block extending a certified parent.

    ``parent_proposer`` is None when the parent belongs to the previous epoch (or is genesis):
    the new epoch's schedule then starts at its position 0.
    """
    if not order:
        raise ValueError("empty leader schedule")
    if round_ <= parent_round:
        raise ValueError(f"round {round_} does not follow the parent's round {parent_round}")
    base = 0
    if parent_proposer is not None and parent_proposer in order:
        base = order.index(parent_proposer)
    return order[(base + round_ - parent_round - 1) % len(order)]
