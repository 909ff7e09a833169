"""KZG commitments, proofs and batch verification with ``ckzg`` (c-kzg-4844).

The trusted setup (the Ethereum ceremony's output) ships as package data and is loaded once
per process, lazily: loading takes about 1.6 s. Every function here is plain and synchronous
and holds the GIL for milliseconds to tens of milliseconds per blob, so callers on an event
loop must run them in a thread or a worker process.

``ckzg`` raises on some invalid input (a field element >= the modulus, a point not on the
curve): :func:`verify_blobs_batch` turns that into an invalid result, never an exception.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from importlib import resources
from typing import Any

import ckzg

from sequencer_node.wire.blobs import (
    BYTES_PER_COMMITMENT,
    BYTES_PER_PROOF,
    check_blob_shape,
    kzg_to_versioned_hash,
)

_setup: Any = None
_setup_lock = threading.Lock()


def trusted_setup() -> Any:
    """The loaded ckzg settings (loaded on first use, then cached for the process)."""
    global _setup
    if _setup is None:
        with _setup_lock:
            if _setup is None:
                ref = resources.files("sequencer_node") / "data" / "kzg_trusted_setup.txt"
                with resources.as_file(ref) as path:
                    _setup = ckzg.load_trusted_setup(str(path), 0)
    return _setup


def blob_to_commitment_and_proof(blob: bytes) -> tuple[bytes, bytes]:
    """The 48-byte KZG commitment of ``blob`` and its 48-byte blob proof (about 90 ms)."""
    problem = check_blob_shape(blob)
    if problem is not None:
        raise ValueError(problem)
    ts = trusted_setup()
    commitment: bytes = ckzg.blob_to_kzg_commitment(blob, ts)
    proof: bytes = ckzg.compute_blob_kzg_proof(blob, commitment, ts)
    return commitment, proof


@dataclass(frozen=True, slots=True)
class BlobCheck:
    """Outcome of :func:`verify_blobs_batch`: ``error`` is None when every blob is valid."""

    error: str | None
    versioned_hashes: tuple[bytes, ...] = ()

    @property
    def ok(self) -> bool:
        return self.error is None


def verify_blobs_batch(
    blobs: tuple[bytes, ...] | list[bytes],
    commitments: tuple[bytes, ...] | list[bytes],
    proofs: tuple[bytes, ...] | list[bytes],
) -> BlobCheck:
    """Check sizes, field elements and KZG proofs of a blob sidecar set, in one batch call.

    Returns the versioned hashes on success, or the first problem found as a sentence.
    """
    if not (len(blobs) == len(commitments) == len(proofs)):
        return BlobCheck(
            f"{len(blobs)} blobs, {len(commitments)} commitments and {len(proofs)} proofs: "
            "each blob needs exactly one commitment and one proof"
        )
    for i, (blob, c, p) in enumerate(zip(blobs, commitments, proofs, strict=True)):
        problem = check_blob_shape(blob)
        if problem is not None:
            return BlobCheck(f"blob {i}: {problem}")
        if len(c) != BYTES_PER_COMMITMENT:
            return BlobCheck(f"blob {i}: a commitment has 48 bytes, got {len(c)}")
        if len(p) != BYTES_PER_PROOF:
            return BlobCheck(f"blob {i}: a proof has 48 bytes, got {len(p)}")
    try:
        ok = ckzg.verify_blob_kzg_proof_batch(
            b"".join(blobs), b"".join(commitments), b"".join(proofs), trusted_setup()
        )
    except (RuntimeError, ValueError) as e:
        return BlobCheck(f"KZG verification failed: invalid commitment or proof ({e})")
    if not ok:
        return BlobCheck("KZG proof does not verify: the commitment or proof is wrong")
    return BlobCheck(None, tuple(kzg_to_versioned_hash(c) for c in commitments))


__all__ = ["BlobCheck", "blob_to_commitment_and_proof", "trusted_setup", "verify_blobs_batch"]
