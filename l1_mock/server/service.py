"""The running L1: the pure :class:`~l1_mock.chain.Chain`, its SQLite store, the KZG worker and
block production on a timer.

Every mutation (a call accepted, a block mined) happens under one lock together with its SQLite
write, so the disk and the in-memory chain never disagree. KZG checks run in a worker process
(ckzg holds the GIL, so a thread would stall the event loop; see :mod:`l1_mock.kzg_pool`) before
the lock is taken.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import trio

from l1_mock import genesis as genesis_mod
from l1_mock.chain import CallRejected, Chain, Genesis, L1Block, retention_floor_epoch
from l1_mock.kzg_pool import KzgVerifier
from l1_mock.store import Store
from sequencer_node.wire.blobs import GAS_PER_BLOB, SLOTS_PER_EPOCH, kzg_to_versioned_hash
from sequencer_node.wire.codec import CodecError
from sequencer_node.wire.l1calls import SubmitBatch, decode_params
from sequencer_node.wire.messages import L1Call

log = logging.getLogger("l1_mock")


@dataclass(frozen=True, slots=True)
class L1Settings:
    """How this L1 process runs (not consensus: the chain's rules are in its genesis)."""

    data_dir: Path
    slot_time: float
    auto_mine: bool = True
    #: Processes that verify KZG proofs; 0 verifies in a thread (stalls the loop; tests only).
    kzg_workers: int = 1
    #: Serve ``dev_mine`` to callers on other hosts too (by default: loopback only).
    remote_dev: bool = False


class L1Service:
    """The running L1: chain + store + lock + KZG worker. Create with :meth:`open`."""

    def __init__(self, chain: Chain, store: Store, settings: L1Settings) -> None:
        self.chain = chain
        self.store = store
        self.settings = settings
        self.lock = trio.Lock()
        self.kzg = KzgVerifier(settings.kzg_workers)
        self.new_block = trio.Event()
        self._pool_seq = 0

    @classmethod
    def open(cls, genesis: Genesis, settings: L1Settings) -> L1Service:
        """Open (or create) the data directory and replay its blocks."""
        store = Store(settings.data_dir / "l1.sqlite")
        chain = Chain(_stored_genesis(store, genesis))
        blocks = 0
        for slot, ts, h, items in store.blocks():
            block = chain.apply_block(slot, ts, items)
            if block.hash != h:
                raise RuntimeError(
                    f"replay of block {block.header.number} gave a different hash: the data "
                    f"directory {settings.data_dir} does not match this code or is corrupt"
                )
            blocks += 1
        service = cls(chain, store, settings)
        dropped = 0
        for call in store.pool_calls():
            try:
                service._restore_pooled(call)
            except CallRejected:
                dropped += 1
        log.info(
            "opened %s: %d blocks replayed, head %d, %d pooled calls restored (%d dropped)",
            settings.data_dir,
            blocks,
            chain.head.number,
            len(chain.pool),
            dropped,
        )
        return service

    def _restore_pooled(self, call: L1Call) -> None:
        # Pool entries on disk were KZG-verified when accepted.
        hashes = None
        try:
            p = decode_params(call)
        except (CodecError, KeyError):
            p = None
        if isinstance(p, SubmitBatch) and p.commitments:
            hashes = tuple(kzg_to_versioned_hash(c) for c in p.commitments)
        self.pool_verified(call, hashes)

    def pool_verified(self, call: L1Call, blob_hashes: tuple[bytes, ...] | None) -> bytes:
        """Accept ``call`` whose blobs' KZG proofs are already known to verify to
        ``blob_hashes`` (restart, tests); the caller holds :attr:`lock` or runs before
        serving. Raises CallRejected."""
        h = self.chain.submit(call, blob_hashes)
        self._pool_seq += 1
        self.store.add_pool(h, self._pool_seq, call)
        return h

    async def submit(self, call: L1Call) -> bytes:
        """Accept ``call`` (raises CallRejected). The cheap checks (signature, nonce, fee cap,
        the call's own checks) run first, so a call that would be refused anyway never costs
        KZG time; then blobs are verified off the event loop and the call is checked again
        against the state of that moment."""
        pending = self.chain.check_call(call)
        hashes = None
        p = pending.params
        if isinstance(p, SubmitBatch) and p.blobs:
            check = await self.kzg.verify(p.blobs, p.commitments, p.proofs)
            if not check.ok:
                raise CallRejected(f"invalid blob: {check.error}")
            hashes = check.versioned_hashes
        async with self.lock:
            h = self.chain.submit(call, hashes)
            self._pool_seq += 1
            # fsync off the event loop; the hash is returned only once the call is durable
            await trio.to_thread.run_sync(self.store.add_pool, h, self._pool_seq, call)
            return h

    # --- block production ----------------------------------------------------------------

    async def mine(self, n: int = 1) -> list[L1Block]:
        out: list[L1Block] = []
        for _ in range(n):
            async with self.lock:
                slot = self.chain.head.slot + 1
                ts = self.chain.config.genesis_time + slot * self.chain.config.slot_time
                block = self.chain.mine(slot, ts)
                await trio.to_thread.run_sync(self._persist, block)
            out.append(block)
            self._log_block(block)
            self.new_block.set()
            self.new_block = trio.Event()
        return out

    async def run_miner(self) -> None:
        """Mine one block per slot time (when auto-mining is on)."""
        if not self.settings.auto_mine:
            await trio.sleep_forever()
        # The stored chain's slot time wins over the flag (timestamps must stay consistent).
        slot = self.chain.config.slot_time
        deadline = trio.current_time()
        while True:
            deadline += slot
            await trio.sleep_until(deadline)
            await self.mine(1)

    def _persist(self, block: L1Block) -> None:
        self.store.write_block(block)
        floor = retention_floor_epoch(
            self.chain.current_epoch, self.chain.config.blob_retention_epochs
        )
        if floor > 0:
            self.store.prune_blobs(floor * SLOTS_PER_EPOCH)

    def _log_block(self, b: L1Block) -> None:
        h = b.header
        log.info(
            "block %d slot %d epoch %d hash %s txs %d failed %d blobs %d blob_base_fee %d "
            "excess_blob_gas %d fork %s",
            h.number,
            h.slot,
            h.epoch,
            b.hash.hex()[:12],
            len(b.receipts),
            sum(1 for r in b.receipts if r.status == 0),
            h.blob_gas_used // GAS_PER_BLOB,
            self.chain.current_blob_base_fee(),
            h.excess_blob_gas,
            h.fork,
        )


def _stored_genesis(store: Store, genesis: Genesis) -> Genesis:
    """The genesis of the data directory (written on first start from ``genesis``)."""
    stored = store.get_meta("genesis")
    if stored is None:
        store.set_meta("genesis", genesis_mod.dumps(genesis).encode())
        return genesis
    # The stored genesis wins (the chain must replay identically); retention is node policy,
    # not consensus, so the configured one applies.
    retention = genesis.config.blob_retention_epochs
    kept = genesis_mod.from_json(json.loads(stored))
    return dataclasses.replace(
        kept, config=dataclasses.replace(kept.config, blob_retention_epochs=retention)
    )


def default_genesis_time(slot_time: int) -> int:
    """Genesis time for a fresh chain: now, rounded down to a slot boundary."""
    now = int(time.time())
    return now - now % max(slot_time, 1)


__all__ = ["L1Service", "L1Settings", "default_genesis_time"]
