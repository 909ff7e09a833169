"""Blob fee market against vectors computed from the EIPs' own pseudo-code, per fork."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from l1_mock.chain import fees
from sequencer_node.wire.blobs import BLOB_SCHEDULE, GAS_PER_BLOB
from tests.l1.helpers import (
    OWNERS,
    batch_header,
    batch_params,
    fill_block,
    mine,
    new_chain,
    submit,
)


# --- reference: a literal transcription of EIP-4844 / EIP-7918 pseudo-code -------------------
def ref_fake_exponential(factor: int, numerator: int, denominator: int) -> int:
    i = 1
    output = 0
    numerator_accum = factor * denominator
    while numerator_accum > 0:
        output += numerator_accum
        numerator_accum = (numerator_accum * numerator) // (denominator * i)
        i += 1
    return output // denominator


def ref_excess(
    parent_excess: int,
    parent_used: int,
    parent_base_fee: int,
    target: int,
    mx: int,
    fraction: int,
    osaka: bool,
) -> int:
    target_gas = target * 131072
    if parent_excess + parent_used < target_gas:
        return 0
    if osaka and 2**13 * parent_base_fee > 131072 * ref_fake_exponential(
        1, parent_excess, fraction
    ):
        return parent_excess + parent_used * (mx - target) // mx
    return parent_excess + parent_used - target_gas


def test_known_fake_exponential_vectors() -> None:
    for f in (3338477, 5007716, 8346193, 11684671):
        assert fees.fake_exponential(1, 0, f) == 1
        assert fees.fake_exponential(1, f, f) == 2
        assert fees.fake_exponential(1, 10 * f, f) == 22026
        assert fees.fake_exponential(1, 20 * f, f) == 485165195
    assert fees.fake_exponential(1, 10**8, 3338477) == 10203769476395
    assert fees.fake_exponential(1, 10**8, 5007716) == 470442149


@pytest.mark.parametrize("fork", list(BLOB_SCHEDULE))
@pytest.mark.parametrize("base_fee", [1, 10**9, 10**11])
def test_long_runs_of_full_then_empty_blocks(fork: str, base_fee: int) -> None:
    p = BLOB_SCHEDULE[fork]
    pattern = [p.max] * 300 + [0] * 300 + [p.target] * 20 + [p.target + 1, p.target - 1] * 50
    excess = used = 0
    ref_e = ref_u = 0
    for blobs in pattern:
        excess = fees.calc_excess_blob_gas(excess, used, base_fee, p)
        ref_e = ref_excess(
            ref_e, ref_u, base_fee, p.target, p.max, p.update_fraction, p.reserve_price
        )
        assert excess == ref_e
        assert fees.blob_base_fee(excess, p) == ref_fake_exponential(1, ref_e, p.update_fraction)
        used = ref_u = blobs * GAS_PER_BLOB


def test_cancun_176_full_blocks_reach_one_gwei() -> None:
    p = BLOB_SCHEDULE["cancun"]
    excess = 0
    n = 0
    while fees.blob_base_fee(excess, p) < 10**9:
        excess = fees.calc_excess_blob_gas(excess, p.max_blob_gas, 1, p)
        n += 1
    # after n iterations the excess counts n full parent blocks
    assert n == 176


def test_osaka_reserve_price_keeps_fee_from_collapsing() -> None:
    p, q = BLOB_SCHEDULE["osaka"], BLOB_SCHEDULE["prague"]
    # With a high execution base fee, Osaka's excess grows by used*(max-target)/max even below
    # where Prague would subtract the target.
    e_osaka = fees.calc_excess_blob_gas(0, 6 * GAS_PER_BLOB, 10**11, p)
    e_prague = fees.calc_excess_blob_gas(0, 6 * GAS_PER_BLOB, 10**11, q)
    assert e_prague == 0
    assert e_osaka == 6 * GAS_PER_BLOB * 3 // 9


def test_calldata_pricing_and_prague_floor() -> None:
    data = bytes(10) + b"\x01" * 10
    assert fees.calldata_gas(data, BLOB_SCHEDULE["cancun"]) == 21000 + 4 * 10 + 16 * 10
    assert fees.calldata_gas(data, BLOB_SCHEDULE["prague"]) == 21000 + 10 * (10 + 40)
    # enough execution gas lifts the standard cost above the floor
    assert fees.calldata_gas(data, BLOB_SCHEDULE["prague"], 10_000) == 21000 + 4 * 50 + 10_000


def test_chain_headers_follow_the_fork_schedule_across_a_boundary() -> None:
    chain = new_chain(forks=((0, "cancun"), (6, "prague")), base_fee_per_gas=10**9)
    sched = [chain.config.fork_at(n) for n in range(12)]
    # fill blocks 1..10 with one 1-blob batch each, by different senders each round
    for _n in range(1, 11):
        h = batch_header(chain, blobs=1)
        submit(chain, OWNERS[0], batch_params(h))
        mine(chain)
    prev = chain.blocks[0].header
    for b in chain.blocks[1:]:
        p = sched[b.header.number]
        assert b.header.fork == p.fork
        want = ref_excess(
            prev.excess_blob_gas,
            prev.blob_gas_used,
            prev.base_fee_per_gas,
            p.target,
            p.max,
            p.update_fraction,
            p.reserve_price,
        )
        assert b.header.excess_blob_gas == want
        assert b.header.blob_gas_used == GAS_PER_BLOB
        assert b.receipts[0].status == 1, b.receipts[0].reason
        prev = b.header
    assert chain.blocks[5].header.fork == "cancun"
    assert chain.blocks[6].header.fork == "prague"


@given(
    factor=st.integers(1, 10**6),
    numerator=st.integers(0, 50 * 11684671),
    denominator=st.sampled_from([3338477, 5007716, 8346193, 11684671]),
)
def test_fake_exponential_matches_the_eip(factor: int, numerator: int, denominator: int) -> None:
    assert fees.fake_exponential(factor, numerator, denominator) == ref_fake_exponential(
        factor, numerator, denominator
    )


def test_default_retention_covers_the_fault_proof_window() -> None:
    from l1_mock.chain import check_retention
    from l1_mock.chain.config import default_retention_epochs

    assert default_retention_epochs(12, 7 * 86400) == 4096
    assert default_retention_epochs(2, 7 * 86400) == 9450
    check_retention(9450, 2, 7 * 86400)
    with pytest.raises(ValueError, match="shorter than the fault-proof window"):
        check_retention(9449, 2, 7 * 86400)


@pytest.mark.parametrize(
    ("old", "new"), [("cancun", "prague"), ("prague", "osaka"), ("osaka", "bpo1"), ("bpo1", "bpo2")]
)
def test_excess_blob_gas_across_each_fork_boundary(old: str, new: str) -> None:
    """Full blocks, then empty ones, across the boundary; every header matches the EIP."""
    chain = new_chain(forks=((0, old), (6, new)), base_fee_per_gas=10**9)
    for n in range(1, 15):
        if n <= 9:
            fill_block(chain, OWNERS[0], chain.blob_params().max)
        mine(chain)
    prev = chain.blocks[0].header
    grew = False
    for b in chain.blocks[1:]:
        p = chain.config.fork_at(b.header.number)
        assert b.header.fork == p.fork
        want = ref_excess(
            prev.excess_blob_gas,
            prev.blob_gas_used,
            prev.base_fee_per_gas,
            p.target,
            p.max,
            p.update_fraction,
            p.reserve_price,
        )
        assert b.header.excess_blob_gas == want
        assert b.header.blob_gas_used == (p.max_blob_gas if b.header.number <= 9 else 0)
        assert all(r.status == 1 for r in b.receipts)
        grew = grew or want > 0
        prev = b.header
    assert grew
