"""OP-Stack blob packing: round trips, field-element validity, strict decoding."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sequencer_node.batching.blobs import (
    MAX_BLOB_DATA_SIZE,
    BlobDecodeError,
    blobs_needed,
    decode_blob,
    encode_blob,
    pack_blobs,
    unpack_blobs,
)
from sequencer_node.wire.blobs import BYTES_PER_BLOB, check_blob_shape

M = MAX_BLOB_DATA_SIZE


def op_encode_reference(data: bytes) -> bytes:
    """The research sheet's port of op-service/eth/blob.go FromData (an independent oracle)."""
    b = bytearray(131072)
    r = w = 0

    def read1() -> int:
        nonlocal r
        if r >= len(data):
            return 0
        r += 1
        return data[r - 1]

    def read31() -> bytes:
        nonlocal r
        c = data[r : r + 31]
        r += len(c)
        return c + bytes(31 - len(c))

    def put(top: int, buf: bytes) -> None:
        nonlocal w
        b[w] = top
        b[w + 1 : w + 32] = buf
        w += 32

    for rnd in range(1024):
        if r >= len(data):
            break
        if rnd == 0:
            head = b"\x00" + len(data).to_bytes(3, "big") + data[:27]
            r = min(27, len(data))
            buf = head + bytes(31 - len(head))
        else:
            buf = read31()
        x = read1()
        put(x & 0x3F, buf)
        buf = read31()
        y = read1()
        put((y & 0x0F) | ((x & 0xC0) >> 2), buf)
        buf = read31()
        z = read1()
        put(z & 0x3F, buf)
        buf = read31()
        put(((z & 0xC0) >> 2) | ((y & 0xF0) >> 4), buf)
    return bytes(b)


def pattern(n: int, salt: int = 0) -> bytes:
    # every byte value, including ones with the top bits set, in a non-periodic order
    return bytes(((i * 131 + salt) ^ (i >> 7)) & 0xFF for i in range(n))


@pytest.mark.parametrize("n", [0, 1, 26, 27, 28, 122, 123, 124, 127, 250, 4096, M - 1, M])
def test_boundaries_match_op_stack_and_round_trip(n):
    data = pattern(n)
    blob = encode_blob(data)
    assert blob == op_encode_reference(data)
    assert check_blob_shape(blob) is None
    assert decode_blob(blob) == data


def test_capacity_constants():
    assert M == 130044
    with pytest.raises(ValueError, match="do not fit"):
        encode_blob(bytes(M + 1))
    assert [blobs_needed(n) for n in (0, 1, M, M + 1, 2 * M, 2 * M + 1)] == [1, 1, 1, 2, 2, 3]


@given(st.binary(max_size=3000))
@settings(max_examples=60)
def test_round_trip_small_arbitrary(data):
    blob = encode_blob(data)
    assert all(blob[i] & 0xC0 == 0 for i in range(0, BYTES_PER_BLOB, 32))
    assert decode_blob(blob) == data


@given(
    st.sampled_from([0, 1, M - 1, M, M + 1, 2 * M - 1, 2 * M, 2 * M + 1, 3 * M - 1, 3 * M])
    | st.integers(0, 3 * M),
    st.integers(0, 255),
)
@settings(max_examples=25)
def test_multi_blob_round_trip(n, salt):
    data = pattern(n, salt)
    blobs = pack_blobs(data)
    assert len(blobs) == blobs_needed(n)
    for blob in blobs:
        assert check_blob_shape(blob) is None
        assert all(blob[i] & 0xC0 == 0 for i in range(0, BYTES_PER_BLOB, 32))
    assert unpack_blobs(blobs) == data


def test_pack_limit():
    with pytest.raises(ValueError, match="needs 3 blobs, more than 2"):
        pack_blobs(bytes(2 * M + 1), max_blobs=2)


def test_decode_rejections():
    good = encode_blob(b"hello world")
    cases = {
        "has 131072 bytes": good[:-1],
        "top bit": bytes([0x40]) + good[1:],
        "version": good[:1] + b"\x01" + good[2:],
        "exceeds the maximum": good[:2] + (M + 1).to_bytes(3, "big") + good[5:],
        "after the declared length": good[:2] + (5).to_bytes(3, "big") + good[5:],
        "after the last used round": good[:-1] + b"\x01",
    }
    for needle, blob in cases.items():
        with pytest.raises(BlobDecodeError, match=needle):
            decode_blob(blob)


def test_unpack_rejections():
    full, tail = pack_blobs(pattern(M + 10))
    with pytest.raises(BlobDecodeError, match="no blobs"):
        unpack_blobs([])
    with pytest.raises(BlobDecodeError, match="not the last"):
        unpack_blobs([tail, full])
    with pytest.raises(BlobDecodeError, match="empty trailing"):
        unpack_blobs([full, encode_blob(b"")])
    with pytest.raises(BlobDecodeError, match="blob 1: "):
        unpack_blobs([full, tail[:-1]])


@given(st.data())
@settings(max_examples=150)
def test_mutated_blobs_raise_only_decode_error(data):
    base = encode_blob(pattern(data.draw(st.integers(0, 2000))))
    blob = bytearray(base)
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, BYTES_PER_BLOB - 1) | st.integers(0, 200))
        blob[pos] = data.draw(st.integers(0, 255))
    try:
        out = decode_blob(bytes(blob))
    except BlobDecodeError:
        return
    # Accepted: then it must be the canonical encoding of what it decoded to.
    assert encode_blob(out) == bytes(blob)


@given(st.binary(max_size=300))
@settings(max_examples=50)
def test_arbitrary_bytes_raise_only_decode_error(junk):
    for blob in (junk, junk + bytes(BYTES_PER_BLOB - len(junk))):
        try:
            out = decode_blob(blob)
        except BlobDecodeError:
            continue
        assert encode_blob(out) == blob


def test_kzg_accepts_a_packed_batch_payload():
    """End to end with the real trusted setup: what we pack, KZG commits to and verifies."""
    from sequencer_node.wire.kzg import blob_to_commitment_and_proof, verify_blobs_batch

    blob = encode_blob(bytes(range(256)) * 500)  # every byte value, top bits included
    commitment, proof = blob_to_commitment_and_proof(blob)
    check = verify_blobs_batch([blob], [commitment], [proof])
    assert check.ok, check.error
