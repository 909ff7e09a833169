"""The namespaced Merkle tree: honest proofs verify; tampered ones never prove a falsehood;
withheld shares are caught by the completeness checks."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sequencer_node.wire.da import merkle, nmt
from sequencer_node.wire.da.shares import SHARE_BYTES, layout, parse_blobs
from tests.da.helpers import ns

#: Namespaces 1, 3, 5, 7 may hold blobs; the even ones are always absent (gaps and both ends).
PRESENT = [ns(i) for i in (1, 3, 5, 7)]
QUERIED = [ns(i) for i in range(9)]

blob_st = st.tuples(
    st.sampled_from(PRESENT),
    st.binary(min_size=1, max_size=2_500) | st.integers(1, 4).map(lambda n: b"\x07" * 478 * n),
)
blocks_st = st.lists(blob_st, min_size=0, max_size=6)


def truth(shares: Sequence[bytes], namespace: bytes) -> list[bytes]:
    return [s for s in shares if s[:29] == namespace]


@given(blocks_st)
def test_honest_namespace_proofs_verify_and_give_back_every_blob(
    blobs: list[tuple[bytes, bytes]],
) -> None:
    shares, _ = layout(blobs)
    root = nmt.root(shares)
    for q in QUERIED:
        proof = nmt.prove_namespace(shares, q)
        mine = shares[proof.start : proof.end]
        assert mine == truth(shares, q)
        assert nmt.verify_namespace(root, len(shares), q, mine, proof)
        assert [d for _, _, d in parse_blobs(mine)] == [d for n, d in blobs if n == q]


def _flip(b: bytes, i: int) -> bytes:
    i %= len(b)
    return b[:i] + bytes([b[i] ^ 0x01]) + b[i + 1 :]


@given(blocks_st, st.sampled_from(QUERIED), st.data())
def test_a_tampered_proof_never_proves_a_false_statement(
    blobs: list[tuple[bytes, bytes]], q: bytes, data: st.DataObject
) -> None:
    """Soundness: a flipped byte in a node, a share or the absence leaf, a missing or an extra
    node always fails; a proof moved to another range or namespace verifies only if what it
    then states is true."""
    shares, _ = layout(blobs)
    root = nmt.root(shares)
    proof = nmt.prove_namespace(shares, q)
    claim = list(shares[proof.start : proof.end])
    namespace = q
    strict = True
    kind = data.draw(st.sampled_from(["node", "share", "leaf", "drop", "extra", "ns", "range"]))
    if kind == "node" and proof.nodes:
        i = data.draw(st.integers(0, len(proof.nodes) - 1))
        nodes = list(proof.nodes)
        nodes[i] = _flip(nodes[i], data.draw(st.integers(0, nmt.NODE_BYTES - 1)))
        proof = dataclasses.replace(proof, nodes=tuple(nodes))
    elif kind == "share" and claim:
        i = data.draw(st.integers(0, len(claim) - 1))
        claim[i] = _flip(claim[i], data.draw(st.integers(0, SHARE_BYTES - 1)))
    elif kind == "leaf" and proof.leaf is not None:
        proof = dataclasses.replace(
            proof, leaf=_flip(proof.leaf, data.draw(st.integers(0, nmt.NODE_BYTES - 1)))
        )
    elif kind == "drop" and proof.nodes:
        proof = dataclasses.replace(proof, nodes=proof.nodes[1:])
    elif kind == "extra":
        proof = dataclasses.replace(proof, nodes=(*proof.nodes, root))
    elif kind == "ns":
        strict = False
        namespace = data.draw(st.sampled_from(QUERIED))
        claim = [namespace + s[29:] for s in claim]
    elif kind == "range":
        strict = False
        start = data.draw(st.integers(0, len(shares) + 1))
        end = data.draw(st.integers(start, len(shares) + 1))
        proof = dataclasses.replace(proof, start=start, end=end)
        claim = list(shares[start:end])
    else:
        return  # nothing to tamper with in this proof
    ok = nmt.verify_namespace(root, len(shares), namespace, claim, proof)
    if strict:
        assert not ok, kind
    elif ok:
        assert claim == truth(shares, namespace)


@given(blocks_st, st.sampled_from(QUERIED))
def test_any_other_root_or_size_rejects_the_proof(
    blobs: list[tuple[bytes, bytes]], q: bytes
) -> None:
    shares, _ = layout(blobs)
    root = nmt.root(shares)
    proof = nmt.prove_namespace(shares, q)
    mine = shares[proof.start : proof.end]
    other = _flip(root, 60 + len(shares) % 30)  # the hash part
    if proof.nodes or mine:  # (an empty proof rests on the root's namespace bounds alone)
        assert not nmt.verify_namespace(other, len(shares), q, mine, proof)
    if mine:
        assert not nmt.verify_namespace(nmt.EMPTY_ROOT, 0, q, mine, proof)


@given(blocks_st.filter(lambda b: len({n for n, _ in b}) >= 1), st.data())
def test_completeness_catches_withheld_shares(blobs: list[tuple[bytes, bytes]], data) -> None:
    """A server that leaves out some shares of the namespace, even with a valid inclusion
    proof for the rest, or that claims the namespace is absent, is caught."""
    shares, _ = layout(blobs)
    root = nmt.root(shares)
    q = data.draw(st.sampled_from(sorted({n for n, _ in blobs})))
    full = nmt.prove_namespace(shares, q)
    assert full.end - full.start >= 1
    # inclusion of a strict sub-range verifies as inclusion, but not as the whole namespace
    a = data.draw(st.integers(full.start, full.end - 1))
    b = data.draw(st.integers(a + 1, full.end))
    if (a, b) != (full.start, full.end):
        part = nmt.prove_range(shares, a, b)
        assert nmt.verify_range(root, len(shares), shares[a:b], part)
        withheld = nmt.NamespaceProof(a, b, part.nodes)
        assert not nmt.verify_namespace(root, len(shares), q, shares[a:b], withheld)
    # "nothing here": every absence-proof shape fails for a present namespace
    assert not nmt.verify_namespace(root, len(shares), q, [], nmt.NamespaceProof(0, 0, ()))
    for i in range(len(shares)):
        fake = nmt.NamespaceProof(
            i, i, nmt.prove_range(shares, i, i + 1).nodes, nmt.leaf_hash(shares[i])
        )
        assert not nmt.verify_namespace(root, len(shares), q, [], fake)


def test_hashing_follows_the_spec() -> None:
    """Leaf ``ns||ns||H(0x00||share)``, node ``min||max||H(0x01||l||r)``, empty root."""
    shares, _ = layout([(ns(1), b"a"), (ns(2), b"b")])
    h = hashlib.sha256
    l0 = ns(1) * 2 + h(b"\x00" + shares[0]).digest()
    l1 = ns(2) * 2 + h(b"\x00" + shares[1]).digest()
    assert nmt.leaf_hash(shares[0]) == l0
    assert nmt.root(shares) == ns(1) + ns(2) + h(b"\x01" + l0 + l1).digest()
    assert nmt.root([]) == bytes(58) + h(b"").digest()
    with pytest.raises(merkle.ProofError, match="order"):
        nmt.node_hash(l1, l0)


@given(st.integers(1, 40), st.data())
def test_range_proofs_of_every_range(n: int, data) -> None:
    shares, _ = layout([(ns(1 + i % 3), bytes([i]) * 10) for i in range(n)])
    root = nmt.root(shares)
    a = data.draw(st.integers(0, len(shares) - 1))
    b = data.draw(st.integers(a + 1, len(shares)))
    proof = nmt.prove_range(shares, a, b)
    assert nmt.verify_range(root, len(shares), shares[a:b], proof)
    assert not nmt.verify_range(root, len(shares), shares[a:b][:-1], proof)


@given(st.lists(st.binary(max_size=40), min_size=1, max_size=70), st.data())
def test_plain_merkle_inclusion(items: list[bytes], data) -> None:
    root = merkle.root([merkle.plain_leaf(x) for x in items], merkle.plain_node)
    i = data.draw(st.integers(0, len(items) - 1))
    hashed = [merkle.plain_leaf(x) for x in items]
    sib = merkle.range_siblings(hashed, i, i + 1, merkle.plain_node)
    assert merkle.verify_plain_inclusion(items[i], i, len(items), sib, root)
    assert not merkle.verify_plain_inclusion(items[i] + b"x", i, len(items), sib, root)
    if items.count(items[i]) == 1:
        j = data.draw(st.integers(0, len(items) - 1).filter(lambda j: j != i))
        assert not merkle.verify_plain_inclusion(items[i], j, len(items), sib, root)
