"""The FastLZ length counter behind the op-fjord L1 fee (core/fastlz.py), against the vectors the
OP Stack clients test their ``FlzCompressLen`` with (op-geth's rollup_cost_test, Besu's
FastLzTest), and its bounds on any input."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sequencer_node.core.fastlz import fastlz_compressed_len

EMPTY_TX = bytes.fromhex("DD80808094095E7BAEA6A6C7C4C2DFEB977EFAC326AF552D878080808080")
CONTRACT_CALL_TX = bytes.fromhex(
    "02f901550a758302df1483be21b88304743f94f8"
    "0e51afb613d764fa61751affd3313c190a86bb870151bd62fd12adb8"
    "e41ef24f3f0000000000000000000000000000000000000000000000"
    "00000000000000006e000000000000000000000000af88d065e77c8c"
    "c2239327c5edb3a432268e5831000000000000000000000000000000"
    "000000000000000000000000000003c1e50000000000000000000000"
    "00000000000000000000000000000000000000000000000000000000"
    "000000000000000000000000000000000000000000000000a0000000"
    "00000000000000000000000000000000000000000000000000000000"
    "148c89ed219d02f1a5be012c689b4f5b731827bebe00000000000000"
    "0000000000c001a033fd89cb37c31b2cba46b6466e040c61fc9b2a36"
    "75a7f5f493ebd5ad77c497f8a07cdf65680e238392693019b4092f61"
    "0222e71b7cec06449cb922b93b6a12744e"
)


def test_known_vectors() -> None:
    assert fastlz_compressed_len(b"") == 0
    assert fastlz_compressed_len(b"\x01" * 1000) == 21
    assert fastlz_compressed_len(bytes(1000)) == 21
    assert fastlz_compressed_len(EMPTY_TX) == 31
    assert fastlz_compressed_len(CONTRACT_CALL_TX) == 202


def test_short_inputs_are_literals() -> None:
    # under 13 bytes nothing is matched: one literal run, a header byte + the bytes
    for n in range(1, 13):
        assert fastlz_compressed_len(b"\x07" * n) == n + 1
    assert fastlz_compressed_len(bytes(range(40))) == 40 + 2  # two runs (32 + 8)


@given(st.binary(max_size=3000))
def test_never_larger_than_the_literal_bound_and_deterministic(data: bytes) -> None:
    n = fastlz_compressed_len(data)
    assert 0 <= n <= len(data) + -(-len(data) // 32)
    assert n == fastlz_compressed_len(bytes(data))
