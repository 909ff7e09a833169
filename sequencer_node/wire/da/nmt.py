"""The namespaced Merkle tree (NMT) of Celestia, with inclusion and completeness proofs. Pure.

Every node is ``min_ns || max_ns || sha256(...)`` (29 + 29 + 32 = 90 bytes), as in the
celestiaorg/nmt specification:

* leaf: ``ns || ns || sha256(0x00 || share)``, where the share starts with its namespace ``ns``;
* inner: ``min(l.min, r.min) || max(l.max, r.max) || sha256(0x01 || l || r)``; the children must
  be in namespace order (``l.max <= r.min``), else the tree is invalid;
* the empty tree's root: ``0^29 || 0^29 || sha256("")``.

The tree is shaped as in RFC 6962 (:mod:`.merkle`). Celestia builds one NMT per row
and column of an erasure-coded square and ignores the parity namespace in ``max``; this mock has
no erasure coding, so a block's data root is the NMT root over all its shares (docs/da.md).

A **namespace proof** answers "all shares of namespace N in the block with this root":

* N present: the shares ``[start, end)`` and a range proof. It is *complete* when every proof
  node left of the range has ``max < N`` and every node right of it has ``min > N``: since the
  leaves are sorted, no share of N can hide under them.
* N absent but inside the root's namespace range: the hash of the first leaf with a larger
  namespace and its range proof; the same bound checks show nothing of N sits anywhere.
* N outside the root's range (or an empty tree): no nodes; the root's bounds are the proof.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from sequencer_node.wire.da import merkle
from sequencer_node.wire.da.merkle import ProofError
from sequencer_node.wire.da.shares import NAMESPACE_BYTES, SHARE_BYTES, commitment_spans

NS = NAMESPACE_BYTES
NODE_BYTES = 2 * NS + merkle.HASH_BYTES
EMPTY_ROOT = bytes(2 * NS) + hashlib.sha256(b"").digest()


def min_ns(node: bytes) -> bytes:
    return node[:NS]


def max_ns(node: bytes) -> bytes:
    return node[NS : 2 * NS]


def leaf_hash(share: bytes) -> bytes:
    ns = share[:NS]
    return ns + ns + hashlib.sha256(merkle.LEAF_PREFIX + share).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The parent of two nodes; raises :class:`ProofError` if they are out of namespace order
    or malformed (so a forged proof cannot smuggle in an unordered node)."""
    if len(left) != NODE_BYTES or len(right) != NODE_BYTES:
        raise ProofError(f"a namespaced node has {NODE_BYTES} bytes")
    if max_ns(left) > min_ns(right):
        raise ProofError("children out of namespace order")
    if min_ns(left) > max_ns(left) or min_ns(right) > max_ns(right):
        raise ProofError("a node whose min namespace exceeds its max")
    lo = min(min_ns(left), min_ns(right))
    hi = max(max_ns(left), max_ns(right))
    return lo + hi + hashlib.sha256(merkle.NODE_PREFIX + left + right).digest()


def root(shares: Sequence[bytes]) -> bytes:
    """The NMT root of ``shares`` (which must be sorted by namespace)."""
    if not shares:
        return EMPTY_ROOT
    return merkle.root([leaf_hash(s) for s in shares], node_hash)


def _leaves_inside(shares: Sequence[bytes], start: int) -> merkle.Inside:
    def inside(lo: int, hi: int) -> bytes | None:
        return leaf_hash(shares[lo - start]) if hi - lo == 1 else None

    return inside


# --- share-range proofs --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RangeProof:
    """Proof that shares ``[start, end)`` are in a tree: the in-order sibling nodes."""

    start: int
    end: int
    nodes: tuple[bytes, ...]


def prove_range(shares: Sequence[bytes], start: int, end: int) -> RangeProof:
    leaves = [leaf_hash(s) for s in shares]
    return RangeProof(start, end, tuple(merkle.range_siblings(leaves, start, end, node_hash)))


def _reconstruct(total: int, proof: RangeProof, inside: merkle.Inside) -> merkle.Reconstruction:
    if any(len(n) != NODE_BYTES for n in proof.nodes):
        raise ProofError(f"every proof node has {NODE_BYTES} bytes")
    return merkle.reconstruct(total, proof.start, proof.end, proof.nodes, inside, node_hash)


def verify_range(data_root: bytes, total: int, shares: Sequence[bytes], proof: RangeProof) -> bool:
    """True iff ``shares`` are exactly shares ``[start, end)`` of the ``total``-share tree with
    ``data_root`` (inclusion only; see :func:`verify_namespace` for completeness)."""
    if len(shares) != proof.end - proof.start or any(len(s) != SHARE_BYTES for s in shares):
        return False
    try:
        got = _reconstruct(total, proof, _leaves_inside(shares, proof.start))
    except ProofError:
        return False
    return got.root == data_root


# --- namespace proofs ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NamespaceProof:
    """All of one namespace in a block (see the module docstring for the three cases).

    Present: ``start < end``, ``nodes`` prove ``[start, end)``, ``leaf`` is ``None``.
    Absent inside the root's range: ``start == end`` is the index of the first leaf with a larger
    namespace, ``leaf`` is that leaf's hash and ``nodes`` prove ``[start, start + 1)``.
    Outside the root's range: ``start == end == 0``, no nodes, no leaf.
    """

    start: int
    end: int
    nodes: tuple[bytes, ...]
    leaf: bytes | None = None


def prove_namespace(shares: Sequence[bytes], ns: bytes) -> NamespaceProof:
    """The namespace proof of ``ns`` in the (sorted) ``shares``."""
    first = next((i for i, s in enumerate(shares) if s[:NS] >= ns), len(shares))
    last = first
    while last < len(shares) and shares[last][:NS] == ns:
        last += 1
    if first < last:
        return NamespaceProof(first, last, prove_range(shares, first, last).nodes)
    if first == 0 or first == len(shares):  # ns below or above every share
        return NamespaceProof(0, 0, ())
    proof = prove_range(shares, first, first + 1)
    return NamespaceProof(first, first, proof.nodes, leaf_hash(shares[first]))


def _complete(rec: merkle.Reconstruction, ns: bytes) -> bool:
    return all(max_ns(n) < ns for n in rec.left) and all(min_ns(n) > ns for n in rec.right)


def verify_namespace(
    data_root: bytes,
    total: int,
    ns: bytes,
    shares: Sequence[bytes],
    proof: NamespaceProof,
) -> bool:
    """True iff ``shares`` are *all* the shares of namespace ``ns`` in the ``total``-share tree
    with ``data_root``, in order (an empty list: the block has none of ``ns``)."""
    if len(ns) != NS or len(data_root) != NODE_BYTES:
        return False
    if any(len(s) != SHARE_BYTES or s[:NS] != ns for s in shares):
        return False
    try:
        if proof.start < proof.end:
            if proof.leaf is not None or len(shares) != proof.end - proof.start:
                return False
            rng = RangeProof(proof.start, proof.end, proof.nodes)
            rec = _reconstruct(total, rng, _leaves_inside(shares, proof.start))
            return rec.root == data_root and _complete(rec, ns)
        if shares or proof.start != proof.end:
            return False
        if proof.leaf is None:
            outside = ns < min_ns(data_root) or ns > max_ns(data_root)
            empty = total == 0 and data_root == EMPTY_ROOT
            return not proof.nodes and proof.start == 0 and (empty or outside)
        leaf = proof.leaf
        if len(leaf) != NODE_BYTES or min_ns(leaf) != max_ns(leaf) or min_ns(leaf) <= ns:
            return False
        rng = RangeProof(proof.start, proof.start + 1, proof.nodes)
        rec = _reconstruct(total, rng, lambda lo, hi: leaf if hi - lo == 1 else None)
        return rec.root == data_root and _complete(rec, ns)
    except ProofError:
        return False


# --- share commitments ---------------------------------------------------------------------


def subtree_roots(shares: Sequence[bytes]) -> list[bytes]:
    """The NMT roots of a blob's commitment subtrees (``shares`` are the blob's own)."""
    return [root(shares[lo:hi]) for lo, hi in commitment_spans(0, len(shares))]


def commitment_of_roots(roots: Sequence[bytes]) -> bytes:
    return merkle.root([merkle.plain_leaf(r) for r in roots], merkle.plain_node)


def share_commitment(shares: Sequence[bytes]) -> bytes:
    """The 32-byte commitment to a blob: plain Merkle root over its subtree roots."""
    return commitment_of_roots(subtree_roots(shares))
