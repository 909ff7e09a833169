"""Binary Merkle trees shaped as in RFC 6962, and range proofs over them. Pure.

The shape: a tree of ``n > 1`` leaves splits at ``k``, the largest power of two below ``n``;
the left subtree holds leaves ``[0, k)`` and the right ``[k, n)``. Every power-of-two block of
leaves that starts at a multiple of its size and lies inside ``[0, n)`` is a node of this tree,
which is what lets a blob aligned to its subtree width be proven by a few subtree roots.

The functions here take the node-combining function as an argument, so the plain SHA-256 tree
(:func:`plain_leaf`, :func:`plain_node`) and the namespaced tree of :mod:`.nmt` share
one implementation of proof generation and verification.

A *range proof* for leaves ``[start, end)`` of a tree of ``total`` leaves is the list of roots of
the maximal subtrees disjoint from the range, in left-to-right (in-order) order: exactly what is
needed, together with the range's own content, to recompute the root.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
HASH_BYTES = 32

Combine = Callable[[bytes, bytes], bytes]
#: Given a node span ``[lo, hi)`` inside the proven range: its hash, or ``None`` to split it.
Inside = Callable[[int, int], bytes | None]


class ProofError(ValueError):
    """A proof that does not fit the tree it claims to be about."""


def split_point(n: int) -> int:
    """The largest power of two strictly below ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def plain_leaf(data: bytes) -> bytes:
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def plain_node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def plain_empty_root() -> bytes:
    return hashlib.sha256(b"").digest()


def root(leaves: Sequence[bytes], combine: Combine) -> bytes:
    """Root over already-hashed ``leaves`` (at least one)."""
    if not leaves:
        raise ValueError("a tree needs at least one leaf")
    return _root(leaves, 0, len(leaves), combine)


def _root(leaves: Sequence[bytes], lo: int, hi: int, combine: Combine) -> bytes:
    if hi - lo == 1:
        return leaves[lo]
    k = split_point(hi - lo)
    return combine(_root(leaves, lo, lo + k, combine), _root(leaves, lo + k, hi, combine))


def range_siblings(leaves: Sequence[bytes], start: int, end: int, combine: Combine) -> list[bytes]:
    """The range proof of ``[start, end)`` over already-hashed ``leaves``."""
    if not 0 <= start < end <= len(leaves):
        raise ValueError(f"range [{start}, {end}) is not inside a tree of {len(leaves)} leaves")
    out: list[bytes] = []

    def walk(lo: int, hi: int) -> None:
        if hi <= start or lo >= end:
            out.append(_root(leaves, lo, hi, combine))
        elif start <= lo and hi <= end:
            return
        else:
            k = split_point(hi - lo)
            walk(lo, lo + k)
            walk(lo + k, hi)

    walk(0, len(leaves))
    return out


@dataclass(frozen=True, slots=True)
class Reconstruction:
    """A root recomputed from a range proof, with the proof nodes left and right of the range
    (the namespaced tree checks their namespace bounds for completeness)."""

    root: bytes
    left: tuple[bytes, ...]
    right: tuple[bytes, ...]


def reconstruct(
    total: int,
    start: int,
    end: int,
    siblings: Sequence[bytes],
    inside: Inside,
    combine: Combine,
) -> Reconstruction:
    """Recompute the root of a ``total``-leaf tree from the proof of ``[start, end)``.

    ``inside(lo, hi)`` supplies the hash of a node wholly inside the range (or ``None`` to have
    it split further). Raises :class:`ProofError` when the proof has too few or too many
    siblings, or when ``inside`` cannot supply a single leaf.
    """
    if not 0 <= start < end <= total:
        raise ProofError(f"range [{start}, {end}) is not inside a tree of {total} leaves")
    queue = list(siblings)
    pos = 0
    left: list[bytes] = []
    right: list[bytes] = []

    def walk(lo: int, hi: int) -> bytes:
        nonlocal pos
        if hi <= start or lo >= end:
            if pos >= len(queue):
                raise ProofError("the proof has too few nodes")
            node = queue[pos]
            pos += 1
            (left if hi <= start else right).append(node)
            return node
        if start <= lo and hi <= end:
            got = inside(lo, hi)
            if got is not None:
                return got
            if hi - lo == 1:
                raise ProofError(f"no hash for leaf {lo} of the range")
        k = split_point(hi - lo)
        a = walk(lo, lo + k)
        return combine(a, walk(lo + k, hi))

    computed = walk(0, total)
    if pos != len(queue):
        raise ProofError(f"the proof has {len(queue) - pos} nodes too many")
    return Reconstruction(computed, tuple(left), tuple(right))


def verify_plain_inclusion(
    leaf: bytes, index: int, total: int, siblings: Sequence[bytes], expected_root: bytes
) -> bool:
    """True iff ``leaf`` (unhashed) is leaf ``index`` of the plain tree with ``expected_root``."""
    if not 0 <= index < total or any(len(s) != HASH_BYTES for s in siblings):
        return False
    hashed = plain_leaf(leaf)
    try:
        got = reconstruct(
            total,
            index,
            index + 1,
            siblings,
            lambda lo, hi: hashed if hi - lo == 1 else None,
            plain_node,
        )
    except ProofError:
        return False
    return got.root == expected_root
