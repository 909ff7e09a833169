"""Keys, addresses and domain separation of signatures."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

import sequencer_node.wire.messages as m
from sequencer_node.wire import codec
from sequencer_node.wire.crypto import (
    SigningKey,
    address_of,
    format_address,
    parse_address,
    sign_message,
    verify,
    verify_message,
)

KEY = SigningKey.deterministic("signing-test")
SIGNABLE = [c for c in codec.registered_messages() if codec._info(c).domain]


def test_every_signable_message_has_its_own_domain() -> None:
    domains = [codec._info(c).domain for c in SIGNABLE]
    assert len(domains) == len(set(domains))
    assert {"vote", "proposal", "timeout", "batch", "downtime", "l1-call", "l2-transfer"} <= set(
        domains
    )


@given(
    st.binary(min_size=32, max_size=32),
    st.integers(0, 2**64 - 1),
    st.integers(0, 2**64 - 1),
    st.integers(0, 2**64 - 1),
)
def test_vote_signature_never_verifies_as_a_proposal_or_timeout(
    digest: bytes, height: int, rnd: int, chain: int
) -> None:
    vote = sign_message(m.Vote(digest, height, rnd, 0, KEY.public_key, bytes(64)), KEY, chain)
    assert verify_message(vote, KEY.public_key, chain)
    header = m.BlockHeader(height, rnd, 0, digest, 0, KEY.public_key, digest, digest, 0, 0)
    as_proposal = m.Proposal(header, vote.signature)
    assert not verify_message(as_proposal, KEY.public_key, chain)
    as_timeout = m.Timeout(rnd, 0, height, digest, KEY.public_key, vote.signature)
    assert not verify_message(as_timeout, KEY.public_key, chain)


@given(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1))
def test_signature_is_bound_to_the_chain_id(chain_a: int, chain_b: int) -> None:
    vote = sign_message(m.Vote(bytes(32), 1, 1, 0, KEY.public_key, bytes(64)), KEY, chain_a)
    assert verify_message(vote, KEY.public_key, chain_b) == (chain_a == chain_b)


def test_signing_bytes_differ_per_domain_for_identical_bodies() -> None:
    # Vote and Timeout share the shape (hash/ints/pubkey/sig) in no field order, but even two
    # messages with identical bodies would differ by their domain and tag.
    v = m.Vote(bytes(32), 1, 1, 0, KEY.public_key, bytes(64))
    data = codec.signing_bytes(v, 1)
    assert data.startswith(codec.DOMAIN_PREFIX + b"vote\x00" + (1).to_bytes(8, "big"))
    with pytest.raises(TypeError, match="not a signable"):
        codec.signing_bytes(m.Endorsement(KEY.public_key, bytes(64)), 1)


def test_tampered_field_breaks_the_signature() -> None:
    vote = sign_message(m.Vote(bytes(32), 1, 1, 0, KEY.public_key, bytes(64)), KEY, 7)
    assert not verify_message(dataclasses.replace(vote, height=2), KEY.public_key, 7)
    other = SigningKey.deterministic("other")
    assert not verify_message(vote, other.public_key, 7)


def test_verify_rejects_malformed_keys_and_signatures() -> None:
    sig = KEY.sign(b"x")
    assert verify(KEY.public_key, sig, b"x")
    assert not verify(KEY.public_key[:31], sig, b"x")
    assert not verify(KEY.public_key, sig[:63], b"x")
    assert not verify(b"\xff" * 32, sig, b"x")


def test_addresses() -> None:
    addr = address_of(KEY.public_key)
    assert len(addr) == 20
    assert addr == KEY.address
    assert parse_address(format_address(addr)) == addr
    with pytest.raises(ValueError, match="40 hex digits"):
        parse_address("0x1234")
    with pytest.raises(ValueError, match="not hex"):
        parse_address("0xzz")
    with pytest.raises(ValueError, match="32 bytes"):
        address_of(b"short")


def test_keys_round_trip_through_their_seed() -> None:
    k = SigningKey.generate()
    assert SigningKey.from_seed(k.seed()).public_key == k.public_key
    assert SigningKey.deterministic("a").public_key == SigningKey.deterministic("a").public_key
    assert SigningKey.deterministic("a").public_key != SigningKey.deterministic("b").public_key


@given(st.binary(max_size=300), st.integers(0, 63), st.integers(1, 255))
def test_libsodium_and_openssl_agree_on_good_and_corrupted_signatures(
    data: bytes, at: int, flip: int
) -> None:
    # issue 13: the nodes verify with libsodium (PyNaCl, ~2x faster); valid signatures made
    # by our keys and their corruptions get the same answer as with OpenSSL before.
    from sequencer_node.wire.crypto import verify_openssl, verify_uncached

    sig = KEY.sign(data)
    assert verify_uncached(KEY.public_key, sig, data)
    assert verify_openssl(KEY.public_key, sig, data)
    bad = sig[:at] + bytes([sig[at] ^ flip]) + sig[at + 1 :]
    assert not verify_uncached(KEY.public_key, bad, data)
    assert verify_openssl(KEY.public_key, bad, data) is False


def test_small_order_keys_and_wrong_lengths_are_refused() -> None:
    from sequencer_node.wire.crypto import verify_uncached

    identity_point = bytes([1]) + bytes(31)  # a small-order public key
    assert not verify_uncached(identity_point, bytes(64), b"anything")
    assert not verify(KEY.public_key[:31], KEY.sign(b"x"), b"x")
    assert not verify_uncached(KEY.public_key, KEY.sign(b"x")[:63], b"x")
