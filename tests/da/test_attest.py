"""Blobstream-style attestations (> 2/3 of committee stake) and DA pointers checked against an
attested data root without the blob's bytes."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from l1_mock.da.chain import DAChain, block_shares
from sequencer_node.wire.da import attest, nmt
from sequencer_node.wire.da.attest import (
    Attestation,
    AttestationError,
    Committee,
    DataRootTuple,
    make_commitment,
    prove_pointer,
    verify_attestation,
    verify_blob,
    verify_pointer,
)
from sequencer_node.wire.da.shares import layout
from tests.da.helpers import COMMITTEE, DA_CHAIN, STAKES, USERS, genesis, ns, pfb

COMMITTEE_SET = Committee(tuple((k.public_key, s) for k, s in zip(COMMITTEE, STAKES, strict=True)))


def _signed(commitment: attest.DataCommitment, which: list[int]) -> Attestation:
    msg = commitment.signing_bytes(DA_CHAIN)
    return Attestation(
        commitment, tuple((COMMITTEE[i].public_key, COMMITTEE[i].sign(msg)) for i in which)
    )


def _tuples(n: int) -> list[DataRootTuple]:
    return [DataRootTuple(h, 0, bytes([h]) * 90) for h in range(1, n + 1)]


@pytest.mark.parametrize(
    ("signers", "ok"),
    [
        ([0, 1, 2, 3], True),  # 100 of 100
        ([0, 2, 3], True),  # 70
        ([0, 1], True),  # 70
        ([1, 2, 3], False),  # 60
        ([0, 3], False),  # 50
        ([], False),
    ],
)
def test_more_than_two_thirds_of_stake_must_sign(signers: list[int], ok: bool) -> None:
    att = _signed(make_commitment(0, _tuples(4)), signers)
    if ok:
        verify_attestation(att, COMMITTEE_SET, DA_CHAIN)
    else:
        with pytest.raises(AttestationError, match="more than 2/3"):
            verify_attestation(att, COMMITTEE_SET, DA_CHAIN)


def test_exactly_two_thirds_is_not_enough() -> None:
    c3 = Committee(tuple((k.public_key, 2) for k in COMMITTEE[:3]))
    commitment = make_commitment(0, _tuples(2))
    with pytest.raises(AttestationError, match="more than 2/3"):
        verify_attestation(_signed(commitment, [0, 1]), c3, DA_CHAIN)  # 4 of 6
    verify_attestation(_signed(commitment, [0, 1, 2]), c3, DA_CHAIN)


def test_forged_duplicated_foreign_and_cross_chain_signatures_are_refused() -> None:
    c = make_commitment(5, _tuples(3))
    good = _signed(c, [0, 1, 2])
    with pytest.raises(AttestationError, match="twice"):
        verify_attestation(
            Attestation(c, (*good.signatures, good.signatures[0])), COMMITTEE_SET, DA_CHAIN
        )
    outsider = USERS[0]
    foreign = (outsider.public_key, outsider.sign(c.signing_bytes(DA_CHAIN)))
    with pytest.raises(AttestationError, match="not in the DA committee"):
        verify_attestation(Attestation(c, (*good.signatures, foreign)), COMMITTEE_SET, DA_CHAIN)
    with pytest.raises(AttestationError, match="bad signature"):
        verify_attestation(good, COMMITTEE_SET, DA_CHAIN + 1)
    moved = Attestation(dataclasses.replace(c, end=c.end + 1), good.signatures)
    with pytest.raises(AttestationError, match="bad signature"):
        verify_attestation(moved, COMMITTEE_SET, DA_CHAIN)


def _attested_chain(blocks: list[list[tuple[int, int, bytes]]]) -> tuple[DAChain, list[Any]]:
    """A chain whose block i holds blobs (user, namespace index, data) of ``blocks[i]``."""
    c = DAChain(genesis())
    nonces = [0] * len(USERS)
    produced = []
    for blobs in blocks:
        pfbs = []
        for u, n, data in blobs:
            p = pfb(USERS[u], nonces[u], ns(n), data)
            nonces[u] += 1
            c.submit(p)
            pfbs.append(p)
        produced.append((c.produce_block(), pfbs))
    return c, produced


blob_st = st.tuples(st.integers(0, 2), st.integers(1, 4), st.binary(min_size=1, max_size=40_000))


@given(st.lists(st.lists(blob_st, min_size=1, max_size=3), min_size=1, max_size=3), st.data())
def test_pointer_to_any_blob_verifies_against_the_attestation(
    blocks: list[list[tuple[int, int, bytes]]], data: st.DataObject
) -> None:
    c, produced = _attested_chain(blocks)
    tuples = [DataRootTuple(h.height, h.share_count, h.data_root) for h in c.headers[1:]]
    commitment = make_commitment(0, tuples)
    verify_attestation(_signed(commitment, [0, 1, 2]), COMMITTEE_SET, DA_CHAIN)
    bi = data.draw(st.integers(0, len(produced) - 1))
    block, pfbs = produced[bi]
    inc = data.draw(st.sampled_from(block.blobs))
    shares = block_shares(pfbs)
    pointer, proof = prove_pointer(
        shares, block.header.height, inc.start, inc.end, tuples, commitment
    )
    assert pointer.commitment == inc.commitment
    verify_pointer(pointer, proof, commitment)
    assert verify_blob(pointer, inc.pfb.data)
    assert not verify_blob(pointer, inc.pfb.data + b"\x00")
    # what could be changed: every change is refused
    bad_pointers = [
        dataclasses.replace(pointer, height=pointer.height + 1),
        dataclasses.replace(pointer, start=pointer.start + 1, end=pointer.end + 1)
        if shares[inc.start + 1 : inc.end + 1] != shares[inc.start : inc.end]
        else None,  # (an identical blob right after it makes the shifted pointer true)
        dataclasses.replace(pointer, end=pointer.end - 1)
        if pointer.end - pointer.start > 1
        else None,
        dataclasses.replace(pointer, namespace=ns(9)),
        dataclasses.replace(pointer, commitment=bytes(32)),
    ]
    for bad in filter(None, bad_pointers):
        with pytest.raises(AttestationError):
            verify_pointer(bad, proof, commitment)
    t = proof.root_tuple
    bad_proofs = [
        dataclasses.replace(
            proof, root_tuple=dataclasses.replace(t, share_count=t.share_count + 1)
        ),
        dataclasses.replace(proof, root_tuple=dataclasses.replace(t, data_root=bytes(90))),
        dataclasses.replace(proof, range_nodes=(*proof.range_nodes, t.data_root)),
        dataclasses.replace(proof, subtree_roots=proof.subtree_roots[::-1])
        if len(set(proof.subtree_roots)) > 1
        else None,
        dataclasses.replace(proof, tuple_siblings=()) if proof.tuple_siblings else None,
    ]
    for bad_proof in filter(None, bad_proofs):
        with pytest.raises(AttestationError):
            verify_pointer(pointer, bad_proof, commitment)
    other = dataclasses.replace(commitment, tuple_root=bytes(32))
    with pytest.raises(AttestationError):
        verify_pointer(pointer, proof, other)


def test_a_pointer_cannot_claim_shares_of_another_namespace() -> None:
    """Blob A (namespace 1) is attested; a pointer claiming A's shares under namespace 2, or
    B's shares with A's commitment, fails."""
    shares, placed = layout([(ns(1), b"a" * 3_000), (ns(2), b"b" * 3_000)])
    tuples = [DataRootTuple(1, len(shares), nmt.root(shares))]
    commitment = make_commitment(0, tuples)
    pa, proof_a = prove_pointer(shares, 1, placed[0].start, placed[0].end, tuples, commitment)
    pb, proof_b = prove_pointer(shares, 1, placed[1].start, placed[1].end, tuples, commitment)
    with pytest.raises(AttestationError, match="another namespace"):
        verify_pointer(dataclasses.replace(pa, namespace=ns(2)), proof_a, commitment)
    with pytest.raises(AttestationError):
        verify_pointer(dataclasses.replace(pb, commitment=pa.commitment), proof_b, commitment)
    with pytest.raises(AttestationError):
        verify_pointer(pb, proof_a, commitment)


@given(st.binary(min_size=1, max_size=30_000), st.integers(0, 3), st.data())
def test_any_flipped_byte_in_a_pointer_proof_is_caught(
    data: bytes, before: int, draw: st.DataObject
) -> None:
    blobs = [(ns(1), bytes([i + 1]) * (100 + 700 * i)) for i in range(before)] + [(ns(2), data)]
    shares, placed = layout(blobs)
    tuples = [DataRootTuple(h, len(shares), nmt.root(shares)) for h in (1, 2, 3)]
    commitment = make_commitment(0, tuples)
    pointer, proof = prove_pointer(shares, 2, placed[-1].start, placed[-1].end, tuples, commitment)
    verify_pointer(pointer, proof, commitment)
    field = draw.draw(st.sampled_from(["subtree_roots", "range_nodes", "tuple_siblings"]))
    items = list(getattr(proof, field))
    if not items:
        return
    i = draw.draw(st.integers(0, len(items) - 1))
    j = draw.draw(st.integers(0, len(items[i]) - 1))
    items[i] = items[i][:j] + bytes([items[i][j] ^ 0x80]) + items[i][j + 1 :]
    t = tuple(items)
    if field == "subtree_roots":
        bad = dataclasses.replace(proof, subtree_roots=t)
    elif field == "range_nodes":
        bad = dataclasses.replace(proof, range_nodes=t)
    else:
        bad = dataclasses.replace(proof, tuple_siblings=t)
    with pytest.raises(AttestationError):
        verify_pointer(pointer, bad, commitment)
