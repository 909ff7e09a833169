"""Pure parts: cutting batches by size and age, fitting payloads into blobs, header
comparison, and approval aggregation by stake."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sequencer_node.batcher.builder import (
    BatchTooLarge,
    PayloadMismatch,
    draft_batch,
    draft_from_payload,
    fit_draft,
    header_mismatch,
    make_header,
    pick_count,
)
from sequencer_node.batcher.cosign import ApprovalCollector, proposal_of, sign_approval
from sequencer_node.batcher.kzg_worker import ProofMismatch, check, prepare
from sequencer_node.batcher.messages import BatchProposal
from sequencer_node.batching import codec as batching_codec
from sequencer_node.batching.blobs import MAX_BLOB_DATA_SIZE, unpack_blobs
from sequencer_node.batching.codec import decode_payload
from sequencer_node.batching.compression import Algorithm, compress
from sequencer_node.batching.sample import sample_chain
from sequencer_node.wire import kzg
from sequencer_node.wire.codec import CodecError, decode, encode
from sequencer_node.wire.l1calls import MAX_CALLDATA
from sequencer_node.wire.messages import DA_BLOBS, DA_CALLDATA, ZERO_HASH, BatchHeader
from tests.batcher.helpers import GENESIS_TS, KEYS, L2_CHAIN, STAKES, l2_chain

CHAIN = l2_chain(20, 5)


def header_of(da: str = "blobs") -> BatchHeader:
    d = draft_batch(CHAIN[:4], algorithm=3, da=da, max_payload=10**6)
    hashes = [bytes([1]) + bytes(31)] * len(d.blobs)
    return make_header(
        d, chain_id=L2_CHAIN, batch_number=0, parent_batch_hash=ZERO_HASH, stake_epoch=0,
        blob_hashes=hashes,
    )  # fmt: skip


def test_pick_count_waits_for_size_or_age() -> None:
    young = GENESIS_TS + 1_000  # block 1's timestamp
    args = dict(max_payload=130_044, fill_target=0.9, max_age_ms=10_000)
    assert pick_count([], now_ms=young, **args) == 0  # type: ignore[arg-type]
    # 20 small blocks are far below 90 % of a blob: wait ...
    assert pick_count(CHAIN, now_ms=young, **args) == 0  # type: ignore[arg-type]
    # ... until the oldest is max_age old: take them all
    assert pick_count(CHAIN, now_ms=young + 10_000, **args) == 20  # type: ignore[arg-type]
    # a small payload limit: cut where the estimate fills it, without waiting
    n = pick_count(CHAIN, now_ms=young, max_payload=2_000, fill_target=0.9, max_age_ms=10**9)
    assert 1 <= n < 20
    # blocks without transactions wait for the longer age
    empty = l2_chain(3, 0)
    quiet = dict(max_payload=130_044, fill_target=0.9, max_age_ms=10_000, max_age_empty_ms=60_000)
    assert pick_count(empty, now_ms=young + 10_000, **quiet) == 0  # type: ignore[arg-type]
    assert pick_count(empty, now_ms=young + 60_000, **quiet) == 3  # type: ignore[arg-type]
    assert pick_count(CHAIN[:3], now_ms=young + 10_000, **quiet) == 3  # type: ignore[arg-type]


def test_fit_draft_shrinks_to_the_limit_and_drafts_are_exact() -> None:
    full = draft_batch(CHAIN, algorithm=3, da="blobs", max_payload=10**6)
    limit = len(full.payload) // 2
    fitted = fit_draft(CHAIN, algorithm=3, da="blobs", max_payload=limit)
    assert len(fitted.payload) <= limit
    assert 1 <= fitted.last_height < 20
    assert fitted.first_height == 1
    with pytest.raises(BatchTooLarge):
        draft_batch(CHAIN, algorithm=3, da="blobs", max_payload=limit)
    # the payload decodes back to the blocks and the blobs carry the payload
    batch = decode_payload(unpack_blobs(full.blobs))
    assert batch.last_block_hash() == full.last_block_hash
    assert full.tx_count == 100
    assert full.state_root == CHAIN[-1].block.header.state_root
    calldata = draft_batch(CHAIN, algorithm=3, da="calldata", max_payload=10**6)
    assert (calldata.blobs, calldata.da_kind, calldata.payload) == ((), DA_CALLDATA, full.payload)
    assert full.da_kind == DA_BLOBS


def test_a_big_batch_needs_several_blobs_and_fills_them() -> None:
    _, blocks = sample_chain(accounts=2000, blocks=10, txs_per_block=250)
    d = fit_draft(blocks, algorithm=0, da="blobs", max_payload=6 * MAX_BLOB_DATA_SIZE)
    assert len(d.blobs) >= 2
    assert len(d.payload) > (len(d.blobs) - 1) * MAX_BLOB_DATA_SIZE
    assert 0 < d.blob_fill <= 1


def test_header_mismatch_names_the_fields() -> None:
    h = header_of()
    assert header_mismatch(h, h) is None
    other = dataclasses.replace(h, state_root=bytes(32), last_height=h.last_height)
    assert "state_root" in (header_mismatch(other, h) or "")
    other = dataclasses.replace(h, blob_hashes=(), da_kind=DA_BLOBS)
    why = header_mismatch(other, h) or ""
    assert "blob_hashes" in why


def test_proposal_round_trips_on_the_wire() -> None:
    p = BatchProposal(header_of(), 3, b"\x01\x03payload")
    assert decode(encode(p)) == p


def test_collector_needs_more_than_two_thirds_of_stake() -> None:
    h = header_of()
    c = ApprovalCollector(L2_CHAIN)
    c.track(h, STAKES)
    assert c.add(sign_approval(h, KEYS[0], L2_CHAIN)) is None
    assert c.add(sign_approval(h, KEYS[1], L2_CHAIN)) is None  # 2 of 4 equal stakes: 50 %
    # a bad signature and a signer without stake are ignored
    forged = dataclasses.replace(sign_approval(h, KEYS[2], L2_CHAIN), signature=bytes(64))
    assert c.add(forged) is None
    from sequencer_node.wire.crypto import SigningKey

    assert c.add(sign_approval(h, SigningKey.deterministic("nobody"), L2_CHAIN)) is None
    # an approval of another header does not count for this one
    other = dataclasses.replace(h, state_root=bytes(32))
    assert c.add(sign_approval(other, KEYS[2], L2_CHAIN)) is None
    cert = c.add(sign_approval(h, KEYS[2], L2_CHAIN))
    assert cert is not None
    assert {e.signer for e in cert.signatures} == {k.public_key for k in KEYS[:3]}
    from sequencer_node.wire.certificates import verify_batch_certificate

    verify_batch_certificate(cert, STAKES, L2_CHAIN)


def test_collector_counts_approvals_that_came_before_the_review() -> None:
    h = header_of()
    c = ApprovalCollector(L2_CHAIN)
    for k in KEYS[1:]:
        assert c.add(sign_approval(h, k, L2_CHAIN)) is None
    cert = c.track(h, STAKES)
    assert cert is not None
    assert len(cert.signatures) == 3
    c.forget_below(1)
    assert c.certificate(h) is None


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 20),
    limit=st.integers(300, 6000),
    algorithm=st.sampled_from([0, 1, 2, 3]),
    da=st.sampled_from(["blobs", "calldata"]),
)
def test_fit_draft_is_the_exact_draft_of_a_fitting_prefix(
    n: int, limit: int, algorithm: int, da: str
) -> None:
    """What the proposer fits, a co-signer rebuilds byte for byte from the same range."""
    blocks = CHAIN[:n]
    try:
        fitted = fit_draft(blocks, algorithm=algorithm, da=da, max_payload=limit)
    except BatchTooLarge:
        with pytest.raises(BatchTooLarge):
            draft_batch(blocks[:1], algorithm=algorithm, da=da, max_payload=limit)
        return
    assert len(fitted.payload) <= limit
    assert fitted.first_height == 1
    k = fitted.last_height
    assert k <= n
    again = draft_batch(blocks[:k], algorithm=algorithm, da=da, max_payload=10**6)
    assert again == fitted


def test_a_cosigner_checks_the_proposers_proofs_instead_of_computing_commitments(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # issue 13: co-signers recomputed every commitment (~130 ms per blob); they now verify the
    # proposer's proofs against their own blobs (a few ms per blob) and get the same result.
    encoded = [encode(b) for b in CHAIN[:8]]
    mine = prepare(encoded, 3, "blobs", MAX_CALLDATA, False)
    other = prepare([encode(b) for b in CHAIN[8:16]], 3, "blobs", MAX_CALLDATA, False)
    assert mine.commitments

    def no_commitments(blob: bytes) -> tuple[bytes, bytes]:
        raise AssertionError("a co-signer computed a commitment")

    def no_compression(data: bytes, algorithm: int) -> bytes:
        raise AssertionError("a co-signer compressed the batch again")

    header = header_of()
    monkeypatch.setattr(kzg, "blob_to_commitment_and_proof", no_commitments)
    monkeypatch.setattr(batching_codec, "compress", no_compression)
    payload = mine.draft.payload
    checked = check(encoded, payload, 3, "blobs", MAX_CALLDATA, mine.commitments, mine.proofs)
    assert checked == mine
    proposal = proposal_of(header, mine)
    assert (proposal.payload, proposal.commitments) == (payload, mine.commitments)
    # proofs that do not match this node's blobs (other blobs, swapped, missing) are refused
    bad_sets = [
        (other.commitments, other.proofs),
        (mine.commitments, other.proofs),
        (mine.commitments, ()),
        ((), ()),
        (mine.commitments + other.commitments, mine.proofs + other.proofs),
    ]
    for commitments, proofs in bad_sets:
        with pytest.raises(ProofMismatch):
            check(encoded, payload, 3, "blobs", MAX_CALLDATA, commitments, proofs)
    # calldata: nothing to check, and nothing may be claimed
    assert check(encoded, payload, 3, "calldata", MAX_CALLDATA, (), ()).commitments == ()
    with pytest.raises(ProofMismatch):
        check(encoded, payload, 3, "calldata", MAX_CALLDATA, mine.commitments, mine.proofs)


def test_a_cosigner_accepts_only_a_payload_of_its_own_blocks() -> None:
    blocks = CHAIN[:8]
    encoded = [encode(b) for b in blocks]
    mine = prepare(encoded, 3, "blobs", MAX_CALLDATA, False)
    body = batching_codec.payload_body(mine.draft.payload)
    other = draft_batch(CHAIN[8:16], algorithm=3, da="blobs", max_payload=MAX_CALLDATA).payload
    longer = draft_batch(CHAIN[:9], algorithm=3, da="blobs", max_payload=MAX_CALLDATA).payload
    header = mine.draft.payload[:2]
    bad = {  # what the payload holds
        "another range": other,
        "a longer range": longer,  # our body is a prefix of its body: refused at our size
        "a changed byte": header + compress(body[:-1] + bytes([body[-1] ^ 1]), Algorithm.BROTLI),
        "corrupt data": header + b"\x00" * 64,
        "an unknown format": b"\x09\x03" + mine.draft.payload[2:],
    }
    for payload in bad.values():
        with pytest.raises(PayloadMismatch, match="payload"):
            draft_from_payload(blocks, payload, da="blobs", max_payload=MAX_CALLDATA)
        with pytest.raises(PayloadMismatch):  # in the worker too, before any proof is checked
            check(encoded, payload, 3, "blobs", MAX_CALLDATA, mine.commitments, mine.proofs)
    with pytest.raises(BatchTooLarge):
        draft_from_payload(blocks, mine.draft.payload, da="blobs", max_payload=10)
    # Another algorithm that decodes to the same bytes is the same batch for every follower:
    # accepted, with the blobs of that payload; the proposal must name it.
    zlib_payload = bytes([mine.draft.payload[0], 1]) + compress(body, Algorithm.ZLIB)
    draft = draft_from_payload(blocks, zlib_payload, da="blobs", max_payload=MAX_CALLDATA)
    assert (draft.algorithm, draft.payload) == (1, zlib_payload)
    assert draft == draft_batch(blocks, algorithm=1, da="blobs", max_payload=MAX_CALLDATA)
    with pytest.raises(PayloadMismatch):
        check(encoded, zlib_payload, 3, "blobs", MAX_CALLDATA, mine.commitments, mine.proofs)
    # what the co-signer gets is exactly what the proposer built
    assert draft_from_payload(blocks, mine.draft.payload, da="blobs", max_payload=MAX_CALLDATA) == (
        mine.draft
    )


def test_proposals_carry_commitments_and_proofs_on_the_wire() -> None:
    p = BatchProposal(header_of(), 3, b"\x01\x03payload", (b"\x01" * 48,), (b"\x02" * 48,))
    assert decode(encode(p)) == p
    with pytest.raises(CodecError):
        decode(encode(BatchProposal(header_of(), 3, b"\x01\x03payload", (b"\x01" * 47,), ())))
    with pytest.raises(CodecError):  # a payload has at least its two header bytes
        decode(encode(BatchProposal(header_of(), 3, b"\x01")))
