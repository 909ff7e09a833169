"""The canonical codec: round trips, strict refusals, and no crash on arbitrary bytes."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

import sequencer_node.wire.messages as m
from sequencer_node.wire import codec
from sequencer_node.wire.codec import CodecError, decode, encode
from sequencer_node.wire.da.attest import DataRootTuple
from tests import strategies

ALL = codec.registered_messages()


def _vote() -> m.Vote:
    return m.Vote(b"\x11" * 32, 5, 7, 1, b"\x22" * 32, b"\x33" * 64)


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
@given(data=st.data())
def test_round_trip_every_message_type(cls: type, data: st.DataObject) -> None:
    msg = data.draw(strategies.message(cls))
    raw = encode(msg)
    assert decode(raw) == msg
    assert decode(raw, cls) == msg
    assert encode(decode(raw)) == raw  # one message, one byte string


@given(st.binary(max_size=512))
def test_arbitrary_bytes_raise_only_codec_error(raw: bytes) -> None:
    with contextlib.suppress(CodecError):
        decode(raw)


@given(strategies.any_message(), st.data())
def test_mutated_encodings_raise_only_codec_error(msg: object, data: st.DataObject) -> None:
    raw = bytearray(encode(msg))
    i = data.draw(st.integers(0, len(raw) - 1))
    raw[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    for candidate in (bytes(raw), bytes(raw[:cut])):
        try:
            out: object = decode(candidate)
        except CodecError:
            continue
        assert encode(out) == candidate  # whatever decodes is canonical


def test_unknown_type_tag() -> None:
    with pytest.raises(CodecError, match="unknown message type 250"):
        decode(msgpack.packb([250, 1, []]))


def test_wrong_version() -> None:
    raw = msgpack.packb([codec.message_tag(m.Vote), 2, list(dataclasses.astuple(_vote()))])
    with pytest.raises(CodecError, match="unsupported version 2"):
        decode(raw)


def test_missing_and_extra_fields() -> None:
    body = list(dataclasses.astuple(_vote()))
    tag = codec.message_tag(m.Vote)
    with pytest.raises(CodecError, match="has 6 fields, got 5"):
        decode(msgpack.packb([tag, 1, body[:-1]], use_bin_type=True))
    with pytest.raises(CodecError, match="has 6 fields, got 7"):
        decode(msgpack.packb([tag, 1, [*body, 0]], use_bin_type=True))


def test_wrong_field_type_names_the_field() -> None:
    body = list(dataclasses.astuple(_vote()))
    body[1] = "five"
    with pytest.raises(CodecError, match=r"Vote\.height: expected an integer"):
        decode(msgpack.packb([codec.message_tag(m.Vote), 1, body], use_bin_type=True))


def test_bool_is_not_an_integer() -> None:
    body = list(dataclasses.astuple(_vote()))
    body[1] = True
    with pytest.raises(CodecError, match="expected an integer, got bool"):
        decode(msgpack.packb([codec.message_tag(m.Vote), 1, body], use_bin_type=True))


def test_wrong_fixed_length() -> None:
    body = list(dataclasses.astuple(_vote()))
    body[0] = b"\x11" * 31
    with pytest.raises(CodecError, match=r"block_hash: expected 32 bytes, got 31"):
        decode(msgpack.packb([codec.message_tag(m.Vote), 1, body], use_bin_type=True))


def test_integer_out_of_range() -> None:
    body = list(dataclasses.astuple(_vote()))
    body[1] = -1
    with pytest.raises(CodecError, match="outside the range of a u64"):
        decode(msgpack.packb([codec.message_tag(m.Vote), 1, body], use_bin_type=True))


def test_trailing_bytes() -> None:
    with pytest.raises(CodecError, match="trailing bytes"):
        decode(encode(_vote()) + b"\x00")


def test_oversized_container() -> None:
    qc = m.QuorumCertificate(b"\x00" * 32, 1, 1, 0, ())
    body = [qc.block_hash, 1, 1, 0, [[b"\x01" * 32, b"\x02" * 64]] * (m.MAX_SIGNERS + 1)]
    raw = msgpack.packb([codec.message_tag(m.QuorumCertificate), 1, body], use_bin_type=True)
    with pytest.raises(CodecError, match="at most 512 allowed"):
        decode(raw)


def test_oversized_message() -> None:
    with pytest.raises(CodecError, match="exceeds the limit"):
        decode(b"\x00" * 100, max_bytes=50)


def test_non_canonical_integer_encoding() -> None:
    canonical = encode(_vote())
    body = list(dataclasses.astuple(_vote()))
    # height 5 as a uint64 (0xcf + 8 bytes) instead of a positive fixint
    packed_body = b"".join(
        b"\xcf" + (5).to_bytes(8, "big") if i == 1 else msgpack.packb(v, use_bin_type=True)
        for i, v in enumerate(body)
    )
    raw = b"\x93" + msgpack.packb(codec.message_tag(m.Vote)) + b"\x01" + b"\x96" + packed_body
    assert raw != canonical
    with pytest.raises(CodecError, match="not the canonical encoding"):
        decode(raw)


def test_maps_floats_and_extensions_are_refused() -> None:
    tag = codec.message_tag(m.Vote)
    for bad in ({"a": 1}, 1.5, msgpack.ExtType(1, b"x")):
        body = list(dataclasses.astuple(_vote()))
        body[1] = bad
        with pytest.raises(CodecError):
            decode(msgpack.packb([tag, 1, body], use_bin_type=True))


def test_expected_type_mismatch() -> None:
    with pytest.raises(CodecError, match="expected Proposal, got Vote"):
        decode(encode(_vote()), m.Proposal)


def test_cross_field_rule_is_a_codec_error() -> None:
    header = m.BatchHeader(1, 1, 0, 1, 1, bytes(32), bytes(32), bytes(32), 0, 0, (), bytes(32), 0)
    body = list(codec._info(m.BatchHeader).to_body(header))
    body[3], body[4] = 9, 1  # first_height above last_height
    raw = msgpack.packb([codec.message_tag(m.BatchHeader), 1, body], use_bin_type=True)
    with pytest.raises(CodecError, match="first_height is above last_height"):
        decode(raw)


def test_tags_are_unique_and_registration_is_checked() -> None:
    with pytest.raises(TypeError, match="already used"):

        @codec.wire_message(codec.message_tag(m.Vote))
        @dataclasses.dataclass(frozen=True)
        class Clash:
            x: codec.U8

    with pytest.raises(TypeError, match="frozen dataclass"):

        @codec.wire_message(200)
        @dataclasses.dataclass
        class Mutable:
            x: codec.U8


# --- fast paths (issue 13): same bytes, same verdicts, one hash per transaction -------------

FLAT = [c for c in ALL if codec._info(c).fast is not None]


def _generic(cls: type, body: object) -> object:
    """The generic checks alone (what a flat message's fast checker must agree with)."""
    info = codec._info(cls)
    fast, info._fast = info._fast, None
    try:
        return info.from_body(body, cls.__name__)
    finally:
        info._fast = fast


def test_the_hot_messages_have_fast_checkers() -> None:
    assert {m.Transaction, m.Vote, m.Timeout, m.BlockHeader, m.Endorsement} <= set(FLAT)


_VALUES = st.one_of(
    st.integers(-(2**65), 2**65), st.binary(max_size=70), st.booleans(), st.none(),
    st.text(max_size=3), st.lists(st.integers(0, 3), max_size=2),
)  # fmt: skip


@pytest.mark.parametrize("cls", FLAT, ids=lambda c: c.__name__)
@given(data=st.data())
def test_a_fast_checker_accepts_exactly_what_the_generic_checks_accept(
    cls: type, data: st.DataObject
) -> None:
    msg = data.draw(strategies.message(cls))
    body = list(codec._info(cls).to_body(msg))
    for _ in range(data.draw(st.integers(0, 3))):  # replace a few fields with anything
        i = data.draw(st.integers(0, len(body) - 1))
        body[i] = data.draw(_VALUES)
    if data.draw(st.booleans()):
        body = body[: data.draw(st.integers(0, len(body)))]
    fast = codec._info(cls).fast
    assert fast is not None
    try:
        want = _generic(cls, body)
    except CodecError:
        assert fast(body) is None
    else:
        got = fast(body)
        assert got == want
        assert type(got) is type(want)


def test_a_transaction_is_hashed_once_and_its_id_is_not_on_the_wire() -> None:
    key = b"\x01" * 32
    tx = m.Transaction(key, b"\x02" * 20, 3, 4, 5, b"\x06" * 64)
    raw = encode(tx)
    first = codec.message_id(tx)
    assert first == hashlib.sha256(raw).digest()
    assert tx._id == first
    assert encode(tx) == raw
    decoded = decode(raw, m.Transaction)
    assert decoded._id == first  # decode fills it from the bytes it checked
    assert decoded == tx
    assert hash(decoded) == hash(m.Transaction(*dataclasses.astuple(tx)[:6]))
    fresh = dataclasses.replace(tx, amount=9)
    assert fresh._id is None
    assert codec.message_id(fresh) != first
    header = m.BlockHeader(1, 1, 0, bytes(32), 0, key, bytes(32), bytes(32), 0, 0)
    block = m.Block(m.Proposal(header, bytes(64)), (tx,), (), None, None)
    batch: m.Block = decode(encode(block))
    assert codec.message_id(batch.transactions[0]) == first


def test_integers_wider_than_64_bits_travel_as_minimal_big_endian_bytes() -> None:
    # msgpack has no integer past 2**64 - 1: a DA base fee above it could not be encoded
    big = DataRootTuple(1, 2, b"\x01" * 90, 2**100 + 7)
    raw = encode(big)
    assert decode(raw) == big
    _tag, _version, fields = msgpack.unpackb(raw)
    assert fields[3] == (2**100 + 7).to_bytes(13, "big")  # 13 bytes, no padding to 16
    assert decode(encode(dataclasses.replace(big, base_fee=0)), DataRootTuple).base_fee == 0


@pytest.mark.parametrize(
    ("wire", "why"),
    [(b"\x00\x05", "leading zero"), (b"\x01" * 17, "more than a u128"), (5, "big-endian bytes")],
)
def test_wide_integers_refuse_non_canonical_and_oversized_bytes(wire: object, why: str) -> None:
    with pytest.raises(CodecError, match=why):
        codec.BigUInt(128).check(wire, "base_fee")
