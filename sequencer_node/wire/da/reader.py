"""What a reader of the DA layer checks, from the JSON a DA node serves. Pure.

A co-signer or a derivation follower asks a DA node for the blobs of a namespace in a block
(``GET /v1/blobs/{height}/{namespace}``) and trusts nothing in the answer: it takes the data root
and share count from a source it trusts (the DA header it verified, or the tuple the L1 proved),
rebuilds the namespace's shares from the returned blobs (blob shares at their ranges, padding
shares between) and checks the namespace proof. A node that withholds a blob, adds one, or
answers "nothing here" for a namespace that has data is caught.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sequencer_node.wire.da import nmt
from sequencer_node.wire.da.attest import DAPointer, verify_blob
from sequencer_node.wire.da.shares import NAMESPACE_BYTES, ShareError, namespace_shares, parse_blobs


class NotVerified(ValueError):
    """A DA answer that does not prove what it claims; the message says why."""


@dataclass(frozen=True, slots=True)
class NamespaceAnswer:
    proof: nmt.NamespaceProof
    blobs: tuple[tuple[int, int, bytes], ...]  # (start, end, data), block share indices


def _hex(v: Any, n: int | None = None) -> bytes:
    if not isinstance(v, str) or not v.startswith("0x"):
        raise NotVerified(f"expected 0x-hex, got {str(v)[:40]!r}")
    try:
        raw = bytes.fromhex(v[2:])
    except ValueError:
        raise NotVerified(f"not hex: {v[:40]!r}") from None
    if n is not None and len(raw) != n:
        raise NotVerified(f"expected {n} bytes, got {len(raw)}")
    return raw


def _int(v: Any) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise NotVerified(f"expected a non-negative integer, got {v!r}")
    return v


def answer_from_json(obj: Any) -> NamespaceAnswer:
    """Parse a ``GET /v1/blobs/{height}/{namespace}`` body (shape only; nothing verified)."""
    try:
        p = obj["proof"]
        leaf = None if p["leaf"] is None else _hex(p["leaf"], nmt.NODE_BYTES)
        proof = nmt.NamespaceProof(
            _int(p["start"]),
            _int(p["end"]),
            tuple(_hex(n, nmt.NODE_BYTES) for n in p["nodes"]),
            leaf,
        )
        blobs = tuple((_int(b["start"]), _int(b["end"]), _hex(b["data"])) for b in obj["blobs"])
    except (KeyError, TypeError) as e:
        raise NotVerified(f"malformed DA answer: {e!r}") from None
    return NamespaceAnswer(proof, blobs)


def verified_blobs(
    data_root: bytes, share_count: int, namespace: bytes, answer: NamespaceAnswer
) -> list[bytes]:
    """The blobs of ``namespace`` in the block with ``data_root`` and ``share_count``, in order,
    after checking that the answer holds all of them and nothing else. Raises
    :class:`NotVerified`."""
    if len(namespace) != NAMESPACE_BYTES:
        raise NotVerified("a namespace has 29 bytes")
    proof = answer.proof
    try:
        shares = (
            namespace_shares(namespace, proof.start, proof.end, answer.blobs)
            if proof.start < proof.end
            else []
        )
    except ShareError as e:
        raise NotVerified(f"the blobs do not fill the proven share range: {e}") from None
    if not proof.start < proof.end and answer.blobs:
        raise NotVerified("blobs given with a proof that the namespace is empty")
    if not nmt.verify_namespace(data_root, share_count, namespace, shares, proof):
        raise NotVerified("the namespace proof does not verify against the data root")
    try:
        return [data for _, _, data in parse_blobs(shares)]
    except ShareError as e:  # committed, but not blobs: the DA chain itself misbehaved
        raise NotVerified(f"the namespace's shares do not parse: {e}") from None


def pointed_blob(
    data_root: bytes, share_count: int, pointer: DAPointer, answer: NamespaceAnswer
) -> bytes:
    """The bytes of the blob ``pointer`` names, from a namespace answer checked against the
    block's ``data_root`` and ``share_count`` (the tuple the L1 proved). Raises
    :class:`NotVerified` when the answer does not prove the namespace's shares, or holds no
    blob at the pointer's share range (withheld), or one whose bytes are not the committed
    ones (forged)."""
    verified_blobs(data_root, share_count, pointer.namespace, answer)
    for start, end, data in answer.blobs:
        if (start, end) == (pointer.start, pointer.end):
            if not verify_blob(pointer, data):
                raise NotVerified("the blob at the pointer's shares is not the committed one")
            return data
    raise NotVerified(
        f"no blob at shares [{pointer.start}, {pointer.end}) of DA block {pointer.height}"
    )
