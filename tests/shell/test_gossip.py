"""Pure gossip pieces: seen-cache bounds, fan-out choice, ingress tx batching."""

from __future__ import annotations

import random

from sequencer_node.shell.gossip import SeenCache, TxBatcher, choose_targets
from sequencer_node.wire.messages import Transaction

PEERS = [bytes([i]) * 32 for i in range(10)]


def test_seen_cache_dedups_within_ttl_and_forgets_after():
    cache = SeenCache(max_entries=100, ttl_s=10)
    assert cache.add(b"a", 0)
    assert not cache.add(b"a", 5)
    assert cache.add(b"a", 10.5)  # expired, seen again as new


def test_seen_cache_is_bounded_by_count():
    cache = SeenCache(max_entries=3, ttl_s=1000)
    for k in (b"1", b"2", b"3", b"4"):
        assert cache.add(k, 0)
    assert len(cache) == 3
    assert b"1" not in cache
    assert b"4" in cache


def test_flood_targets_everyone_but_the_source():
    got = choose_targets(PEERS[:4], exclude=[PEERS[1]], fanout=None, rng=random.Random(1))
    assert got == [PEERS[0], PEERS[2], PEERS[3]]
    assert choose_targets(PEERS[:4], exclude=[], fanout=8, rng=random.Random(1)) == PEERS[:4]


def test_fanout_picks_a_seeded_random_subset():
    a = choose_targets(PEERS, exclude=[PEERS[0]], fanout=3, rng=random.Random(7))
    b = choose_targets(PEERS, exclude=[PEERS[0]], fanout=3, rng=random.Random(7))
    assert a == b
    assert len(a) == 3
    assert PEERS[0] not in a
    picks = {tuple(choose_targets(PEERS, fanout=3, rng=random.Random(s))) for s in range(20)}
    assert len(picks) > 1  # it is actually random across seeds


def _tx(n: int) -> Transaction:
    return Transaction(bytes(32), bytes(20), n, n, 1, bytes(64))


def test_tx_batcher_by_count_and_by_deadline():
    b = TxBatcher(max_txs=3, max_delay_s=0.005)
    assert b.deadline() is None
    assert b.add(_tx(1), 1.0) is None
    assert b.deadline() == 1.005
    assert b.add(_tx(2), 1.001) is None
    full = b.add(_tx(3), 1.002)
    assert full is not None
    assert [t.nonce for t in full.transactions] == [1, 2, 3]
    assert b.deadline() is None
    b.add(_tx(4), 2.0)
    assert b.poll(2.004) is None
    late = b.poll(2.005)
    assert late is not None
    assert [t.nonce for t in late.transactions] == [4]
    assert b.flush() is None
