"""Batch payload codec: round trips, header rebuilding, strictness, compression bounds."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import zlib

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sequencer_node.batching.blobs import pack_blobs, unpack_blobs
from sequencer_node.batching.codec import (
    FORMAT_VERSION,
    Batch,
    BatchFormatError,
    calldata_for,
    decode_body,
    decode_payload,
    encode_body,
    encode_payload,
    payload_algorithm,
    payload_from_calldata,
)
from sequencer_node.batching.compression import (
    Algorithm,
    CompressionError,
    compress,
    decompress,
    parse_algorithm,
)
from sequencer_node.batching.sample import sample_chain
from sequencer_node.wire.messages import ForcedTransaction, block_hash


@functools.cache
def chain():
    return sample_chain(accounts=20, blocks=6, txs_per_block=15)


def batch() -> Batch:
    return Batch.from_certified(chain()[1])


@pytest.mark.parametrize("algo", list(Algorithm))
def test_payload_round_trip_every_algorithm(algo):
    b = batch()
    payload = encode_payload(b, algo)
    assert payload[0] == FORMAT_VERSION
    assert payload_algorithm(payload) is algo
    assert decode_payload(payload) == b
    assert decode_payload(unpack_blobs(pack_blobs(payload))) == b
    assert decode_payload(payload_from_calldata(calldata_for(payload))) == b


def test_headers_rebuild_the_certified_chain_and_state_roots_replay():
    genesis, blocks = chain()
    b = decode_payload(encode_payload(batch()))
    headers = b.headers()
    assert headers == [cb.block.header for cb in blocks]
    assert b.last_block_hash() == block_hash(blocks[-1].block.header)
    assert b.tx_count() == 6 * 15
    assert (b.first_height, b.last_height) == (1, 6)
    ledger = genesis
    for bb in b.blocks:
        ledger, _ = ledger.apply_block(
            bb.transactions, bb.forced, proposer=bb.proposer, chain_id=901
        )
        assert ledger.state_root() == bb.state_root


def test_tampering_changes_the_last_block_hash():
    b = batch()
    blocks = list(b.blocks)
    tx = blocks[2].transactions[0]
    blocks[2] = dataclasses.replace(
        blocks[2],
        transactions=(dataclasses.replace(tx, fee=tx.fee + 1), *blocks[2].transactions[1:]),
    )
    assert Batch(b.parent_hash, tuple(blocks)).last_block_hash() != b.last_block_hash()


def test_from_certified_requires_a_chain():
    blocks = chain()[1]
    with pytest.raises(BatchFormatError, match="at least one"):
        Batch.from_certified([])
    with pytest.raises(BatchFormatError, match="does not extend"):
        Batch.from_certified([blocks[0], blocks[2]])


def test_structure_checks_on_decode():
    b = batch()
    bad_height = Batch(b.parent_hash, (b.blocks[0], dataclasses.replace(b.blocks[1], height=9)))
    with pytest.raises(BatchFormatError, match="does not follow"):
        decode_body(encode_body(bad_height))
    f = ForcedTransaction(4, 1, b.blocks[0].transactions[0])
    bad_forced = Batch(
        b.parent_hash, (dataclasses.replace(b.blocks[0], forced=(f,), forced_index=1),)
    )
    with pytest.raises(BatchFormatError, match="queue index 4, expected 0"):
        decode_body(encode_body(bad_forced))
    with pytest.raises(BatchFormatError, match="at least one block"):
        decode_body(msgpack.packb([bytes(32), []]))
    with pytest.raises(BatchFormatError, match="expected 32 bytes"):
        decode_body(msgpack.packb([bytes(31), msgpack.unpackb(encode_body(b))[1]]))


def test_non_canonical_and_trailing_bytes_rejected():
    body = encode_body(batch())
    with pytest.raises(BatchFormatError, match="msgpack"):
        decode_body(body + b"\x00")
    # [array2, bin8 hdr (2), parent (32), array6, array10, height] -> height is at 37
    idx = 1 + 2 + 32 + 1 + 1
    assert body[idx] == 1
    # the same height as a uint8: the same value, but not the canonical bytes
    noncanon = body[:idx] + b"\xcc\x01" + body[idx + 1 :]
    assert msgpack.unpackb(noncanon) == msgpack.unpackb(body)
    with pytest.raises(BatchFormatError, match="canonical"):
        decode_body(noncanon)


def test_payload_header_errors():
    payload = encode_payload(batch(), Algorithm.ZLIB)
    with pytest.raises(BatchFormatError, match="no header"):
        decode_payload(b"\x01")
    with pytest.raises(BatchFormatError, match="format version 7"):
        decode_payload(b"\x07" + payload[1:])
    with pytest.raises(BatchFormatError, match="algorithm tag 9"):
        decode_payload(payload[:1] + b"\x09" + payload[2:])
    with pytest.raises(BatchFormatError, match="truncated zlib"):
        decode_payload(payload[:-4])


def test_zip_bomb_is_bounded():
    bomb = bytes([FORMAT_VERSION, Algorithm.ZLIB]) + zlib.compress(bytes(10_000_000), 9)
    with pytest.raises(BatchFormatError, match="exceeds the limit of 1000000"):
        decode_payload(bomb, max_body=1_000_000)


@pytest.mark.parametrize("algo", [Algorithm.ZLIB, Algorithm.ZSTD, Algorithm.BROTLI])
def test_every_decompressor_is_bounded_and_strict(algo):
    data = bytes(300_000)
    c = compress(data, algo)
    assert decompress(c, algo) == data
    with pytest.raises(CompressionError, match="exceeds the limit"):
        decompress(c, algo, max_output=100_000)
    with pytest.raises(CompressionError):
        decompress(c[:-2], algo)
    with pytest.raises(CompressionError):
        decompress(c + b"\x00\x01", algo)


def test_parse_algorithm():
    assert parse_algorithm(" Zstd") is Algorithm.ZSTD
    with pytest.raises(ValueError, match="choose one of none, zlib, zstd, brotli"):
        parse_algorithm("lz4")


@given(st.binary(max_size=400), st.sampled_from(list(Algorithm)))
@settings(max_examples=100)
def test_arbitrary_payloads_raise_only_format_error(junk, algo):
    for payload in (junk, bytes([FORMAT_VERSION, algo]) + junk):
        with contextlib.suppress(BatchFormatError):
            decode_payload(payload)


@given(st.data())
@settings(max_examples=100)
def test_mutated_bodies_raise_only_format_error_or_reencode_exactly(data):
    body = bytearray(encode_body(batch()))
    for _ in range(data.draw(st.integers(1, 3))):
        body[data.draw(st.integers(0, len(body) - 1))] = data.draw(st.integers(0, 255))
    try:
        out = decode_body(bytes(body))
    except BatchFormatError:
        return
    assert encode_body(out) == bytes(body)
