"""The L1's external-DA bridge: data commitments signed by > 2/3 of the DA committee (the
genesis's), posted in order by a relayer, and extda batches whose DA pointer is proven against
an attested data root (docs/da.md)."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable

import pytest

from l1_mock import genesis as genesis_mod
from l1_mock.chain import CallRejected, Chain
from sequencer_node.batching.inbox_rule import ExternalProof, InboxView, Landing, Rule, check_batch
from sequencer_node.wire.blobs import BLOB_SCHEDULE
from sequencer_node.wire.crypto import SigningKey
from sequencer_node.wire.da import nmt
from sequencer_node.wire.da.attest import (
    Attestation,
    DAPointer,
    DataCommitment,
    DataRootTuple,
    PointerProof,
    make_commitment,
    prove_pointer,
)
from sequencer_node.wire.da.shares import Placement, layout, user_namespace
from sequencer_node.wire.l1calls import SubmitBatch, SubmitDataCommitment
from sequencer_node.wire.messages import DA_EXTERNAL, BatchHeader
from tests.l1.helpers import USER, batch_header, certify, genesis, mine, submit

DA_CHAIN = 7_000
COMMITTEE = [SigningKey.deterministic(f"l1-da-committee-{i}") for i in range(4)]
STAKES = [40, 30, 20, 10]
NS = user_namespace(b"seqnet-l2a")
OTHER_NS = user_namespace(b"seqnet-l2b")
PAYLOAD = b"an l2 batch payload " * 300
WINDOW = 4


def da_chain(**kw: object) -> Chain:
    committee = tuple((k.public_key, s) for k, s in zip(COMMITTEE, STAKES, strict=True))
    return Chain(genesis(da_chain_id=DA_CHAIN, da_committee=committee, da_namespace=NS, **kw))


class DA:
    """A DA layer in miniature: WINDOW blocks, the rollup's blob in block 2 between others."""

    def __init__(self, payload: bytes = PAYLOAD, start: int = 1, nonce: int = 0) -> None:
        self.blocks: dict[int, tuple[list[bytes], list[Placement]]] = {}
        for h in range(start, start + WINDOW):
            blobs = [(OTHER_NS, b"x" * (h * 100))]
            if h == start + 1:
                blobs += [(NS, payload), (user_namespace(b"seqnet-l29"), b"y" * 900)]
            self.blocks[h] = layout(blobs)
        self.tuples = [
            DataRootTuple(h, len(s), nmt.root(s)) for h, (s, _) in sorted(self.blocks.items())
        ]
        self.commitment = make_commitment(nonce, self.tuples)

    def attestation(self, signers: list[int], chain_id: int = DA_CHAIN) -> SubmitDataCommitment:
        msg = self.commitment.signing_bytes(chain_id)
        sigs = tuple((COMMITTEE[i].public_key, COMMITTEE[i].sign(msg)) for i in signers)
        return SubmitDataCommitment.of(Attestation(self.commitment, sigs))

    def pointer(self, namespace: bytes = NS) -> tuple[DAPointer, PointerProof]:
        h = self.commitment.start + 1
        shares, placed = self.blocks[h]
        p = next(p for p in placed if p.namespace == namespace)
        return prove_pointer(shares, h, p.start, p.end, self.tuples, self.commitment)


def extda_header(chain: Chain, pointer: DAPointer, payload: bytes = PAYLOAD) -> BatchHeader:
    h = batch_header(chain)
    return dataclasses.replace(
        h,
        da_kind=DA_EXTERNAL,
        da_pointer=pointer,
        data_hash=hashlib.sha256(payload).digest(),
        data_bytes=len(payload),
    )


def extda_params(header: BatchHeader, proof: PointerProof | None, nonce: int = 0) -> SubmitBatch:
    return SubmitBatch(certify(header), 0, (), (), (), b"", nonce, proof)


def relay(chain: Chain, da: DA, signers: list[int] | None = None) -> None:
    submit(chain, USER, da.attestation([0, 1, 2] if signers is None else signers))
    mine(chain)


def test_a_data_commitment_signed_by_more_than_two_thirds_is_stored() -> None:
    chain = da_chain()
    da = DA()
    relay(chain, da, [0, 1])  # 70 of 100
    assert chain.da_bridge.commitments == [da.commitment]
    assert chain.da_bridge.next_nonce == 1
    assert chain.da_bridge.attested_end == 1 + WINDOW
    assert chain.da_bridge.covering(3) == da.commitment
    assert chain.da_bridge.covering(9) is None
    nxt = DA(start=1 + WINDOW, nonce=1)
    relay(chain, nxt, [0, 1, 2, 3])
    assert chain.da_bridge.commitment(1) == nxt.commitment


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: DA().attestation([1, 2, 3]), "more than 2/3"),  # 60 of 100
        (lambda: DA().attestation([0, 1], chain_id=DA_CHAIN + 1), "bad signature"),
        (lambda: DA(nonce=1).attestation([0, 1]), "nonce 1; expected 0"),
        (lambda: DA(start=2).attestation([0, 1]), "starts at DA height 2; expected 1"),
    ],
)
def test_bad_data_commitments_are_refused(
    make: Callable[[], SubmitDataCommitment], match: str
) -> None:
    chain = da_chain()
    with pytest.raises(CallRejected, match=match):
        submit(chain, USER, make())


def test_a_replayed_or_overlapping_commitment_is_refused() -> None:
    chain = da_chain()
    da = DA()
    relay(chain, da)
    with pytest.raises(CallRejected, match="nonce 0; expected 1"):
        submit(chain, USER, da.attestation([0, 1, 2]))
    with pytest.raises(CallRejected, match="starts at DA height 2; expected 5"):
        submit(chain, USER, DA(start=2, nonce=1).attestation([0, 1, 2]))


def test_an_l1_without_a_committee_takes_no_commitment_and_no_extda_batch() -> None:
    chain = Chain(genesis())
    da = DA()
    with pytest.raises(CallRejected, match="no DA committee"):
        submit(chain, USER, da.attestation([0, 1, 2]))
    pointer, proof = da.pointer()
    with pytest.raises(CallRejected, match="takes no external-DA batches"):
        submit(chain, USER, extda_params(extda_header(chain, pointer), proof))


def test_an_extda_batch_proven_against_an_attested_root_is_accepted() -> None:
    chain = da_chain()
    da = DA()
    relay(chain, da)
    pointer, proof = da.pointer()
    header = extda_header(chain, pointer)
    submit(chain, USER, extda_params(header, proof))
    mine(chain)
    assert chain.batches[-1].header == header
    assert chain.batches[-1].da_tuple == da.tuples[1]
    assert chain.head.gas_used > 0


def test_extda_batches_the_inbox_refuses() -> None:
    chain = da_chain()
    da = DA()
    pointer, proof = da.pointer()
    header = extda_header(chain, pointer)
    with pytest.raises(CallRejected, match="no data commitment of the proof's nonce"):
        submit(chain, USER, extda_params(header, proof))
    relay(chain, da)
    other, other_proof = da.pointer(OTHER_NS)
    cases = [
        (extda_params(header, None), "carries a DA pointer proof"),
        (extda_params(header, other_proof), "bad DA pointer proof"),
        (extda_params(header, proof, nonce=1), "no data commitment"),
        (
            extda_params(extda_header(chain, other, b"x" * 200), other_proof),
            "namespace .* is not the rollup's",
        ),
        (
            extda_params(extda_header(chain, pointer, PAYLOAD[:400]), proof),
            "names 13 shares; 400 bytes take 1",
        ),
        (dataclasses.replace(extda_params(header, proof), calldata=b"x"), "no calldata"),
    ]
    for params, match in cases:
        with pytest.raises(CallRejected, match=match):
            submit(chain, USER, params)
    # A pointer to data whose commitment differs from the attested one is refused too.
    forged = dataclasses.replace(pointer, commitment=hashlib.sha256(b"forged").digest())
    with pytest.raises(CallRejected, match="bad DA pointer proof"):
        submit(chain, USER, extda_params(extda_header(chain, forged), proof))


def test_co_signers_check_the_pointer_shape_and_the_inbox_also_the_proof() -> None:
    da = DA()
    pointer, proof = da.pointer()
    chain = da_chain()
    header = extda_header(chain, pointer)
    view = InboxView(901, 1, None, 0, None, True, 4, 64, da_namespace=NS)
    land = Landing.at(10, 3, BLOB_SCHEDULE["bpo2"])
    assert check_batch(header, view, land, blob_count=0) is None  # a co-signer's call
    refusal = check_batch(header, view, land, blob_count=0, external=ExternalProof(proof, None))
    assert refusal is not None
    assert refusal.rule is Rule.DA_NOT_ATTESTED
    assert not refusal.final
    ok = ExternalProof(proof, da.commitment)
    assert check_batch(header, view, land, blob_count=0, external=ok) is None
    bad = ExternalProof(proof, DataCommitment(0, 1, 5, bytes(32)))
    refusal = check_batch(header, view, land, blob_count=0, external=bad)
    assert refusal is not None
    assert refusal.rule is Rule.DA_POINTER
    assert refusal.final
    wrong_ns = dataclasses.replace(view, da_namespace=OTHER_NS)
    refusal = check_batch(header, wrong_ns, land, blob_count=0)
    assert refusal is not None
    assert refusal.rule is Rule.DA_POINTER


def test_the_da_settings_survive_the_genesis_file() -> None:
    g = da_chain().config
    full = dataclasses.replace(genesis(), config=g)
    assert genesis_mod.from_json(genesis_mod.to_json(full)).config == g
    with pytest.raises(ValueError, match="da_namespace"):
        Chain(dataclasses.replace(full, config=dataclasses.replace(g, da_namespace=b"\x00" * 29)))
