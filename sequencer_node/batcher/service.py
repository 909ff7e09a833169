"""``BatcherService``: the batcher inside a node process (the seam with the node shell).

The node calls :meth:`BatcherService.block_committed` for every certified block,
routes the batcher's p2p messages (:meth:`handles` / :meth:`message_received`), and runs
:meth:`BatcherService.run` in its nursery. Everything else happens in ``run``:

* **inbox sync** (every ``poll_interval_s``, or after each poll of the node's L1 follower
  once it shares them, :meth:`BatcherService.l1_polled`: then the head and the inbox page
  come from that poll and the tick asks the L1 nothing): the L1 inbox is the truth about
  which batches exist. Each accepted batch is recorded ACCEPTED (whoever posted it) with its
  cost; proposals and approvals for older batch numbers are dropped.
* **proposing**: the first key of ``schedule()`` cuts the next batch from its certified
  blocks (size / max age, :func:`~sequencer_node.batcher.builder.pick_count`), prepares
  payload + KZG in the worker process, broadcasts a :class:`BatchProposal` and its own
  approval.
* **co-signing**: every validator that gets a proposal rebuilds that range from its own
  chain and approves only an identical header (:mod:`~sequencer_node.batcher.cosign`).
  Approvals are broadcast, so every validator that reviewed the header assembles the
  certificate (> 2/3 of ``stake_view()``'s stake) and holds the data to post it.
* **external DA** (``da = "extda"``): the leader posts the payload to the DA layer under the
  rollup's namespace and waits until the L1 holds the attestation of its DA block before it
  proposes the header naming it (so a certified batch needs only the L1 to land);
  co-signers fetch the blob from the DA layer and check it (namespace proof, commitment,
  byte-equal to their own rebuild) before approving. When the DA layer has been
  unavailable for ``da_failover_s``, batches go to blobs, and back once it answers.
* **posting**: the node at index *i* of ``schedule()`` posts a certified batch once it has
  been certified for ``i * posting_deadline_s`` and the inbox still lacks it
  (:class:`~sequencer_node.batcher.poster.Poster`: durable, exactly once, in order). On
  start, batches the store holds SIGNED or POSTED are reconciled with the inbox first.

A node without a key (a follower) only syncs the inbox, for ``batches()`` and
``tx_location()``. Message handlers never block: inbound messages go through a bounded
channel (dropped, and counted, when full).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import trio

from sequencer_node.batcher.builder import (
    BatchTooLarge,
    PayloadMismatch,
    estimate_body_bytes,
    make_header,
    pick_count,
)
from sequencer_node.batcher.config import BatcherConfig, DaMode
from sequencer_node.batcher.cosign import ApprovalCollector, proposal_of, review, sign_approval
from sequencer_node.batcher.kzg_worker import KzgWorker, Prepared
from sequencer_node.batcher.l1_view import InboxJudge
from sequencer_node.batcher.messages import BatchProposal
from sequencer_node.batcher.metrics import BatcherMetrics, NodeBatchMetrics
from sequencer_node.batcher.poster import FaultHook, Poster, PosterError, PostOutcome, PostResult
from sequencer_node.batcher.records import (
    Approval,
    BatchCost,
    BatchRecords,
    BatchState,
    RecordsError,
)
from sequencer_node.batching.codec import BatchFormatError
from sequencer_node.batching.inbox_rule import Refusal, Rule
from sequencer_node.clients.da import DAClient, DAUnavailable, DAUnreachable
from sequencer_node.clients.l1 import InboxBatch, L1Client, L1Error, L1Poll
from sequencer_node.wire.codec import encode, message_id
from sequencer_node.wire.crypto import SigningKey
from sequencer_node.wire.da.attest import DAPointer, PointerProof
from sequencer_node.wire.da.pfb import blob_fee
from sequencer_node.wire.da.reader import NotVerified
from sequencer_node.wire.eth import eth_tx_hash
from sequencer_node.wire.l1calls import MAX_CALLDATA
from sequencer_node.wire.messages import (
    DA_CALLDATA,
    DA_EXTERNAL,
    ZERO_HASH,
    BatchApproval,
    BatchCertificate,
    BatchHeader,
    CertifiedBlock,
    batch_hash,
    tx_hash,
)

log = logging.getLogger("seqnet.batcher")

#: Certified blocks kept in memory waiting for a batch (older ones are read from the store).
MAX_PENDING_BLOCKS = 50_000
#: Transactions whose block height is remembered for ``tx_location``.
MAX_TX_INDEX = 200_000
#: Inbound batcher messages waiting to be handled.
INBOX_QUEUE = 256
#: Accepted batches whose height ranges are kept for ``tx_location``.
MAX_RANGES = 10_000
#: Inbox batches read per request.
_INBOX_PAGE = 100
#: Reviewed (proposed or approved) batch headers kept with their prepared data.
MAX_OPEN = 16

__all__ = ["BatcherConfig", "BatcherService", "BlockSource"]


class BlockSource(Protocol):
    """Where the batcher reads certified blocks it no longer holds in memory (the node's
    store): blocks ``first..last`` in order, stopping at a gap or at ``max_bytes``."""

    def get_blocks(self, first: int, last: int, /, *, max_bytes: int) -> list[CertifiedBlock]: ...


@dataclass(frozen=True, slots=True)
class Stall:
    """Why the next batch is not reaching the L1, since when (shown in ``status()``)."""

    batch_number: int
    reason: str
    since: float


@dataclass
class _Open:
    """A batch this node reviewed (proposed or approved): the data it can post."""

    header: BatchHeader
    prepared: Prepared
    since: float
    certified_at: float | None = None


class BatcherService:
    """See the module docstring; the constructor signature is the node contract."""

    def __init__(
        self,
        *,
        config: BatcherConfig,
        blocks: BlockSource,
        data_dir: Path,
        l1: L1Client,
        key: SigningKey | None,
        chain_id: int,
        l1_chain_id: int,
        broadcast: Callable[[object], None],
        schedule: Callable[[], Sequence[bytes]],
        stake_view: Callable[[], tuple[int, Mapping[bytes, int]]],
        metrics: NodeBatchMetrics | None = None,
        worker_processes: int = 1,
        fault: FaultHook | None = None,
        clock: Callable[[], float] = time.time,
        da: DAClient | None = None,
    ) -> None:
        self.config = config
        self.da = da
        self.blocks = blocks
        self.l1 = l1
        self.key = key
        self.chain_id = chain_id
        self.l1_chain_id = l1_chain_id
        self._broadcast = broadcast
        self._schedule = schedule
        self._stake_view = stake_view
        self.metrics = BatcherMetrics(metrics)
        self.judge = InboxJudge(l1)
        self._clock = clock
        self._worker = KzgWorker(worker_processes)
        self.records = BatchRecords.open(data_dir)
        self._fault = fault
        self.poster: Poster | None = None
        self._collector = ApprovalCollector(chain_id)
        self._pending: OrderedDict[int, CertifiedBlock] = OrderedDict()
        self._tx_height: OrderedDict[bytes, int] = OrderedDict()
        self._ranges: OrderedDict[int, tuple[int, int, int]] = OrderedDict()  # n -> first,last,l1
        self._open: dict[bytes, _Open] = {}  # header id -> reviewed batch
        self._heard: dict[int, float] = {}  # batch number -> when a proposal last came in
        self._posting: dict[int, bytes] = {}  # batch number -> header id being posted
        self._inbox_next = 0
        self._last_header: BatchHeader | None = None
        self._l1_finalized = 0
        self._ratio = 0.95
        self._dropped = 0
        self._send, self._recv = trio.open_memory_channel[tuple[bytes, object]](INBOX_QUEUE)
        self._last_error: str | None = None
        self._stall: Stall | None = None
        self._refused_since: dict[int, float] = {}  # batch number -> first unclassified refusal
        self._last_accepted_at: float | None = None
        self._da_down_since: float | None = None  # extda: first failure of the DA layer
        self._da_proofs: OrderedDict[bytes, tuple[int, PointerProof]] = OrderedDict()
        # The node's L1 follower's last poll (l1_polled): the same head and inbox reads the
        # tick would make, so the tick takes them instead of asking the L1 again.
        self._shared_poll: tuple[L1Poll, int, float] | None = None
        self._poll_arrived = trio.Event()
        self._polls_shared = False
        self._last_tick_at = 0.0  # trio.current_time() when the last shared-poll wait ended

    # --- the node seam -----------------------------------------------------------------------

    def l1_polled(self, poll: L1Poll, inbox_from: int) -> None:
        """The node's L1 follower read ``poll`` (its inbox page from batch ``inbox_from``).

        The next tick uses it instead of its own read of the head and the inbox when it is
        fresh (at most ``poll_interval_s`` old) and its page reaches this batcher's next
        batch; ticks then follow the follower's polls (one HTTP exchange with the L1 a second
        instead of two: an exchange costs each side ~1.5 ms of CPU, and a hosted endpoint
        meters them). Without polls, or with stale ones, the tick reads the L1 itself."""
        self._shared_poll = (poll, inbox_from, self._clock())
        self._polls_shared = True
        self._poll_arrived.set()

    def _take_shared_poll(self) -> tuple[list[InboxBatch], bool] | None:
        """The shared poll's inbox batches from this batcher's next batch, and whether more
        may follow (the follower's page was full); None if there is no usable poll."""
        shared, self._shared_poll = self._shared_poll, None
        if shared is None or not self.judge.ready:
            return None
        poll, first, at = shared
        if self._clock() - at > self.config.poll_interval_s or poll.head.number < self.judge.head:
            return None  # stale: the tick would read a newer head (or did already)
        n, batches = self._inbox_next, poll.inbox
        if not first <= n <= first + len(batches):
            return None  # the follower's page does not reach (or skips) our next batch
        page = batches[n - first :]
        if page and page[0].header.batch_number != n:
            return None
        self.judge.observe_head(poll.head.number, poll.head.slot, poll.finalized.number)
        return page, poll.full_inbox_page

    @property
    def public_key(self) -> bytes | None:
        return None if self.key is None else self.key.public_key

    def block_committed(self, certified: CertifiedBlock, state_root: bytes) -> None:
        h = certified.block.header
        if self._last_header is not None and h.height <= self._last_header.last_height:
            return
        self._pending[h.height] = certified
        while len(self._pending) > MAX_PENDING_BLOCKS:
            self._pending.popitem(last=False)
        for tx in certified.block.transactions:
            self._tx_height[tx_hash(tx)] = h.height
        for f in certified.block.forced:
            self._tx_height[tx_hash(f.tx)] = h.height
        for e in certified.block.eth_transactions:
            self._tx_height[eth_tx_hash(e)] = h.height
        while len(self._tx_height) > MAX_TX_INDEX:
            self._tx_height.popitem(last=False)

    def handles(self, msg: object) -> bool:
        return isinstance(msg, BatchProposal | BatchApproval)

    def message_received(self, sender: bytes, msg: object) -> None:
        try:
            self._send.send_nowait((sender, msg))
        except trio.WouldBlock:
            self._dropped += 1

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self._worker.start()
        try:
            # A keyless node keeps the same records (the poster then never posts).
            self.poster = Poster(
                records=self.records,
                l1=self.l1,
                key=self.key,
                l1_chain_id=self.l1_chain_id,
                config=self.config,
                rebuild=self._rebuild,
                tx_count=self._tx_count,
                fault=self._fault,
                da_proof=self._da_proof_for,
                da_fee=self._da_fee_of,
            )
            self._restore()
            task_status.started()
            async with trio.open_nursery() as nursery:
                # Spawn the worker and load its trusted setup now, not at the first batch.
                if self.key is not None:
                    nursery.start_soon(self._worker.commit, [])
                nursery.start_soon(self._inbound_loop)
                await self._main_loop()
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(self._worker.close)
                if self.da is not None:
                    await self.da.aclose()
            self.records.close()

    # --- views -------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        costs = self.records.costs()
        last = costs[-1] if costs else None
        txs = sum(c.txs for c in costs)
        fee = sum(c.fee_paid for c in costs)
        da_wei = sum(c.da_fee_wei for c in costs)
        posted = sum(c.posted_bytes for c in costs)
        out: dict[str, Any] = _cost_json(last) if last else {"number": None}
        out.update(
            {
                "da": self.config.da,
                "da_active": self._active_da(),
                "da_down_since": self._da_down_since,
                "inbox_next": self._inbox_next,
                "pending_blocks": len(self._pending),
                "in_flight": [r.batch_number for r in self.records.batches(BatchState.POSTED)],
                "dropped_messages": self._dropped,
                # A stalled pipeline is an error even when no tick raised.
                "error": self._last_error or (self._stall.reason if self._stall else None),
                "stalled": _stall_json(self._stall, self._clock()),
                "abandoned": self.records.abandoned_count(),
                "last_accepted_at": self._last_accepted_at,
                "totals": {
                    "batches": len(costs),
                    "txs": txs,
                    "fee_paid": str(fee),
                    "da_fee_wei": str(da_wei),
                    "total_cost": str(fee + da_wei),
                    "bytes": posted,
                    "fee_per_tx": str((fee + da_wei) // txs) if txs else None,
                    "bytes_per_tx": round(posted / txs, 1) if txs else None,
                },
            }
        )
        return out

    def batches(self) -> list[dict[str, Any]]:
        costs = {c.batch_number: c for c in self.records.costs()}
        out: list[dict[str, Any]] = []
        for rec in self.records.batches():
            cost = costs.pop(rec.batch_number, None)
            if cost is not None:
                row = _cost_json(cost)
            else:
                h = rec.header
                row = {
                    "number": rec.batch_number,
                    "first_height": h.first_height,
                    "last_height": h.last_height,
                    "l1_block": None,
                    "l1_tx": _hex(rec.l1_tx_hash),
                    "blobs": len(h.blob_hashes),
                    "bytes": h.data_bytes,
                    "txs": None,
                    "fee_paid": None,
                    "da_fee": None,
                    "da_fee_wei": None,
                    "total_cost": None,
                    "fee_per_tx": None,
                    "bytes_per_tx": None,
                }
            row["state"] = rec.state.name.lower()
            out.append(row)
        for cost in costs.values():
            out.append({**_cost_json(cost), "state": "accepted"})
        out.sort(key=lambda r: r["number"])
        return out

    def tx_location(self, tx_hash: bytes) -> tuple[int, int | None, bool] | None:
        height = self._tx_height.get(tx_hash)
        if height is None:
            return None
        for n, (first, last, l1_block) in reversed(self._ranges.items()):
            if first <= height <= last:
                return n, l1_block, l1_block <= self._l1_finalized
            if last < height:
                break
        return None

    # --- loops -------------------------------------------------------------------------------

    def _restore(self) -> None:
        now = self._clock()
        for rec in self.records.batches():
            if rec.state in (BatchState.SIGNED, BatchState.POSTED):
                # Reconciled with the inbox on the first tick (posted or not, exactly once).
                self._posting[rec.batch_number] = b""
                log.info(
                    "batch %d found %s at start; reconciling", rec.batch_number, rec.state.name
                )
        self._restored_at = now

    async def _main_loop(self) -> None:
        while True:
            try:
                await self._tick()
                self._last_error = None
            except L1Error as e:
                self._last_error = f"L1: {e}"
                log.warning("batcher: L1 error: %s", e)
            except (PosterError, RecordsError) as e:
                self._last_error = str(e)
                log.error("batcher: %s", e)
            await self._wait_for_next_tick()

    async def _wait_for_next_tick(self) -> None:
        """``poll_interval_s``, or, once the follower shares its polls, until the next one
        arrives: no sooner than half a poll interval after the previous tick (a follower
        polling ten times a second does not make the batcher tick ten times a second) and no
        later than 1.5 intervals (a follower that stopped polling, the L1 being down, leaves
        the batcher ticking on its own)."""
        interval = self.config.poll_interval_s
        if not self._polls_shared:
            await trio.sleep(interval)
            return
        since = trio.current_time() - self._last_tick_at
        await trio.sleep(max(0.0, interval / 2 - since))
        with trio.move_on_after(max(0.0, 1.5 * interval - max(since, interval / 2))):
            await self._poll_arrived.wait()
        self._poll_arrived = trio.Event()
        self._last_tick_at = trio.current_time()

    async def _tick(self) -> None:
        await self._sync_inbox()
        if self.key is None:
            return
        await self._post_due()
        await self._maybe_propose()

    async def _inbound_loop(self) -> None:
        async for sender, msg in self._recv:
            try:
                if isinstance(msg, BatchProposal):
                    await self._on_proposal(sender, msg)
                elif isinstance(msg, BatchApproval):
                    cert = self._collector.add(msg)
                    if cert is not None:
                        await self._on_certified(cert)
            except L1Error as e:
                log.warning("batcher: L1 error while handling %s: %s", type(msg).__name__, e)
            except (PosterError, RecordsError) as e:
                log.error("batcher: %s", e)

    # --- inbox -------------------------------------------------------------------------------

    async def _sync_inbox(self) -> None:
        # Every tick, in ONE exchange with the L1 (one costs each side ~1.5 ms of CPU): the L1
        # head, hence the fork's blob limit, is never stale; and the next page of the inbox.
        # A page that is not full is the end (no second read of an empty one).
        # The follower's fresh poll, when there is one, is that exchange already made.
        shared = self._take_shared_poll()
        if shared is not None:
            page, more = shared
        else:
            page = await self.judge.refresh_with_inbox(self._inbox_next, _INBOX_PAGE)
            more = len(page) >= _INBOX_PAGE
        for _ in range(64):  # bounded catch-up per tick
            for ib in page:
                await self._accepted(ib)
            if not more:
                break
            page = await self.l1.inbox_batches(self._inbox_next, _INBOX_PAGE)
            more = len(page) >= _INBOX_PAGE
        self._l1_finalized = self.judge.finalized

    async def _accepted(self, ib: InboxBatch) -> None:
        h = ib.header
        assert self.poster is not None
        cost = await self.poster.note_accepted(ib)
        now = self._clock()
        self._last_accepted_at = now
        self.metrics.accepted(
            now, cost.fee_paid if cost else None, cost.posted_bytes if cost else None
        )
        if self._stall is not None and self._stall.batch_number <= h.batch_number:
            self._set_stall(None)
        self._refused_since.pop(h.batch_number, None)
        self._ranges[h.batch_number] = (h.first_height, h.last_height, ib.l1_block)
        while len(self._ranges) > MAX_RANGES:
            self._ranges.popitem(last=False)
        self._inbox_next = h.batch_number + 1
        self._last_header = h
        self._posting.pop(h.batch_number, None)
        self._collector.forget_below(self._inbox_next)
        await trio.to_thread.run_sync(self.records.forget_below, self._inbox_next)
        for hid in [k for k, o in self._open.items() if o.header.batch_number <= h.batch_number]:
            del self._open[hid]
        for height in [x for x in self._pending if x <= h.last_height]:
            del self._pending[height]

    # --- chain access ------------------------------------------------------------------------

    async def _blocks(self, first: int, last: int) -> list[CertifiedBlock] | None:
        """Blocks ``first..last`` from memory or the store, or None if some are missing."""
        out: list[CertifiedBlock] = []
        h = first
        while h <= last:
            cb = self._pending.get(h)
            if cb is None:
                stored = await trio.to_thread.run_sync(self._read_blocks, h, last)
                if not stored or stored[0].block.header.height != h:
                    return None
                out.extend(stored)
                h = stored[-1].block.header.height + 1
                continue
            out.append(cb)
            h += 1
        return out

    def _read_blocks(self, first: int, last: int) -> list[CertifiedBlock]:
        return self.blocks.get_blocks(first, last, max_bytes=64 * 1024 * 1024)

    async def _rebuild(self, header: BatchHeader, algorithm: int) -> Prepared:
        blocks = await self._blocks(header.first_height, header.last_height)
        if blocks is None:
            raise PosterError(
                f"batch {header.batch_number}: L2 blocks {header.first_height}-"
                f"{header.last_height} are not all in this node's store; cannot rebuild it"
            )
        encoded = await _encoded(blocks)
        da = "blobs" if header.blob_hashes else "calldata"
        lock = self.records.approval(header.batch_number)
        if lock is not None and lock.header == header and lock.payload is not None:
            # The bytes this node approved: compressing again need not give them back (a
            # co-signer never compressed them; another build of the compressor may differ).
            try:
                return await self._worker.prepare_from_payload(
                    encoded, payload=lock.payload, da=da, max_payload=MAX_CALLDATA
                )
            except PayloadMismatch as e:
                raise PosterError(f"batch {header.batch_number}: {e}") from None
        return await self._worker.prepare(
            encoded, algorithm=algorithm, da=da, max_payload=MAX_CALLDATA, fit=False
        )

    async def _tx_count(self, first: int, last: int) -> int:
        blocks = await self._blocks(first, last)
        if blocks is None:
            return 0
        return sum(
            len(b.block.transactions) + len(b.block.forced) + len(b.block.eth_transactions)
            for b in blocks
        )

    # --- proposing ---------------------------------------------------------------------------

    def _parent_batch_hash(self) -> bytes:
        return batch_hash(self._last_header) if self._last_header else ZERO_HASH

    def _next_height(self) -> int:
        return self._last_header.last_height + 1 if self._last_header else 1

    def _my_turn_to_propose(self, n: int, now: float) -> bool:
        """This node leads and nothing for batch ``n`` is certified or under review."""
        assert self.key is not None
        order = self._schedule()
        if not order or order[0] != self.key.public_key or n in self._posting:
            return False
        for o in self._open.values():
            if o.header.batch_number == n and now - o.since < self.config.proposal_timeout_s:
                return False
        heard = self._heard.get(n)
        # Another leader's proposal for n is being reviewed: give it time.
        return heard is None or now - heard >= self.config.proposal_timeout_s

    async def _pending_from(self, first: int) -> list[CertifiedBlock]:
        """Consecutive certified blocks from ``first`` (memory first, else the store)."""
        pending: list[CertifiedBlock] = []
        h = first
        while h in self._pending and len(pending) < 10_000:
            pending.append(self._pending[h])
            h += 1
        if not pending and await self._blocks(first, first) is not None:
            pending = await trio.to_thread.run_sync(self._read_blocks, first, first + 9_999)
        return pending

    async def _maybe_propose(self) -> None:
        n = self._inbox_next
        now = self._clock()
        if not self._my_turn_to_propose(n, now):
            return
        lock = await self._live_approval(n)
        if lock is not None:
            # One header per batch number: propose again the one this node approved.
            await self._repropose(lock, now)
            return
        first = self._next_height()
        pending = await self._pending_from(first)
        if not pending:
            return
        mode = await self._da_mode(now)
        cfg = self.config if mode == self.config.da else dataclasses.replace(self.config, da=mode)
        max_payload = cfg.max_payload(self.judge.max_blobs())
        count = pick_count(
            pending,
            now_ms=int(now * 1000),
            max_payload=max_payload,
            fill_target=self.config.fill_target,
            max_age_ms=self.config.max_age_ms,
            ratio=self._ratio,
            max_age_empty_ms=self.config.max_age_empty_ms,
        )
        if count == 0:
            return
        cut = await self._cut(n, pending, count, max_payload, mode)
        if cut is None:
            return
        header, prepared, stakes = cut
        refusal = await self._refusal(header)
        if refusal is not None and refusal.rule is Rule.FORCED_OVERDUE:
            # The cut leaves out a forced transaction that falls due before it can land:
            # reach the block that includes it.
            longer = _count_through_forced(pending, header.forced_index)
            cut = await self._cut(n, pending, longer, max_payload, mode) if longer > count else None
            if cut is not None:
                header, prepared, stakes = cut
                refusal = await self._refusal(header)
        if refusal is not None:
            self._set_stall(Stall(n, f"cannot cut batch {n} the L1 inbox accepts: {refusal}", now))
            log.warning(
                "batch %d: not proposing L2 blocks %d-%d: the L1 inbox would refuse them: %s",
                n,
                header.first_height,
                header.last_height,
                refusal,
            )
            return
        if mode == "extda":
            published = await self._publish(header, prepared, now)
            if published is None:
                return
            header = published
        self._learn_ratio(prepared, pending)
        await self._propose(header, prepared, stakes, now)

    async def _cut(
        self,
        n: int,
        pending: Sequence[CertifiedBlock],
        count: int,
        max_payload: int,
        mode: DaMode,
    ) -> tuple[BatchHeader, Prepared, Mapping[bytes, int]] | None:
        """Batch ``n`` from the first ``count`` pending blocks (or the prefix that fits); in
        ``extda`` mode a calldata-shaped header, until :meth:`_publish` names the DA blob."""
        try:
            prepared = await self._worker.prepare(
                await _encoded(pending[:count]),
                algorithm=int(self.config.algorithm),
                da="calldata" if mode == "extda" else mode,
                max_payload=max_payload,
                fit=True,
            )
        except (BatchTooLarge, BatchFormatError) as e:
            log.error("cannot build batch %d from L2 block %d: %s", n, self._next_height(), e)
            return None
        stake_epoch, stakes = self._stake_view()
        header = make_header(
            prepared.draft,
            chain_id=self.chain_id,
            batch_number=n,
            parent_batch_hash=self._parent_batch_hash(),
            stake_epoch=stake_epoch,
            blob_hashes=prepared.blob_hashes,
        )
        return header, prepared, stakes

    def _learn_ratio(self, prepared: Prepared, pending: Sequence[CertifiedBlock]) -> None:
        """Payload/body size of this batch: the next cut's guess of the compression. The body
        is measured as :func:`pick_count` measures it (its estimate, which the ratio scales;
        encoding the blocks again only for their length cost ~16 ms per 10k transactions)."""
        d = prepared.draft
        first = pending[0].block.header.height
        body_estimate = sum(estimate_body_bytes(b) for b in pending[: d.last_height - first + 1])
        if body_estimate:
            self._ratio = max(0.05, len(d.payload) / body_estimate * 1.1)

    async def _propose(
        self, header: BatchHeader, prepared: Prepared, stakes: Mapping[bytes, int], now: float
    ) -> None:
        d = prepared.draft
        n = header.batch_number
        log.info(
            "proposing batch %d: L2 blocks %d-%d, %d txs, %d payload bytes, %d blobs (fill %.0f%%)",
            n,
            d.first_height,
            d.last_height,
            d.tx_count,
            len(d.payload),
            len(d.blobs),
            d.blob_fill * 100,
        )
        self._remember_open(header, prepared, now)
        self._broadcast(proposal_of(header, prepared))
        await self._approve(header, stakes, prepared)

    async def _repropose(self, lock: Approval, now: float) -> None:
        header = lock.header
        o = self._open.get(message_id(header))
        if o is not None:
            o.since = now
        else:
            try:
                prepared = await self._rebuild(header, lock.algorithm)
            except (PosterError, BatchTooLarge, BatchFormatError) as e:
                log.warning("cannot propose batch %d again: %s", header.batch_number, e)
                return
            self._remember_open(header, prepared, now)
        log.info("proposing batch %d again (the header this node approved)", header.batch_number)
        prepared = self._open[message_id(header)].prepared
        self._broadcast(proposal_of(header, prepared))
        _, stakes = self._stake_view()
        await self._approve(header, stakes, prepared)

    def _remember_open(self, header: BatchHeader, prepared: Prepared, now: float) -> None:
        self._open[message_id(header)] = _Open(header, prepared, now)
        # Bounded: re-proposals under leader churn add headers until the inbox moves on.
        while len(self._open) > MAX_OPEN:
            oldest = min(
                (k for k, o in self._open.items() if o.certified_at is None),
                key=lambda k: self._open[k].since,
                default=None,
            )
            if oldest is None:
                break
            del self._open[oldest]

    async def _approve(
        self, header: BatchHeader, stakes: Mapping[bytes, int], prepared: Prepared
    ) -> None:
        assert self.key is not None
        held = self.records.approval(header.batch_number)
        if held is None or held.header != header:
            # Durable before the approval leaves: a restart keeps the lock, and the payload.
            d = prepared.draft
            await trio.to_thread.run_sync(
                self.records.record_approval, header, d.algorithm, self._clock(), d.payload
            )
        cert = self._collector.track(header, stakes)
        approval = sign_approval(header, self.key, self.chain_id)
        cert = self._collector.add(approval) or cert
        self._broadcast(approval)
        if cert is not None:
            await self._on_certified(cert)

    async def _on_proposal(self, sender: bytes, prop: BatchProposal) -> None:
        if self.key is None:
            return
        h = prop.header
        if h.batch_number >= self._inbox_next:
            self._heard[h.batch_number] = self._clock()
            while len(self._heard) > MAX_OPEN:
                del self._heard[min(self._heard)]
        if h.batch_number != self._inbox_next:
            await self._sync_inbox()
            if h.batch_number != self._inbox_next:
                log.debug("ignoring proposal for batch %d (inbox expects %d)", h.batch_number,
                          self._inbox_next)  # fmt: skip
                return
        if message_id(h) in self._open:
            # Proposed again (the leader's timeout, or a new leader with the same header):
            # approvals may have been lost, so this node's goes out again.
            held = self.records.approval(h.batch_number)
            if held is not None and held.header == h:
                self._broadcast(sign_approval(h, self.key, self.chain_id))
            return
        why = await self._why_not_sign(h)
        if why is None:
            prepared, why = await self._review(prop)
        if why is not None:
            log.warning("refusing to co-sign batch %d proposed by %s: %s",
                        h.batch_number, sender.hex()[:16], why)  # fmt: skip
            return
        assert prepared is not None
        self._remember_open(h, prepared, self._clock())
        _, stakes = self._stake_view()
        await self._approve(h, stakes, prepared)

    async def _review(self, prop: BatchProposal) -> tuple[Prepared | None, str | None]:
        """Rebuild the proposed range from this node's chain and compare headers."""
        h = prop.header
        blocks = await self._blocks(h.first_height, h.last_height)
        if blocks is None:
            return None, (f"L2 blocks {h.first_height}-{h.last_height} are not all certified "
                          "here (yet)")  # fmt: skip
        try:
            prepared = await self._worker.check(
                await _encoded(blocks),
                payload=prop.payload,
                algorithm=prop.algorithm,
                da="blobs" if h.blob_hashes else "calldata",
                max_payload=MAX_CALLDATA,
                commitments=prop.commitments,
                proofs=prop.proofs,
            )
        except (BatchTooLarge, BatchFormatError, ValueError) as e:
            return None, f"cannot rebuild it: {e}"
        stake_epoch, _ = self._stake_view()
        _, why = review(
            _as_rebuilt(h),
            prepared,
            chain_id=self.chain_id,
            batch_number=self._inbox_next,
            parent_batch_hash=self._parent_batch_hash(),
            stake_epoch=stake_epoch,
        )
        if why is not None:
            return prepared, f"rebuilt header differs: {why}"
        if h.da_pointer is not None:
            return prepared, await self._check_da_data(h.da_pointer, prepared.draft.payload)
        return prepared, None

    # --- the external DA layer ---------------------------------------------------------------

    def _active_da(self) -> str:
        if self.config.da != "extda" or self._da_down_since is None:
            return self.config.da
        down = self._clock() - self._da_down_since
        return "blobs (DA failover)" if down >= self.config.da_failover_s else "extda (DA down)"

    async def _da_mode(self, now: float) -> DaMode:
        """The DA mode of the next cut: this node's, except in ``extda`` after the DA layer
        has been unavailable for ``da_failover_s``: blobs, until it answers again."""
        if self.config.da != "extda" or self._da_down_since is None:
            return self.config.da
        if self.da is not None and await self.da.healthy():
            log.info("the DA layer answers again: batches go to it again")
            self._da_down_since = None
            return "extda"
        return "blobs" if now - self._da_down_since >= self.config.da_failover_s else "extda"

    async def _publish(
        self, header: BatchHeader, prepared: Prepared, now: float
    ) -> BatchHeader | None:
        """Post the payload to the DA layer, wait until the L1 holds the attestation of its
        DA block, and return the extda header naming it (None: the DA layer failed; the
        failover clock runs from the first failure)."""
        n = header.batch_number
        if self.da is None or not self.judge.da_namespace:
            why = "no DA client (--da-url)" if self.da is None else "the L1 has no DA namespace"
            self._set_stall(Stall(n, f"batch {n}: cannot use the DA layer: {why}", now))
            return None
        self.da.namespace = self.judge.da_namespace
        try:
            with trio.fail_after(self.config.da_attest_timeout_s):
                tx, head = await self.da.submit(prepared.draft.payload)
                pointer = await self.da.included(tx, head)
                nonce, proof = await self._attested(pointer)
        except (DAUnavailable, trio.TooSlowError) as e:
            why = str(e) or f"not attested on the L1 within {self.config.da_attest_timeout_s} s"
            if self._da_down_since is None:
                self._da_down_since = now
            self._set_stall(Stall(n, f"batch {n}: the DA layer is unavailable: {why}", now))
            log.warning("batch %d: the DA layer is unavailable (%s); failover to blobs after "
                        "%.0f s", n, why, self.config.da_failover_s)  # fmt: skip
            return None
        self._da_down_since = None
        ext = dataclasses.replace(header, da_kind=DA_EXTERNAL, da_pointer=pointer)
        self._da_proofs[message_id(ext)] = (nonce, proof)
        while len(self._da_proofs) > MAX_OPEN:
            self._da_proofs.popitem(last=False)
        log.info("batch %d: payload in DA block %d, shares %d-%d, attested (nonce %d) on the L1",
                 n, pointer.height, pointer.start, pointer.end, nonce)  # fmt: skip
        return ext

    async def _attested(self, pointer: DAPointer) -> tuple[int, PointerProof]:
        """The pointer's proof once its DA block is attested and the L1 holds the attestation
        (the caller bounds the wait; a DA node that does not answer at all fails at once)."""
        assert self.da is not None
        while True:
            try:
                nonce, proof = await self.da.pointer_proof(pointer)
            except DAUnreachable:
                raise
            except DAUnavailable:
                await trio.sleep(0.5)  # not attested yet
                continue
            if await self.l1.da_next_nonce() > nonce:
                return nonce, proof
            await trio.sleep(0.5)

    async def _da_proof_for(self, header: BatchHeader) -> tuple[int, PointerProof]:
        """The poster's: the attestation nonce and pointer proof of an extda header."""
        known = self._da_proofs.get(message_id(header))
        if known is not None:
            return known
        if self.da is None or header.da_pointer is None:
            raise PosterError(f"batch {header.batch_number} is extda; this node has no DA layer")
        try:
            return await self.da.pointer_proof(header.da_pointer)
        except DAUnavailable as e:
            raise PosterError(
                f"batch {header.batch_number}: no proof of its DA pointer: {e}"
            ) from None

    async def _da_fee_of(self, ib: InboxBatch) -> tuple[int, int] | None:
        """What the DA layer charged the accepted extda batch ``ib``, in DA fee units and in
        wei at the L1's rate: the fee of its DA receipt; if the DA node does not answer, the
        fee the L1-proven data root tuple's base fee gives (the same number, which the L1
        also reports to the L2's fee vault, unless the DA node or its committee lies)."""
        ptr = ib.header.da_pointer
        if ptr is None:
            return None
        fee: int | None = None
        if self.da is not None:
            try:
                fee = await self.da.blob_fee(ptr)
            except DAUnavailable as e:
                log.info("batch %d: DA receipt not read (%s); priced from the L1's tuple",
                         ib.header.batch_number, e)  # fmt: skip
        if fee is None and ib.da_tuple is not None:
            fee = blob_fee(ptr.end - ptr.start, ib.da_tuple.base_fee)
        if fee is None:
            return None
        return fee, fee * self.judge.da_fee_wei_per_unit

    async def _check_da_data(self, pointer: DAPointer, payload: bytes) -> str | None:
        """Why this co-signer will not sign an extda header: its blob cannot be fetched, does
        not verify, or is not this node's rebuilt payload (None: all good)."""
        if self.da is None:
            return "it is an extda batch and this node has no DA layer (--da-url)"
        try:
            t = await self.da.header(pointer.height)
            data = await self.da.read(pointer, t.data_root, t.share_count)
        except DAUnavailable as e:
            return f"its data cannot be fetched from the DA layer: {e}"
        except NotVerified as e:
            return f"its data on the DA layer does not verify: {e}"
        if data != payload:
            return "the blob on the DA layer is not this batch's payload"
        return None

    # --- what the inbox will accept; one header per batch number -----------------------------

    async def _refusal(self, header: BatchHeader) -> Refusal | None:
        """Why the L1 inbox would refuse ``header``: now, or for good before it can land
        (``landing_blocks`` from now: a forced transaction falling due, an epoch expiring)."""
        now = await self.judge.judge(header, self._last_header, ahead=1)
        if now is not None:
            return now
        later = await self.judge.judge(header, self._last_header, ahead=self.config.landing_blocks)
        return later if later is not None and later.final else None

    async def _why_not_sign(self, header: BatchHeader) -> str | None:
        lock = await self._live_approval(header.batch_number)
        if lock is not None and lock.header != header:
            return (f"this node approved another header for batch {header.batch_number}, which "
                    "can still land (one header per batch number)")  # fmt: skip
        refusal = await self._refusal(header)
        return None if refusal is None else f"the L1 inbox would refuse it: {refusal}"

    async def _live_approval(self, n: int) -> Approval | None:
        """The header this node approved for batch ``n``, unless it can no longer bind it:
        refused by the inbox for good (then abandoned), or never seen certified for
        ``approval_lock_s``."""
        lock = self.records.approval(n)
        if lock is None or n < self._inbox_next or self.records.is_abandoned(lock.header):
            return None
        refusal = await self.judge.judge(lock.header, self._last_header, ahead=1)
        if refusal is not None and refusal.final:
            await self._abandon(lock.header, str(refusal))
            return None
        rec = self.records.get(n)
        if rec is not None and rec.header == lock.header:
            return lock  # certified here: it binds until accepted or refused for good
        if self._clock() - lock.approved_at >= self.config.approval_lock_s:
            return None
        return lock

    async def _abandon(self, header: BatchHeader, reason: str) -> None:
        """Give up ``header`` for good: never posted, approved or proposed again."""
        n, hid = header.batch_number, message_id(header)
        await trio.to_thread.run_sync(self.records.abandon, header, reason, self._clock())
        if self.records.get(n) is None:
            self._posting.pop(n, None)
        self._open.pop(hid, None)
        self._heard.pop(n, None)
        self._refused_since.pop(n, None)
        self.metrics.state("abandoned")
        log.warning(
            "batch %d: abandoning header 0x%s: the L1 inbox refuses it for good (%s); "
            "the batch number will be proposed again",
            n,
            hid.hex()[:16],
            reason,
        )

    def _set_stall(self, stall: Stall | None) -> None:
        old = self._stall
        if stall is not None and old is not None and old.batch_number == stall.batch_number:
            stall = Stall(stall.batch_number, stall.reason, old.since)
        self._stall = stall
        self.metrics.stalled(stall is not None)

    # --- posting -----------------------------------------------------------------------------

    async def _on_certified(self, cert: BatchCertificate) -> None:
        hid = message_id(cert.header)
        o = self._open.get(hid)
        if o is None or o.certified_at is not None or self.poster is None or self.key is None:
            return
        n = cert.header.batch_number
        if n < self._inbox_next or n in self._posting:
            return
        o.certified_at = self._clock()
        await self.poster.certified(cert, o.prepared)
        self._posting[n] = hid
        self.metrics.state("certified")
        log.info("batch %d certified (%d signers)", n, len(cert.signatures))
        await self._post_due()

    def _my_delay(self) -> float | None:
        assert self.key is not None
        order = list(self._schedule())
        if self.key.public_key not in order:
            return None
        return order.index(self.key.public_key) * self.config.posting_deadline_s

    async def _post_due(self) -> None:
        if self.poster is None or self.key is None:
            return
        now = self._clock()
        for n in sorted(self._posting):
            if n < self._inbox_next:
                continue
            rec = self.records.get(n)
            if rec is None:
                self._posting.pop(n, None)  # abandoned
                continue
            if n == self._inbox_next and rec.state is not BatchState.ACCEPTED:
                refusal = await self.judge.judge(rec.header, self._last_header, ahead=1)
                if refusal is not None and refusal.final:
                    await self._abandon(rec.header, str(refusal))
                    why = f"batch {n}: the L1 inbox refuses its certificate for good ({refusal})"
                    self._set_stall(Stall(n, why + "; proposing it again", now))
                    continue
            if not self._due(n, rec.state, now):
                continue
            result = await self.poster.post(n)
            await self._after_post(rec.header, result, now)
            if result.outcome is PostOutcome.NOT_NEXT:
                break

    def _due(self, n: int, state: BatchState, now: float) -> bool:
        """This node's turn to post batch ``n`` (or its call is already out)."""
        o = self._open.get(self._posting.get(n, b""))
        since = o.certified_at if o is not None and o.certified_at else self._restored_at
        delay = self._my_delay()
        return state == BatchState.POSTED or (delay is not None and now - since >= delay)

    async def _after_post(self, header: BatchHeader, result: PostResult, now: float) -> None:
        n, outcome = header.batch_number, result.outcome
        if outcome in (PostOutcome.SENT, PostOutcome.ACCEPTED, PostOutcome.WAITING):
            self._refused_since.pop(n, None)
            if outcome is not PostOutcome.WAITING and self._stall and self._stall.batch_number == n:
                self._set_stall(None)
            return
        if outcome is PostOutcome.NOT_NEXT:
            return
        log.warning("batch %d: %s: %s", n, outcome.value, result.detail)
        self._set_stall(Stall(n, f"batch {n}: {outcome.value}: {result.detail}", now))
        if outcome is PostOutcome.REJECTED:
            # A refusal the inbox rules do not call final (they are checked before posting):
            # give the certificate up after a deadline.
            first = self._refused_since.setdefault(n, now)
            if now - first >= self.config.abandon_after_s:
                await self._abandon(header, f"refused for {now - first:.0f} s: {result.detail}")


async def _encoded(blocks: Sequence[CertifiedBlock]) -> list[bytes]:
    """The wire encoding of ``blocks``, for the batch worker, made in a thread: ~16 ms of CPU
    per 10k transactions that would otherwise hold the event loop in one piece (the thread
    still takes the GIL, but hands it back to the loop every switch interval)."""
    return await trio.to_thread.run_sync(_encode_all, list(blocks))


def _encode_all(blocks: Sequence[CertifiedBlock]) -> list[bytes]:
    return [encode(b) for b in blocks]


def _as_rebuilt(h: BatchHeader) -> BatchHeader:
    """An extda header as the builder makes it before the DA blob is named (calldata-shaped):
    what a co-signer's rebuild is compared with; the pointer is checked on its own."""
    if h.da_kind != DA_EXTERNAL:
        return h
    return dataclasses.replace(h, da_kind=DA_CALLDATA, da_pointer=None)


def _count_through_forced(pending: Sequence[CertifiedBlock], forced_index: int) -> int:
    """How many pending blocks reach the first one that includes forced entry
    ``forced_index`` (0 if none does yet)."""
    for i, cb in enumerate(pending):
        if cb.block.header.forced_index > forced_index:
            return i + 1
    return 0


def _stall_json(stall: Stall | None, now: float) -> dict[str, Any] | None:
    if stall is None:
        return None
    return {
        "batch": stall.batch_number,
        "reason": stall.reason,
        "since": stall.since,
        "seconds": round(now - stall.since, 1),
    }


def _hex(b: bytes | None) -> str | None:
    return None if b is None else "0x" + b.hex()


def _cost_json(c: BatchCost) -> dict[str, Any]:
    return {
        "number": c.batch_number,
        "first_height": c.first_height,
        "last_height": c.last_height,
        "l1_block": c.l1_block,
        "l1_tx": "0x" + c.l1_tx.hex(),
        "da": c.da,
        "blobs": c.blobs,
        "bytes": c.posted_bytes,
        "payload_bytes": c.payload_bytes,
        "txs": c.txs,
        "fee_paid": str(c.fee_paid),
        "blob_fee": str(c.blob_fee),
        "da_fee": None if c.da_fee is None else str(c.da_fee),
        "da_fee_wei": str(c.da_fee_wei),
        "total_cost": str(c.total_cost),
        "fee_per_tx": str(c.total_cost // c.txs) if c.txs else None,
        "bytes_per_tx": round(c.bytes_per_tx, 1) if c.txs else None,
        "posted_by_us": c.by_us,
    }
