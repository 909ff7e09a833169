"""The node's view of L1: head and finality, stake snapshots, registered sequencers, the
forced-inclusion queue and the batch inbox; and the queue that submits slashing evidence and
downtime certificates.

Theory of operation
-------------------
* One polling loop (every ``poll_s``) reads the L1 head and finalized block, new forced-queue
  entries, new inbox batches and new fee data (every ``sequencers_every`` polls also the
  registered sequencers and the blob base fee) in ONE request (a JSON-RPC batch:
  :meth:`L1Client.poll`), then, when the head moved, the finalized stake snapshots it has not
  seen. What the core must know goes into the node's inbound channel as core events
  (:class:`L1HeadChanged`, :class:`StakeSnapshotAvailable`, :class:`ForcedEntriesSeen`, and
  for a chain with a fee model :class:`L1FeeInfoSeen`: each finalized L1 block's base fees,
  batch posting costs and owner's fee-model setting, in order from ``fee_start``); the
  rest (registered sequencers and their p2p addresses, inbox batches) is state read by the
  runner and the RPC.
* **Outages never crash the node.** Every L1 error (unreachable, 5xx, garbage, refusal) is
  logged once per outage, counted, and retried with capped exponential backoff and jitter; the
  consensus keeps running on the last known L1 view (the core only needs L1 for new epochs and
  forced entries). When the L1 comes back, the loop resumes where it was.
* **Submissions** go through a bounded queue (``submit_queue`` items; when full the newest is
  dropped and counted: evidence is re-found by every honest node, so one loss is not fatal).
  One task sends them in order, retrying an unreachable L1 up to ``submit_attempts`` times;
  a refusal (e.g. already slashed, not enough balance for fees) is final and logged.
"""

from __future__ import annotations

import enum
import logging
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trio

from sequencer_node.clients.l1 import (
    ForcedQueue,
    InboxBatch,
    L1Client,
    L1Error,
    L1FeeRecord,
    L1Poll,
    L1Rejected,
    SequencerInfo,
)
from sequencer_node.core import api
from sequencer_node.core.fees import L1FeeInfo
from sequencer_node.shell.metrics import NodeMetrics
from sequencer_node.system.retry import backoff_delay
from sequencer_node.wire.crypto import SigningKey
from sequencer_node.wire.messages import DowntimeCertificate, Evidence, EvidenceKind

log = logging.getLogger(__name__)

SLOTS_PER_EPOCH = 32
#: Stake snapshots fetched per poll at most, and how far back the first poll looks.
_SNAPSHOTS_PER_POLL = 8
_SNAPSHOT_LOOKBACK = 64
_INBOX_KEEP = 4096


#: What the watcher tells the core (through the node's input channel).
L1Event = api.L1HeadChanged | api.StakeSnapshotAvailable | api.ForcedEntriesSeen | api.L1FeeInfoSeen
#: Forced-queue entries and inbox batches read per request.
_PAGE = 100
#: L1 blocks' fee data read per request, and requests per poll at most.
_FEE_PAGE = 256
_FEE_PAGES_PER_POLL = 8


class L1StartError(Exception):
    """The L1 could not be used at start (unreachable after retries, wrong chain id)."""


class SubmissionKind(enum.Enum):
    """What a submission reports; the values name it in ``/v1/evidence`` and metrics."""

    DOUBLE_PROPOSAL = EvidenceKind.DOUBLE_PROPOSAL.value
    DOUBLE_VOTE = EvidenceKind.DOUBLE_VOTE.value
    DOUBLE_TIMEOUT = EvidenceKind.DOUBLE_TIMEOUT.value
    DOWNTIME = "downtime"


class SubmissionOutcome(enum.Enum):
    """How a submission ended (metric label)."""

    SUBMITTED = "submitted"
    REJECTED = "rejected"  # the L1 refused it (final)
    FAILED = "failed"  # the L1 stayed unreachable for every attempt


@dataclass(slots=True)
class Submission:
    """One evidence or downtime certificate on its way to L1 (shown by ``/v1/evidence``)."""

    kind: SubmissionKind
    offender: bytes
    round: int
    item: Evidence | DowntimeCertificate
    submitted: bool = False
    l1_tx: bytes | None = None
    error: str | None = None
    attempts: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "offender": "0x" + self.offender.hex(),
            "round": self.round,
            "submitted": self.submitted,
            "l1_tx": None if self.l1_tx is None else "0x" + self.l1_tx.hex(),
            "error": self.error,
            "attempts": self.attempts,
        }


@dataclass(frozen=True, slots=True)
class InboxEntry:
    batch_number: int
    first_height: int
    last_height: int
    l1_block: int
    tx_hash: bytes


#: First retry delay after an L1 failure (doubling per attempt up to the cap).
_RETRY_INITIAL_S = 0.5


async def connect_l1(
    l1: L1Client, *, expected_chain_id: int, timeout_s: float, rng: random.Random | None = None
) -> int:
    """Wait (up to ``timeout_s``) until the L1 answers; check its chain id; return it.

    Raises:
        L1StartError: unreachable for ``timeout_s`` (the message names the URL, how long and
            how many attempts, and the last error), or the chain id differs from the genesis.
    """
    rng = rng or random.Random()
    start = trio.current_time()
    attempt = 0
    last: Exception | None = None
    chain_id: object = None
    with trio.move_on_after(timeout_s):
        while True:
            attempt += 1
            try:
                chain_id = await l1.rpc("eth_chainId")
                break
            except L1Error as e:
                last = e
                log.warning("L1 at %s not answering yet (attempt %d): %s", l1.url, attempt, e)
            await trio.sleep(backoff_delay(attempt, initial_s=_RETRY_INITIAL_S, max_s=2.0, rng=rng))
    if chain_id is None:
        waited = trio.current_time() - start
        raise L1StartError(
            f"the L1 at {l1.url} is unreachable: tried for {waited:.1f} s ({attempt} attempts); "
            f"last error: {last}. Start the L1 or fix --l1-url / SEQ_L1_URL"
        )
    got = _chain_id(chain_id)
    if got != expected_chain_id:
        raise L1StartError(
            f"the L1 at {l1.url} has chain id {got}, but the genesis file says l1_chain_id "
            f"{expected_chain_id}; point --l1-url at the right L1 or fix the genesis"
        )
    return got


def _chain_id(answer: object) -> int | None:
    """``eth_chainId``'s answer (hex string, or an integer from lenient servers)."""
    if isinstance(answer, int):
        return answer
    if isinstance(answer, str):
        try:
            return int(answer, 16)
        except ValueError:
            return None
    return None


class L1Watcher:
    """See the module docstring. ``await nursery.start(follower.run)``."""

    def __init__(
        self,
        l1: L1Client,
        *,
        events: trio.MemorySendChannel[L1Event],
        key: SigningKey | None,
        genesis_stake_epoch: int,
        forced_start: int = 0,
        fee_start: int | None = None,
        metrics: NodeMetrics | None = None,
        poll_s: float = 1.0,
        sequencers_every: int = 10,
        submit_queue: int = 64,
        submit_attempts: int = 8,
        backoff_cap_s: float = 10.0,
        on_sequencers: Callable[[dict[bytes, SequencerInfo]], None] | None = None,
        rng: random.Random | None = None,
        on_poll: Callable[[L1Poll, int], None] | None = None,
    ) -> None:
        self.l1 = l1
        #: Told of each successful poll and the inbox batch its page starts at (the node's
        #: batcher takes the head and the inbox from it instead of reading them again).
        self.on_poll = on_poll
        self._events = events
        self.key = key
        self.metrics = metrics
        self.poll_s = poll_s
        self._sequencers_every = sequencers_every
        self._statuses_seen: set[str] = set()
        self._submit_attempts = submit_attempts
        self._backoff_cap_s = backoff_cap_s
        self._on_sequencers = on_sequencers
        self._rng = rng or random.Random()
        self.head = 0
        self.finalized = 0
        self.head_slot = 0
        self.up = False
        self.registered: dict[bytes, SequencerInfo] = {}
        self.inbox: deque[InboxEntry] = deque(maxlen=_INBOX_KEEP)
        self._inbox_next = 0
        self._forced_next = forced_start
        #: Next L1 block whose fee data goes to the core (None: the chain needs none).
        self._fee_next = fee_start
        #: The fee data of the last finalized L1 block read (estimates, reporting).
        self.last_fee_info: L1FeeInfo | None = None
        self._snapshot_next = genesis_stake_epoch + 1
        self._snapshot_floor_set = False
        self._polls = 0
        self._failures = 0
        self.submissions: deque[Submission] = deque(maxlen=256)
        self._submit_send, self._submit_recv = trio.open_memory_channel[Submission](submit_queue)
        self.dropped_submissions = 0

    # --- read side -------------------------------------------------------------------------

    def safe_height(self) -> int:
        """L2 height covered by the last batch accepted on L1 (0 if none)."""
        return self.inbox[-1].last_height if self.inbox else 0

    def finalized_height(self) -> int:
        """L2 height covered by the last accepted batch whose L1 block is finalized."""
        for entry in reversed(self.inbox):
            if entry.l1_block <= self.finalized:
                return entry.last_height
        return 0

    def batch_of(self, height: int) -> InboxEntry | None:
        for entry in reversed(self.inbox):
            if entry.first_height <= height <= entry.last_height:
                return entry
            if entry.last_height < height:
                return None
        return None

    # --- run -------------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._submitter)
            task_status.started()
            await self._poll_loop()

    async def refresh_sequencers(self) -> None:
        """Read the registered sequencers (their keys and p2p addresses) now. Those that
        withdrew everything are left out (they are no longer admitted as peers)."""
        self._take_sequencers(await self.l1.sequencers())

    def _take_sequencers(self, seqs: list[SequencerInfo]) -> None:
        registered = {s.signing_key: s for s in seqs if s.status != "withdrawn"}
        changed = registered != self.registered
        self.registered = registered
        self._observe_own_status(seqs)
        if changed and self._on_sequencers is not None:
            self._on_sequencers(registered)

    def _observe_own_status(self, seqs: list[SequencerInfo]) -> None:
        """``seqnet_sequencer_status{status}``: 1 for this node's status on L1 (alerts on jailed
        or slashed), 0 for the statuses seen before."""
        if self.metrics is None or self.key is None:
            return
        own = next((s.status for s in seqs if s.signing_key == self.key.public_key), None)
        self._statuses_seen.update(x for x in (own,) if x is not None)
        for status in self._statuses_seen:
            self.metrics.sequencer_status.labels(status).set(1 if status == own else 0)

    def _take_registry(self, poll: L1Poll) -> None:
        """The registered sequencers and the blob base fee read with the poll, if asked
        (``seqnet_l1_blob_base_fee_wei``: alerts on a spike)."""
        if poll.sequencers is not None:
            self._take_sequencers(poll.sequencers)
        if poll.blob_base_fee is not None and self.metrics is not None:
            self.metrics.l1_blob_base_fee.set(poll.blob_base_fee)

    async def _poll_loop(self) -> None:
        while True:
            try:
                await self.poll_once()
            except L1Error as e:
                self._failed(e)
            except (KeyError, TypeError, ValueError) as e:  # an answer of a shape not foreseen
                log.exception("L1 answered something unexpected (will retry): %s", e)
                self._failed(e)
            if self._failures:
                await trio.sleep(self._backoff(self._failures))
            else:
                await trio.sleep(self.poll_s)

    def _backoff(self, attempt: int) -> float:
        return backoff_delay(
            attempt, initial_s=_RETRY_INITIAL_S, max_s=self._backoff_cap_s, rng=self._rng
        )

    def _failed(self, e: Exception) -> None:
        if self.up or self._failures == 0:
            log.warning("L1 at %s unavailable: %s (retrying with backoff)", self.l1.url, e)
        self.up = False
        self._failures += 1
        if self.metrics is not None:
            self.metrics.l1_errors.inc()
            self.metrics.l1_up.set(0)

    async def poll_once(self) -> None:
        """One round of reads (raises L1Error on failure; the loop retries): the head, the
        finalized block, the forced queue, the inbox and the fee data (every
        ``sequencers_every`` polls also the registered sequencers and the blob base fee) in ONE
        request (an HTTP exchange costs each side about 1.5 ms of CPU: five a second per node
        were most of an idle 16-node network's L1 traffic), then the follow-up pages and
        snapshots if any."""
        poll = await self.l1.poll(
            forced_from=self._forced_next,
            inbox_from=self._inbox_next,
            fee_from=self._fee_next,
            page=_PAGE,
            fee_page=_FEE_PAGE,
            registry=self._polls % self._sequencers_every == 0,
        )
        if self.on_poll is not None:
            self.on_poll(poll, self._inbox_next)
        head, fin = poll.head, poll.finalized
        if not self.up and self._failures:
            log.info("L1 at %s is back (head %d)", self.l1.url, head.number)
        self.up = True
        self._failures = 0
        if self.metrics is not None:
            self.metrics.l1_up.set(1)
            self.metrics.l1_head.set(head.number)
            self.metrics.l1_finalized.set(fin.number)
        self.head_slot = head.slot
        if head.number != self.head or fin.number != self.finalized:
            self.head = max(self.head, head.number)
            self.finalized = max(self.finalized, fin.number)
            await self._events.send(api.L1HeadChanged(self.head, self.finalized))
        await self._snapshots(head.slot // SLOTS_PER_EPOCH)
        await self._forced(poll.forced)
        await self._fee_infos(poll.fees, more=poll.full_fee_page)
        await self._inbox(poll.inbox)
        self._take_registry(poll)
        self._polls += 1

    async def _snapshots(self, current_epoch: int) -> None:
        final_epoch = current_epoch - 2
        limit = _SNAPSHOTS_PER_POLL
        if not self._snapshot_floor_set:
            # The first look (at start) reads the whole look back at once: a restarted core
            # may need the newest of these to judge its epoch (8 per poll took 8 polls).
            self._snapshot_floor_set = True
            self._snapshot_next = max(self._snapshot_next, final_epoch - _SNAPSHOT_LOOKBACK)
            limit = _SNAPSHOT_LOOKBACK + 1
        fetched = 0
        while self._snapshot_next <= final_epoch and fetched < limit:
            epoch = self._snapshot_next
            try:
                snap = await self.l1.stake_snapshot(epoch)
            except L1Rejected as e:  # dropped by the L1 (too old): nothing to learn
                log.info("L1 has no stake snapshot %d: %s", epoch, e)
                self._snapshot_next += 1
                continue
            if not snap.finalized:
                return
            stakes = tuple(sorted((e.signing_key, e.stake) for e in snap.entries))
            await self._events.send(
                api.StakeSnapshotAvailable(api.StakeSnapshot(snap.epoch, stakes, snap.seed))
            )
            self._snapshot_next += 1
            fetched += 1

    async def _forced(self, q: ForcedQueue) -> None:
        if q.entries:
            await self._events.send(api.ForcedEntriesSeen(q.entries))
            self._forced_next = q.entries[-1].queue_index + 1

    async def _fee_infos(self, first: list[L1FeeRecord], *, more: bool) -> None:
        """The fee data read with the poll, then further pages while they come full."""
        records = first
        for page in range(_FEE_PAGES_PER_POLL):
            if page:
                if not more or self._fee_next is None or self._fee_next > self.finalized:
                    return
                records = await self.l1.l1_fee_info(self._fee_next, _FEE_PAGE)
                more = len(records) >= _FEE_PAGE
            if not records:
                return
            infos = [L1FeeInfo.of(r.number, r.base_fee, r.blob_base_fee, r.batches,
                                  r.fee_model) for r in records]  # fmt: skip
            await self._events.send(api.L1FeeInfoSeen(tuple(infos)))
            self._fee_next = infos[-1].number + 1
            self.last_fee_info = infos[-1]

    async def _inbox(self, first: list[InboxBatch]) -> None:
        """The inbox batches read with the poll, then further pages while they come full."""
        batches = first
        while True:
            for b in batches:
                h = b.header
                self.inbox.append(
                    InboxEntry(h.batch_number, h.first_height, h.last_height, b.l1_block, b.tx_hash)
                )
            self._inbox_next += len(batches)
            if len(batches) < _PAGE:
                return
            batches = await self.l1.inbox_batches(self._inbox_next, _PAGE)

    # --- submissions -----------------------------------------------------------------------

    def submit_evidence(self, evidence: Evidence, offender: bytes) -> Submission:
        kind = SubmissionKind(evidence.kind.value)
        return self._enqueue(Submission(kind, offender, evidence.round, evidence))

    def submit_downtime(self, cert: DowntimeCertificate) -> Submission:
        r = cert.report
        return self._enqueue(Submission(SubmissionKind.DOWNTIME, r.offender, r.to_height, cert))

    def _enqueue(self, sub: Submission) -> Submission:
        self.submissions.append(sub)
        if self.key is None:
            sub.error = "follower node: no key to sign L1 calls"
            return sub
        try:
            self._submit_send.send_nowait(sub)
        except trio.WouldBlock:
            self.dropped_submissions += 1
            sub.error = "submission queue full"
            log.warning("L1 submission queue full; dropping %s of %s", sub.kind.value,
                        sub.offender.hex())  # fmt: skip
        return sub

    async def _submitter(self) -> None:
        async for sub in self._submit_recv:
            await self._submit_one(sub)

    async def _submit_one(self, sub: Submission) -> None:
        assert self.key is not None
        for attempt in range(1, self._submit_attempts + 1):
            sub.attempts = attempt
            try:
                if isinstance(sub.item, DowntimeCertificate):
                    tx = await self.l1.report_downtime(sub.item, self.key)
                else:
                    tx = await self.l1.submit_evidence(sub.item, self.key)
            except L1Rejected as e:
                sub.error = e.reason
                log.warning("L1 refused %s against %s: %s", sub.kind.value,
                            sub.offender.hex()[:16], e)  # fmt: skip
                self._count(sub, SubmissionOutcome.REJECTED)
                return
            except L1Error as e:
                sub.error = str(e)
                await trio.sleep(self._backoff(attempt))
                continue
            sub.submitted, sub.l1_tx, sub.error = True, tx, None
            log.info("submitted %s against %s in L1 tx %s", sub.kind.value, sub.offender.hex()[:16],
                     tx.hex())  # fmt: skip
            self._count(sub, SubmissionOutcome.SUBMITTED)
            return
        log.warning("gave up submitting %s after %d attempts", sub.kind.value,
                    self._submit_attempts)  # fmt: skip
        self._count(sub, SubmissionOutcome.FAILED)

    def _count(self, sub: Submission, outcome: SubmissionOutcome) -> None:
        if self.metrics is not None:
            self.metrics.slashing_submissions.labels(sub.kind.value, outcome.value).inc()


__all__ = [
    "InboxEntry",
    "L1Event",
    "L1Watcher",
    "L1StartError",
    "Submission",
    "SubmissionKind",
    "SubmissionOutcome",
    "connect_l1",
]
