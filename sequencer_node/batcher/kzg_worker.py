"""Batch preparation (encode, compress, pack, KZG) in a worker process.

ckzg holds the GIL for about 87 ms per blob and brotli for tens of milliseconds per batch,
so neither may run on the node's event loop, nor in a thread of the node's process (the GIL
would stall consensus just the same). :class:`KzgWorker` owns a small
``ProcessPoolExecutor`` (spawned, not forked: the parent runs Trio and threads) whose
workers load the trusted setup once, at start. Results are awaited in a Trio thread that
waits on the future, so the event loop stays free.

``processes=0`` runs the same functions in a Trio worker thread instead: for tests and
tools where a second process is not worth its start-up time.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import trio

from sequencer_node.batcher.builder import Draft, draft_batch, fit_draft
from sequencer_node.parent_death import die_with_parent
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


def _init_worker(parent_pid: int) -> None:
    # A SIGKILLed node must not leave its KZG worker behind as an orphan.
    die_with_parent(parent_pid)
    kzg.trusted_setup()


def commit_blobs(blobs: Sequence[bytes]) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
    """Commitments and proofs of ``blobs`` (runs in the worker)."""
    pairs = [kzg.blob_to_commitment_and_proof(b) for b in blobs]
    return tuple(c for c, _ in pairs), tuple(p for _, p in pairs)


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


class KzgWorker:
    """``async with KzgWorker() as w: prepared = await w.prepare(...)``."""

    def __init__(self, processes: int = 1) -> None:
        if processes < 0:
            raise ValueError("processes must be >= 0")
        self._processes = processes
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        # Bounded: at most this many jobs wait for the pool at once.
        self._limiter = trio.CapacityLimiter(max(1, processes))

    def start(self) -> None:
        if self._processes and self._pool is None:
            self._pool = concurrent.futures.ProcessPoolExecutor(
                max_workers=self._processes,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(os.getpid(),),
            )

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    async def __aenter__(self) -> KzgWorker:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await trio.to_thread.run_sync(self.close)

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        async with self._limiter:
            if not self._processes:
                return await trio.to_thread.run_sync(lambda: fn(*args))
            self.start()
            assert self._pool is not None
            fut = self._pool.submit(fn, *args)
            try:
                return await trio.to_thread.run_sync(fut.result, abandon_on_cancel=True)
            except BaseException:
                fut.cancel()
                raise

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
        return await self._run(prepare, list(blocks), algorithm, da, max_payload, fit)

    async def commit(self, blobs: Sequence[bytes]) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
        return await self._run(commit_blobs, list(blobs))


__all__ = ["KzgWorker", "Prepared", "commit_blobs", "prepare"]
