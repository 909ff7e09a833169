"""Blobstream-style attestations and DA pointers: what the L1 will check. Pure.

* A **data root tuple** is ``(height, share_count, data_root, base_fee)`` of one DA block.
  Binding the share count lets a verifier know the tree's shape (the share range of a pointer
  is then unambiguous). The block's base fee per gas is this mock's addition to Blobstream's
  tuple: with it the L1 knows what the DA layer charged a pointed blob (every blob of a block
  pays ``pfb.blob_fee(shares, base_fee)``), so the L2's L1 fee vault can pay it.
* A **data commitment** attests the DA blocks ``[start, end)``: the plain RFC 6962 Merkle root
  over their tuples, numbered by a nonce that increases by one per attestation. The DA
  committee (Ed25519 keys and stakes, from the DA genesis) signs
  ``seqnet/da/v1/data-commitment || 0x00 || da_chain_id || nonce || start || end || tuple_root``.
  :func:`verify_attestation` accepts it when distinct committee members holding more than 2/3 of
  the committee's stake signed.
* A **DA pointer** ``(height, namespace, start, end, commitment)`` names a blob: its shares
  ``[start, end)`` in block ``height`` and its share commitment (:mod:`sequencer_node.wire.da.nmt`).
  :func:`verify_pointer` checks it against an attested data commitment, without the blob: the
  tuple's inclusion in the attested root, then the blob's subtree roots (all of the pointer's
  namespace, hashing to the commitment) placed at ``[start, end)`` with the range proof's
  siblings give the tuple's data root.
* :func:`verify_blob` is the reader's side: the blob's bytes give the pointer's commitment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from sequencer_node.wire.codec import U64, U128, Bytes, Hash32, MaxItems, wire_message
from sequencer_node.wire.crypto import PUBLIC_KEY_BYTES, verify
from sequencer_node.wire.da import merkle, nmt
from sequencer_node.wire.da.merkle import ProofError
from sequencer_node.wire.da.shares import (
    NAMESPACE_BYTES,
    ShareError,
    blob_shares,
    commitment_spans,
    subtree_width,
)

COMMITMENT_DOMAIN = b"seqnet/da/v1/data-commitment\x00"
#: Most DA blocks one attestation may cover (bounds the tuple proof).
MAX_ATTESTED_RANGE = 10_000


#: Bounds of the wire forms (a pointer proof of the largest blob in the largest block fits).
NmtNode = Annotated[bytes, Bytes(nmt.NODE_BYTES, nmt.NODE_BYTES)]
Namespace = Annotated[bytes, Bytes(NAMESPACE_BYTES, NAMESPACE_BYTES)]
MAX_PROOF_NODES = 64
MAX_SUBTREE_ROOTS = 256


class AttestationError(ValueError):
    """An attestation or a pointer proof that does not verify; the message says why."""


@wire_message(70)
@dataclass(frozen=True, slots=True)
class DataRootTuple:
    height: U64
    share_count: U64
    data_root: NmtNode
    #: The block's base fee per gas on the DA chain (what each of its blobs paid per gas).
    base_fee: U128 = 0

    def encode(self) -> bytes:
        return (
            self.height.to_bytes(8, "big")
            + self.share_count.to_bytes(8, "big")
            + self.data_root
            + self.base_fee.to_bytes(16, "big")
        )


def tuple_root(tuples: Sequence[DataRootTuple]) -> bytes:
    return merkle.root([merkle.plain_leaf(t.encode()) for t in tuples], merkle.plain_node)


@dataclass(frozen=True, slots=True)
class DataCommitment:
    nonce: int
    start: int  # first DA height covered
    end: int  # exclusive
    tuple_root: bytes

    def signing_bytes(self, da_chain_id: int) -> bytes:
        return (
            COMMITMENT_DOMAIN
            + da_chain_id.to_bytes(8, "big")
            + self.nonce.to_bytes(8, "big")
            + self.start.to_bytes(8, "big")
            + self.end.to_bytes(8, "big")
            + self.tuple_root
        )


@dataclass(frozen=True, slots=True)
class Attestation:
    commitment: DataCommitment
    #: (committee member's public key, its Ed25519 signature of the signing bytes)
    signatures: tuple[tuple[bytes, bytes], ...]


@dataclass(frozen=True, slots=True)
class Committee:
    members: tuple[tuple[bytes, int], ...]  # (public key, stake)

    def __post_init__(self) -> None:
        keys = [k for k, _ in self.members]
        if len(set(keys)) != len(keys):
            raise ValueError("a committee member appears twice")
        if any(len(k) != PUBLIC_KEY_BYTES or s <= 0 for k, s in self.members):
            raise ValueError("committee members are 32-byte keys with positive stake")

    @property
    def total_stake(self) -> int:
        return sum(s for _, s in self.members)


def make_commitment(nonce: int, tuples: Sequence[DataRootTuple]) -> DataCommitment:
    """The data commitment of consecutive tuples."""
    if not tuples:
        raise ValueError("a data commitment covers at least one block")
    heights = [t.height for t in tuples]
    if heights != list(range(heights[0], heights[0] + len(heights))):
        raise ValueError("a data commitment covers consecutive heights")
    return DataCommitment(nonce, heights[0], heights[-1] + 1, tuple_root(tuples))


def verify_attestation(att: Attestation, committee: Committee, da_chain_id: int) -> None:
    """Raise :class:`AttestationError` unless more than 2/3 of the committee's stake signed."""
    c = att.commitment
    if not 0 <= c.start < c.end or c.end - c.start > MAX_ATTESTED_RANGE:
        raise AttestationError(f"range [{c.start}, {c.end}) is empty or longer than allowed")
    if len(c.tuple_root) != merkle.HASH_BYTES:
        raise AttestationError("a tuple root has 32 bytes")
    stakes = dict(committee.members)
    msg = c.signing_bytes(da_chain_id)
    seen: set[bytes] = set()
    signed = 0
    for key, sig in att.signatures:
        if key in seen:
            raise AttestationError(f"signer {key.hex()[:16]} appears twice")
        seen.add(key)
        if key not in stakes:
            raise AttestationError(f"signer {key.hex()[:16]} is not in the DA committee")
        if not verify(key, sig, msg):
            raise AttestationError(f"bad signature by {key.hex()[:16]}")
        signed += stakes[key]
    if 3 * signed <= 2 * committee.total_stake:
        raise AttestationError(
            f"signers hold {signed} of {committee.total_stake} stake; more than 2/3 is needed"
        )


# --- pointers ------------------------------------------------------------------------------


@wire_message(71)
@dataclass(frozen=True, slots=True)
class DAPointer:
    """Where a batch's data sits on the DA layer (an external-DA batch header carries it)."""

    height: U64
    namespace: Namespace
    start: U64  # the blob's share range in that block
    end: U64
    commitment: Hash32


@wire_message(72)
@dataclass(frozen=True, slots=True)
class PointerProof:
    root_tuple: DataRootTuple
    #: plain range proof of the tuple in the attestation
    tuple_siblings: Annotated[tuple[Hash32, ...], MaxItems(MAX_PROOF_NODES)]
    #: the blob's commitment subtree roots, in order
    subtree_roots: Annotated[tuple[NmtNode, ...], MaxItems(MAX_SUBTREE_ROOTS)]
    #: NMT range proof of [start, end) by those subtrees
    range_nodes: Annotated[tuple[NmtNode, ...], MaxItems(MAX_PROOF_NODES)]


def verify_pointer(pointer: DAPointer, proof: PointerProof, attested: DataCommitment) -> None:
    """Raise :class:`AttestationError` unless ``pointer`` names shares of an attested block.

    ``attested`` must come from a verified attestation (the L1 stores those it accepted).
    """
    t = proof.root_tuple
    if t.height != pointer.height or not attested.start <= t.height < attested.end:
        raise AttestationError(
            f"DA height {pointer.height} is not covered by attestation {attested.nonce} "
            f"[{attested.start}, {attested.end})"
        )
    if len(t.data_root) != nmt.NODE_BYTES or len(pointer.namespace) != NAMESPACE_BYTES:
        raise AttestationError("malformed data root or namespace")
    if not merkle.verify_plain_inclusion(
        t.encode(),
        t.height - attested.start,
        attested.end - attested.start,
        proof.tuple_siblings,
        attested.tuple_root,
    ):
        raise AttestationError("the data root tuple is not in the attested tuple root")
    _verify_range(pointer, proof, t)


def _verify_range(pointer: DAPointer, proof: PointerProof, t: DataRootTuple) -> None:
    n = pointer.end - pointer.start
    if not 0 <= pointer.start < pointer.end <= t.share_count:
        raise AttestationError(f"share range outside the block's {t.share_count} shares")
    if pointer.start % subtree_width(n):
        raise AttestationError("a blob starts at a multiple of its subtree width")
    spans = commitment_spans(pointer.start, n)
    roots = proof.subtree_roots
    if len(roots) != len(spans) or any(len(r) != nmt.NODE_BYTES for r in roots):
        raise AttestationError(f"expected {len(spans)} subtree roots")
    ns = pointer.namespace
    if any(nmt.min_ns(r) != ns or nmt.max_ns(r) != ns for r in roots):
        raise AttestationError("a subtree root holds shares of another namespace")
    if nmt.commitment_of_roots(roots) != pointer.commitment:
        raise AttestationError("the subtree roots do not hash to the pointer's commitment")
    by_span = dict(zip(spans, roots, strict=True))
    try:
        rec = merkle.reconstruct(
            t.share_count,
            pointer.start,
            pointer.end,
            proof.range_nodes,
            lambda lo, hi: by_span.get((lo, hi)),
            nmt.node_hash,
        )
    except ProofError as e:
        raise AttestationError(f"bad range proof: {e}") from None
    if rec.root != t.data_root:
        raise AttestationError("the range proof does not give the attested data root")


def prove_pointer(
    block_shares: Sequence[bytes],
    height: int,
    start: int,
    end: int,
    tuples: Sequence[DataRootTuple],
    attested: DataCommitment,
) -> tuple[DAPointer, PointerProof]:
    """The pointer to the blob at shares ``[start, end)`` of block ``height`` and its proof
    against ``attested`` (whose tuples are ``tuples``). For the DA node and tests."""
    mine = block_shares[start:end]
    ns = mine[0][:NAMESPACE_BYTES]
    spans = commitment_spans(start, end - start)
    roots = tuple(nmt.root(block_shares[lo:hi]) for lo, hi in spans)
    leaves = [nmt.leaf_hash(s) for s in block_shares]
    nodes = tuple(merkle.range_siblings(leaves, start, end, nmt.node_hash))
    hashed = [merkle.plain_leaf(x.encode()) for x in tuples]
    i = height - attested.start
    tuple_proof = tuple(merkle.range_siblings(hashed, i, i + 1, merkle.plain_node))
    pointer = DAPointer(height, ns, start, end, nmt.commitment_of_roots(roots))
    return pointer, PointerProof(tuples[i], tuple_proof, roots, nodes)


def verify_blob(pointer: DAPointer, data: bytes) -> bool:
    """True iff ``data`` is the blob ``pointer`` commits to (what a reader checks)."""
    try:
        shares = blob_shares(pointer.namespace, data)
    except ShareError:
        return False
    return (
        len(shares) == pointer.end - pointer.start
        and nmt.share_commitment(shares) == pointer.commitment
    )


# --- schedule and JSON forms ---------------------------------------------------------------


def attestation_range(nonce: int, window: int) -> tuple[int, int]:
    """The DA heights ``[start, end)`` attestation ``nonce`` covers: windows of ``window``
    blocks from height 1 (the genesis block holds no data)."""
    return 1 + nonce * window, 1 + (nonce + 1) * window


def attestation_nonce(height: int, window: int) -> int:
    """The nonce of the attestation covering DA ``height`` (``>= 1``)."""
    return (height - 1) // window


def attested_nonces(head: int, window: int) -> int:
    """How many attestations are complete when the DA head is ``head``."""
    return max(0, head // window)


def _h(b: bytes) -> str:
    return "0x" + b.hex()


def _b(v: Any, n: int | None = None) -> bytes:
    if not isinstance(v, str) or not v.startswith("0x"):
        raise ValueError(f"expected 0x-hex, got {v!r}")
    raw = bytes.fromhex(v[2:])
    if n is not None and len(raw) != n:
        raise ValueError(f"expected {n} bytes, got {len(raw)}")
    return raw


def _i(v: Any, bits: int = 64) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < 1 << bits:
        raise ValueError(f"expected a non-negative {bits}-bit integer, got {v!r}")
    return v


def _decimal(v: Any, bits: int) -> int:
    """A large integer's JSON form: a decimal string (docs/da.md)."""
    if not isinstance(v, str) or not v.isascii() or not v.isdigit() or len(v) > 40:
        raise ValueError(f"expected a decimal string, got {v!r}")
    return _i(int(v), bits)


def attestation_to_json(att: Attestation) -> dict[str, Any]:
    c = att.commitment
    return {
        "nonce": c.nonce,
        "start": c.start,
        "end": c.end,
        "tupleRoot": _h(c.tuple_root),
        "signatures": [{"key": _h(k), "signature": _h(s)} for k, s in att.signatures],
    }


def attestation_from_json(obj: Any) -> Attestation:
    """Raises ValueError (or KeyError/TypeError on a wrong shape)."""
    c = DataCommitment(_i(obj["nonce"]), _i(obj["start"]), _i(obj["end"]), _b(obj["tupleRoot"], 32))
    sigs = tuple((_b(s["key"], 32), _b(s["signature"], 64)) for s in obj["signatures"])
    return Attestation(c, sigs)


def pointer_to_json(p: DAPointer) -> dict[str, Any]:
    return {
        "height": p.height,
        "namespace": _h(p.namespace),
        "start": p.start,
        "end": p.end,
        "commitment": _h(p.commitment),
    }


def pointer_from_json(obj: Any) -> DAPointer:
    return DAPointer(
        _i(obj["height"]),
        _b(obj["namespace"], NAMESPACE_BYTES),
        _i(obj["start"]),
        _i(obj["end"]),
        _b(obj["commitment"], 32),
    )


def pointer_proof_to_json(p: PointerProof) -> dict[str, Any]:
    t = p.root_tuple
    return {
        "tuple": {
            "height": t.height,
            "shareCount": t.share_count,
            "dataRoot": _h(t.data_root),
            "baseFeePerGas": str(t.base_fee),
        },
        "tupleSiblings": [_h(x) for x in p.tuple_siblings],
        "subtreeRoots": [_h(x) for x in p.subtree_roots],
        "rangeNodes": [_h(x) for x in p.range_nodes],
    }


def pointer_proof_from_json(obj: Any) -> PointerProof:
    t = obj["tuple"]
    return PointerProof(
        DataRootTuple(
            _i(t["height"]),
            _i(t["shareCount"]),
            _b(t["dataRoot"], nmt.NODE_BYTES),
            _decimal(t["baseFeePerGas"], 128),
        ),
        tuple(_b(x, merkle.HASH_BYTES) for x in obj["tupleSiblings"]),
        tuple(_b(x, nmt.NODE_BYTES) for x in obj["subtreeRoots"]),
        tuple(_b(x, nmt.NODE_BYTES) for x in obj["rangeNodes"]),
    )
