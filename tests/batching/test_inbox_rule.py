"""The inbox rules as one pure function: each rule, and which refusals are final."""

from __future__ import annotations

import dataclasses

import pytest

from sequencer_node.batching.blobs import MAX_BLOB_DATA_SIZE
from sequencer_node.batching.inbox_rule import InboxView, Landing, Rule, check_batch
from sequencer_node.wire.messages import DA_BLOBS, DA_CALLDATA, ZERO_HASH, BatchHeader, batch_hash

CHAIN = 901


def header(**kw: object) -> BatchHeader:
    h = BatchHeader(
        CHAIN, 0, 0, 1, 4, b"\x01" * 32, ZERO_HASH, b"\x02" * 32, 0, DA_BLOBS, (b"\x03" * 32,),
        b"\x04" * 32, 1000,
    )  # fmt: skip
    return dataclasses.replace(h, **kw)  # type: ignore[arg-type]


VIEW = InboxView(
    l2_chain_id=CHAIN,
    first_height=1,
    last=None,
    forced_count=0,
    skipped_forced_at=None,
    snapshot_exists=True,
    unbonding_epochs=4,
    sequencing_window=64,
)
LAND = Landing(l1_block=10, epoch=0, fork="cancun", max_blobs_per_tx=6, max_blobs_per_block=6)


def rule_of(
    h: BatchHeader, view: InboxView = VIEW, land: Landing = LAND, **kw: object
) -> Rule | None:
    blobs = kw.pop("blob_count", len(h.blob_hashes))
    r = check_batch(h, view, land, blob_count=blobs, **kw)  # type: ignore[arg-type]
    return None if r is None else r.rule


def test_a_good_batch_passes() -> None:
    assert rule_of(header()) is None


def test_continuity_with_the_last_accepted_batch() -> None:
    """The finding: a batch for L2 blocks 2-4 when 1 is expected is refused, for good."""
    assert rule_of(header(first_height=2)) is Rule.CONTINUITY
    last = header()
    after = dataclasses.replace(VIEW, last=last)
    nxt = header(batch_number=1, parent_batch_hash=batch_hash(last), first_height=5, last_height=9)
    assert rule_of(nxt, after) is None
    assert rule_of(dataclasses.replace(nxt, first_height=4), after) is Rule.CONTINUITY
    assert rule_of(dataclasses.replace(nxt, parent_batch_hash=ZERO_HASH), after) is Rule.PARENT
    assert rule_of(header(), after) is Rule.NUMBER_TAKEN
    assert rule_of(dataclasses.replace(nxt, batch_number=2), after) is Rule.NUMBER_AHEAD
    assert rule_of(header(chain_id=7)) is Rule.CHAIN
    assert Rule.CONTINUITY.final
    assert Rule.NUMBER_TAKEN.final
    assert not Rule.NUMBER_AHEAD.final


def test_the_forks_blob_limits_and_sizes() -> None:
    """The finding: 7 blobs are refused under Cancun (6 per transaction)."""
    seven = header(blob_hashes=(b"\x03" * 32,) * 7)
    assert rule_of(seven) is Rule.BLOB_COUNT
    bpo2 = Landing(10, 0, "bpo2", max_blobs_per_tx=21, max_blobs_per_block=21)
    assert rule_of(seven, land=bpo2) is None
    assert rule_of(header(), blob_count=2) is Rule.BLOB_COUNT  # header and call disagree
    assert rule_of(header(data_bytes=MAX_BLOB_DATA_SIZE + 1)) is Rule.SIZE
    assert rule_of(header(blob_hashes=())) is Rule.DATA
    cd = header(da_kind=DA_CALLDATA, blob_hashes=(), data_hash=bytes(32), data_bytes=3)
    assert rule_of(cd) is None
    assert rule_of(cd, calldata=b"abc") is Rule.DATA
    assert Rule.BLOB_COUNT.final


@pytest.mark.parametrize(
    ("stake_epoch", "epoch", "want"),
    [(0, 0, None), (3, 4, Rule.EPOCH_NOT_FINAL), (3, 5, None), (3, 8, Rule.EPOCH_EXPIRED)],
)
def test_the_stake_epochs_age(stake_epoch: int, epoch: int, want: Rule | None) -> None:
    land = dataclasses.replace(LAND, epoch=epoch)
    assert rule_of(header(stake_epoch=stake_epoch), land=land) is want
    assert not Rule.EPOCH_NOT_FINAL.final
    assert Rule.EPOCH_EXPIRED.final


def test_the_forced_inclusion_rule_at_the_landing_block() -> None:
    """The finding: a batch that leaves out a forced entry is fine until the entry is a
    sequencing window old at the block that would include the batch, then refused for good."""
    view = dataclasses.replace(VIEW, forced_count=1, skipped_forced_at=20)
    assert rule_of(header(), view, dataclasses.replace(LAND, l1_block=83)) is None
    r = check_batch(header(), view, dataclasses.replace(LAND, l1_block=84), blob_count=1)
    assert r is not None
    assert r.rule is Rule.FORCED_OVERDUE
    assert r.final
    assert "skips forced transaction 0 queued at L1 block 20" in r.message
    assert rule_of(header(forced_index=2), view) is Rule.FORCED_INDEX  # not queued yet
    assert not Rule.FORCED_INDEX.final
