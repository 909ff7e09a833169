"""Blob checks with real KZG (ckzg): valid sidecars pass, every kind of bad one is refused."""

from __future__ import annotations

import hashlib

import pytest

from sequencer_node.wire.blobs import BLS_MODULUS, BYTES_PER_BLOB, kzg_to_versioned_hash
from sequencer_node.wire.kzg import blob_to_commitment_and_proof, verify_blobs_batch


def random_blob(seed: int) -> bytes:
    out = bytearray()
    for i in range(4096):
        fe = hashlib.sha256(b"%d/%d" % (seed, i)).digest()
        out += b"\x00" + fe[1:]  # top byte 0: always below the modulus
    return bytes(out)


@pytest.fixture(scope="module")
def sidecars() -> tuple[list[bytes], list[bytes], list[bytes]]:
    blobs = [random_blob(1), random_blob(2)]
    pairs = [blob_to_commitment_and_proof(b) for b in blobs]
    return blobs, [c for c, _ in pairs], [p for _, p in pairs]


def test_valid_blobs_verify_and_give_ethereum_versioned_hashes(sidecars) -> None:
    blobs, cs, ps = sidecars
    res = verify_blobs_batch(blobs, cs, ps)
    assert res.ok
    assert res.versioned_hashes == tuple(kzg_to_versioned_hash(c) for c in cs)
    zero = verify_blobs_batch([bytes(BYTES_PER_BLOB)], [b"\xc0" + bytes(47)], [b"\xc0" + bytes(47)])
    assert zero.versioned_hashes[0].hex() == (
        "010657f37554c781402a22917dee2f75def7ab966d7b770905398eba3c444014"
    )


def test_wrong_proof_is_refused(sidecars) -> None:
    blobs, cs, ps = sidecars
    res = verify_blobs_batch(blobs, cs, [ps[1], ps[0]])
    assert not res.ok
    assert "does not verify" in str(res.error)


def test_wrong_commitment_is_refused(sidecars) -> None:
    blobs, cs, ps = sidecars
    res = verify_blobs_batch(blobs, [cs[1], cs[0]], ps)
    assert not res.ok
    assert "KZG" in str(res.error)
    garbage = verify_blobs_batch(
        blobs[:1], [b"\x01" * 48], ps[:1]
    )  # not a curve point: ckzg raises
    assert not garbage.ok
    assert "invalid commitment or proof" in str(garbage.error)


def test_field_element_at_or_above_modulus_is_refused(sidecars) -> None:
    blobs, cs, ps = sidecars
    bad = bytearray(blobs[0])
    bad[32 * 7 : 32 * 8] = BLS_MODULUS.to_bytes(32, "big")
    res = verify_blobs_batch([bytes(bad)], cs[:1], ps[:1])
    assert res.error == "blob 0: field element 7 is not below the BLS modulus"
    below = bytearray(blobs[0])
    below[0:32] = (BLS_MODULUS - 1).to_bytes(32, "big")
    res = verify_blobs_batch([bytes(below)], cs[:1], ps[:1])
    assert not res.ok
    assert "field element" not in str(res.error)


def test_wrong_size_and_count_mismatch_are_refused(sidecars) -> None:
    blobs, cs, ps = sidecars
    res = verify_blobs_batch([blobs[0][:-1]], cs[:1], ps[:1])
    assert res.error == "blob 0: a blob has 131072 bytes, got 131071"
    res = verify_blobs_batch(blobs, cs[:1], ps)
    assert not res.ok
    assert "exactly one commitment" in str(res.error)
