"""Batch preparation (encode, compress, pack, KZG) in a worker process: :func:`prepare` for
the proposer (compresses, computes commitments and proofs), :func:`check` for a co-signer
(checks that the proposer's payload decompresses to its own blocks, and the proposer's proofs
against the blobs of that payload).

ckzg holds the GIL for about 87 ms per blob and brotli for tens of milliseconds per batch,
so neither may run on the node's event loop, nor in a thread of the node's process (the GIL
would stall consensus just the same). :class:`KzgWorker` runs them in a
:class:`~sequencer_node.system.worker_pool.WorkerPool` whose workers load the trusted setup once, at
start (``processes=0``: a Trio thread, for tests and tools).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import trio

from sequencer_node.batcher.builder import (
    Draft,
    PayloadMismatch,
    draft_batch,
    draft_from_payload,
    fit_draft,
)
from sequencer_node.system.worker_pool import WorkerPool
from sequencer_node.wire import kzg
from sequencer_node.wire.blobs import kzg_to_versioned_hash
from sequencer_node.wire.codec import decode
from sequencer_node.wire.messages import CertifiedBlock

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Prepared:
    """A draft and the KZG commitments and proofs of its blobs (empty for calldata)."""

    draft: Draft
    commitments: tuple[bytes, ...]
    proofs: tuple[bytes, ...]

    @property
    def blob_hashes(self) -> tuple[bytes, ...]:
        return tuple(kzg_to_versioned_hash(c) for c in self.commitments)


def commit_blobs(blobs: Sequence[bytes]) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
    """Commitments and proofs of ``blobs`` (runs in the worker)."""
    pairs = [kzg.blob_to_commitment_and_proof(b) for b in blobs]
    return tuple(c for c, _ in pairs), tuple(p for _, p in pairs)


class ProofMismatch(ValueError):
    """A proposer's KZG commitments and proofs do not match this node's own blobs."""


def check(
    encoded_blocks: Sequence[bytes],
    payload: bytes,
    algorithm: int,
    da: str,
    max_payload: int,
    commitments: Sequence[bytes],
    proofs: Sequence[bytes],
) -> Prepared:
    """A co-signer's rebuild: its own encoding of the blocks, the proposer's compressed
    ``payload`` accepted only if it decompresses to exactly that (compressing it again cost
    ~60 % of the rebuild: :func:`~sequencer_node.batcher.builder.draft_from_payload`), the
    blobs packed from it, and the proposer's ``commitments`` checked against those blobs with
    their ``proofs`` in one batch verification (a few ms per blob, instead of ~130 ms to
    compute a commitment and proof). KZG commitments bind: commitments that verify against
    these blobs are their commitments, so the result is what :func:`prepare` would return for
    the proposer's payload.

    Raises:
        PayloadMismatch: the payload is not a compression of our blocks, or names another
            algorithm than ``algorithm``.
        ProofMismatch: a count differs or a proof does not verify against the blobs.
    """
    blocks = [decode(b, CertifiedBlock) for b in encoded_blocks]
    draft = draft_from_payload(blocks, payload, da=da, max_payload=max_payload)
    if draft.algorithm != algorithm:
        raise PayloadMismatch(
            f"the payload is compressed with algorithm {draft.algorithm}, the proposal says "
            f"{algorithm}"
        )
    if draft.blobs or commitments or proofs:
        result = kzg.verify_blobs_batch(draft.blobs, tuple(commitments), tuple(proofs))
        if not result.ok:
            raise ProofMismatch(f"the proposer's KZG proofs do not match our blobs: {result.error}")
    return Prepared(draft, tuple(commitments), tuple(proofs))


def prepare(
    encoded_blocks: Sequence[bytes], algorithm: int, da: str, max_payload: int, fit: bool
) -> Prepared:
    """Decode the blocks, build the draft (fitting a prefix when ``fit``), commit to blobs.

    Blocks travel as their canonical encoding: cheap to send between processes and exactly
    what the node stored.
    """
    blocks = [decode(b, CertifiedBlock) for b in encoded_blocks]
    build = fit_draft if fit else draft_batch
    draft = build(blocks, algorithm=algorithm, da=da, max_payload=max_payload)
    commitments, proofs = commit_blobs(draft.blobs)
    return Prepared(draft, commitments, proofs)


def prepare_from_payload(
    encoded_blocks: Sequence[bytes], payload: bytes, da: str, max_payload: int
) -> Prepared:
    """:func:`prepare` for a payload this node approved before (its records keep it): the
    blocks' own encoding checked against it, no compression, commitments computed."""
    blocks = [decode(b, CertifiedBlock) for b in encoded_blocks]
    draft = draft_from_payload(blocks, payload, da=da, max_payload=max_payload)
    commitments, proofs = commit_blobs(draft.blobs)
    return Prepared(draft, commitments, proofs)


class KzgWorker:
    """``async with KzgWorker() as w: prepared = await w.prepare(...)``."""

    def __init__(self, processes: int = 1) -> None:
        self._pool = WorkerPool(processes, initializer=kzg.trusted_setup)

    def start(self) -> None:
        self._pool.start()

    def close(self) -> None:
        self._pool.close()

    async def __aenter__(self) -> KzgWorker:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await trio.to_thread.run_sync(self.close)

    async def prepare(
        self,
        blocks: Sequence[bytes],
        *,
        algorithm: int,
        da: str,
        max_payload: int,
        fit: bool,
    ) -> Prepared:
        """See :func:`prepare`; raises what the builder raises (BatchTooLarge, ...)."""
        return await self._pool.run(prepare, list(blocks), algorithm, da, max_payload, fit)

    async def prepare_from_payload(
        self, blocks: Sequence[bytes], *, payload: bytes, da: str, max_payload: int
    ) -> Prepared:
        """See :func:`prepare_from_payload`; raises PayloadMismatch and what the builder
        raises."""
        return await self._pool.run(prepare_from_payload, list(blocks), payload, da, max_payload)

    async def check(
        self,
        blocks: Sequence[bytes],
        *,
        payload: bytes,
        algorithm: int,
        da: str,
        max_payload: int,
        commitments: Sequence[bytes],
        proofs: Sequence[bytes],
    ) -> Prepared:
        """See :func:`check`; raises PayloadMismatch, ProofMismatch and what the builder
        raises."""
        return await self._pool.run(
            check,
            list(blocks),
            payload,
            algorithm,
            da,
            max_payload,
            list(commitments),
            list(proofs),
        )

    async def commit(self, blobs: Sequence[bytes]) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
        return await self._pool.run(commit_blobs, list(blobs))


__all__ = [
    "KzgWorker",
    "Prepared",
    "ProofMismatch",
    "check",
    "commit_blobs",
    "prepare",
    "prepare_from_payload",
]
