"""Pure peer scoring: costs, thresholds, bans, recovery, token buckets, isolation of peers."""

from __future__ import annotations

import pytest

from sequencer_node.shell.scoring import (
    DEFAULT_COSTS,
    LINK_FAILURES,
    Offense,
    ScoreBoard,
    ScoringConfig,
    Verdict,
)

P, Q = b"p" * 32, b"q" * 32


@pytest.mark.parametrize("offense", list(Offense))
def test_every_offense_costs_the_sender_only(offense):
    board = ScoreBoard()
    board.penalize(P, offense, now=0.0)
    assert board.status(P, 0.0).score == -DEFAULT_COSTS[offense]
    assert board.status(Q, 0.0).score == 0.0
    assert board.offense_counts[offense] == 1


def test_threshold_bans_then_the_ban_expires():
    board = ScoreBoard(ScoringConfig(disconnect_below=-100, ban_s=60, recovery_per_s=0))
    assert board.penalize(P, Offense.INVALID_SIGNATURE, 0) is Verdict.OK  # -40
    assert board.penalize(P, Offense.INVALID_SIGNATURE, 1) is Verdict.OK  # -80
    assert board.penalize(P, Offense.INVALID_SIGNATURE, 2) is Verdict.BAN  # -120
    assert board.is_banned(P, 30)
    assert not board.is_banned(Q, 30)
    assert board.penalize(P, Offense.OUT_OF_RANGE, 40) is Verdict.BAN  # still banned
    assert not board.is_banned(P, 62.01)
    assert board.status(P, 62.01).score == 0.0  # a fresh start after the ban


def test_score_recovers_over_time_but_never_above_zero():
    board = ScoreBoard(ScoringConfig(recovery_per_s=2.0))
    board.penalize(P, Offense.INVALID_MESSAGE, 0)  # -20
    assert board.status(P, 5).score == pytest.approx(-10)
    assert board.status(P, 100).score == 0.0


def test_token_bucket_limits_floods_and_refills():
    board = ScoreBoard(ScoringConfig(rate_per_s=10, burst=5))
    assert [board.allow_message(P, 0.0) for _ in range(6)] == [True] * 5 + [False]
    assert board.allow_message(Q, 0.0)  # another peer has its own bucket
    assert board.allow_message(P, 0.1)  # 0.1 s at 10/s refills one token
    assert not board.allow_message(P, 0.1)


def test_tracking_is_bounded_and_keeps_bans():
    board = ScoreBoard(ScoringConfig(max_tracked=3, disconnect_below=-10))
    board.penalize(P, Offense.MALFORMED_MESSAGE, 0)  # banned
    for i in range(10):
        board.penalize(bytes([i]) * 32, Offense.OUT_OF_RANGE, 0)
    assert len(board._entries) == 3
    assert board.is_banned(P, 1)


def test_byte_bucket_limits_big_messages():
    board = ScoreBoard(ScoringConfig(bytes_per_s=1000, bytes_burst=5000))
    assert board.allow_message(P, 0.0, size=4000)
    assert not board.allow_message(P, 0.0, size=2000)  # 1000 bytes left
    assert board.allow_message(P, 0.0, size=1000)
    assert board.allow_message(P, 2.0, size=2000)  # refilled 2000 bytes in 2 s


@pytest.mark.parametrize("offense", [o for o in Offense if o in LINK_FAILURES])
def test_a_broken_link_never_bans_an_honest_peer(offense):
    """Issue 12: one lost or duplicated frame (a decryption failure on the session) used to ban
    the peer for 60 s. A link failure every two seconds, for ten minutes, bans nobody."""
    board = ScoreBoard()
    assert board.penalize(P, offense, 0.0) is Verdict.OK
    for i in range(1, 300):
        assert board.penalize(P, offense, 2.0 * i) is Verdict.OK
    assert not board.is_banned(P, 600.0)


def test_a_peer_breaking_its_sessions_far_faster_is_banned():
    """A peer whose sessions fail several times a second (far beyond any lossy path) still ends
    up banned, within two minutes."""
    board = ScoreBoard()
    verdicts = [board.penalize(P, Offense.DECRYPT_FAILURE, 0.25 * i) for i in range(480)]
    assert Verdict.BAN in verdicts
    assert verdicts.index(Verdict.BAN) * 0.25 < 120


def test_what_decrypted_keeps_its_full_cost():
    assert DEFAULT_COSTS[Offense.MALFORMED_MESSAGE] >= 50
    board = ScoreBoard()
    board.penalize(P, Offense.MALFORMED_MESSAGE, 0)
    assert board.penalize(P, Offense.MALFORMED_MESSAGE, 0) is Verdict.BAN
