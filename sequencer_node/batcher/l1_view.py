"""What the L1 inbox will judge a batch by, read from the L1 (:class:`InboxJudge`).

The rules themselves are :func:`sequencer_node.batching.inbox_rule.check_batch`, the same
function the inbox runs; this module only gathers its inputs: the inbox's static settings
(once), the L1 head (every :meth:`InboxJudge.refresh`, so a fork change is seen at once) and,
per header, the forced-queue entry the header leaves out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sequencer_node.batching.inbox_rule import InboxView, Landing, Refusal, check_batch
from sequencer_node.clients.l1 import InboxBatch, L1Client, L1Unavailable
from sequencer_node.wire.blobs import BLOB_SCHEDULE, SLOTS_PER_EPOCH
from sequencer_node.wire.messages import BatchHeader

#: Blob limits assumed for a fork this build does not know (Osaka's).
_UNKNOWN_FORK_MAX = 6


@dataclass(frozen=True, slots=True)
class _Settings:
    l2_chain_id: int
    first_height: int
    unbonding_epochs: int
    sequencing_window: int
    slots_per_epoch: int
    forks: tuple[tuple[int, str], ...]
    da_namespace: bytes
    da_fee_wei_per_unit: int


class InboxJudge:
    """``await judge.refresh()`` each tick, then ``await judge.judge(header, last, ahead=k)``."""

    def __init__(self, l1: L1Client) -> None:
        self.l1 = l1
        self._settings: _Settings | None = None
        self.head = 0
        self.head_slot = 0
        self.finalized = 0
        # Forced-queue answers at the current head, by forced index: the queue only changes
        # with a new L1 block, and a busy batcher judges the same header every tick.
        self._forced: dict[int, tuple[int, int | None]] = {}

    async def refresh(self) -> None:
        """Read the L1 head (and, the first time, the inbox's settings)."""
        await self.load_settings()
        self.observe(await self.l1.status())

    async def refresh_with_inbox(self, start: int, count: int) -> list[InboxBatch]:
        """:meth:`refresh`, and the inbox batches from ``start`` (at most ``count``) read in
        the same exchange with the L1 (the batcher's tick: one exchange instead of two)."""
        await self.load_settings()
        status, batches = await self.l1.status_and_inbox(start, count)
        self.observe(status)
        return batches

    async def load_settings(self) -> None:
        """Read the inbox's settings, the first time."""
        if self._settings is None:
            c = await self.l1.config()
            self._settings = _Settings(
                l2_chain_id=int(c["l2ChainId"]),
                first_height=int(c.get("inboxFirstHeight", 1)),
                unbonding_epochs=int(c["unbondingEpochs"]),
                sequencing_window=int(c["sequencingWindow"]),
                slots_per_epoch=int(c.get("slotsPerEpoch", SLOTS_PER_EPOCH)),
                forks=tuple((int(n), str(f)) for n, f in c["forks"]),
                da_namespace=bytes.fromhex(str(c.get("daNamespace", "0x"))[2:]),
                da_fee_wei_per_unit=int(c.get("daFeeWeiPerUnit", 1)),
            )

    def observe(self, status: dict[str, Any]) -> None:
        """Take the head from an answer of the L1's ``seq_status``."""
        try:
            head = int(status["head"])
            head_slot = int(status["headSlot"])
            finalized = int(status.get("finalizedBlock", 0))
        except (KeyError, TypeError, ValueError) as e:
            raise L1Unavailable(f"L1 sent a malformed status: {e!r}") from None
        self.observe_head(head, head_slot, finalized)

    def observe_head(self, head: int, head_slot: int, finalized: int) -> None:
        """Take the head from another read of it (the node's L1 follower's poll)."""
        if head != self.head:
            self._forced.clear()
        self.head = head
        self.head_slot = head_slot
        self.finalized = finalized

    @property
    def ready(self) -> bool:
        return self._settings is not None

    def landing(self, ahead: int = 1) -> Landing:
        """The L1 block ``ahead`` blocks past the head (its epoch is a lower bound: slots may
        be empty), with the blob limits of the fork active there."""
        s = self._settings
        assert s is not None, "refresh() first"
        block = self.head + ahead
        fork = ""
        for start, name in s.forks:
            if start <= block:
                fork = name
        params = BLOB_SCHEDULE.get(fork)
        return Landing(
            l1_block=block,
            epoch=(self.head_slot + ahead) // s.slots_per_epoch,
            fork=fork,
            max_blobs_per_tx=params.max_per_tx if params else _UNKNOWN_FORK_MAX,
            max_blobs_per_block=params.max if params else _UNKNOWN_FORK_MAX,
        )

    @property
    def da_namespace(self) -> bytes:
        """The rollup's namespace on the external DA layer (empty: the L1 takes no extda)."""
        return self._settings.da_namespace if self._settings else b""

    @property
    def da_fee_wei_per_unit(self) -> int:
        """Wei per DA fee unit: the rate at which the L1 counts an extda batch's DA fee."""
        return self._settings.da_fee_wei_per_unit if self._settings else 1

    def max_blobs(self) -> int | None:
        """The per-transaction blob limit of the next block's fork (None before a refresh)."""
        return self.landing(1).max_blobs_per_tx if self.ready else None

    async def judge(
        self, header: BatchHeader, last: BatchHeader | None, *, ahead: int = 1
    ) -> Refusal | None:
        """The inbox rule ``header`` breaks if it lands ``ahead`` blocks past the head.

        ``last`` is the last batch the inbox accepted. The header's stake snapshot is taken
        to exist: a co-signer read it for its stake view, and its age is checked here.
        """
        if self._settings is None:
            await self.refresh()
        s = self._settings
        assert s is not None
        forced_count, skipped = await self._forced_at(header.forced_index)
        view = InboxView(
            l2_chain_id=s.l2_chain_id,
            first_height=s.first_height,
            last=last,
            forced_count=forced_count,
            skipped_forced_at=skipped,
            snapshot_exists=True,
            unbonding_epochs=s.unbonding_epochs,
            sequencing_window=s.sequencing_window,
            da_namespace=s.da_namespace,
        )
        return check_batch(header, view, self.landing(ahead), blob_count=len(header.blob_hashes))

    async def _forced_at(self, index: int) -> tuple[int, int | None]:
        """(entries queued, L1 block of entry ``index`` or None) at the current head."""
        known = self._forced.get(index)
        if known is None:
            q = await self.l1.forced_queue(index, 1)
            at = q.entries[0].l1_block if index < q.length and q.entries else None
            known = (q.length, at)
            if len(self._forced) < 64:
                self._forced[index] = known
        return known


__all__ = ["InboxJudge"]
