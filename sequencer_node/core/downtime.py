"""Downtime tracking: missed duties per sequencer over windows of committed L2 heights.

Duties are read from the committed chain, so every honest node counts the same numbers and
signs the same :class:`~sequencer_node.wire.messages.DowntimeReport`:

* a *proposal duty* for the leader of every round between a committed block's parent round and
  its own round (each such round failed, so its leader missed it) and for the block's proposer
  (done);
* a *vote duty* for every member of the block's epoch table: missed if the member's signature
  is not in the QC that certifies the block.

A QC holds the first > 2/3 of votes to arrive, so a member that is live but a little slower
than the others is absent from most QCs. So a node also counts, from its own observation, the
vote duties it saw missed: a member's duty for a block is *seen done* when its vote of that
block's round reached this node at any time before the block's accounting, which waits a grace
of a few committed heights after the block (the core's ``downtime_grace_heights``); votes that
arrive after the QC formed count, and so does a vote for another block of that round (an honest
node that voted for the other proposal of an equivocating leader took part). A node reports
a sequencer only when both counts cross the threshold:
the report carries the chain's numbers (identical on every honest node, so > 2/3 of them can
certify it) and is signed only by nodes whose own observation agrees. A slow but live node's
votes reach every honest node within the grace, so none signs; a node that is down is missing
everywhere, so every honest node signs.

Windows are ``[k*W + 1, (k+1)*W]`` in heights. At the end of a window every sequencer with at
least ``W / 2`` duties in it (a member of the table for at least half of the window: a few
duties of a sequencer that just joined or left say nothing) whose missed shares are at least
``threshold_percent`` is reported.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sequencer_node.wire.certificates import has_quorum
from sequencer_node.wire.messages import DowntimeCertificate, DowntimeReport, Endorsement


@dataclass(frozen=True, slots=True)
class DowntimeFinding:
    offender: bytes
    from_height: int
    to_height: int
    missed: int
    duties: int


class DowntimeTracker:
    def __init__(self, *, window: int, threshold_percent: int) -> None:
        self.window = window
        self.threshold_percent = threshold_percent
        self._missed: dict[bytes, int] = {}
        self._duties: dict[bytes, int] = {}
        #: Duties this node saw missed (no vote arrived within the grace).
        self._unseen: dict[bytes, int] = {}

    def _add(self, who: bytes, missed: bool, unseen: bool | None = None) -> None:
        self._duties[who] = self._duties.get(who, 0) + 1
        if missed:
            self._missed[who] = self._missed.get(who, 0) + 1
        if missed if unseen is None else unseen:
            self._unseen[who] = self._unseen.get(who, 0) + 1

    def _over(self, count: dict[bytes, int], who: bytes, duties: int) -> bool:
        return 100 * count.get(who, 0) >= self.threshold_percent * duties

    def on_commit(
        self,
        height: int,
        *,
        failed_leaders: Iterable[bytes],
        proposer: bytes,
        members: Iterable[bytes],
        voters: set[bytes],
        seen: set[bytes] | None = None,
    ) -> list[DowntimeFinding]:
        """Account one committed block; at a window's end return who missed too much.

        ``voters`` signed the block's QC; ``seen`` (a superset) voted for it as far as this
        node knows, late votes included (None: only the QC's signers)."""
        for leader in failed_leaders:
            self._add(leader, True)
        self._add(proposer, False)
        for m in members:
            self._add(m, m not in voters, None if seen is None else m not in seen)
        if height % self.window != 0:
            return []
        start = height - self.window + 1
        found = [
            DowntimeFinding(who, start, height, self._missed.get(who, 0), duties)
            for who, duties in sorted(self._duties.items())
            if 2 * duties >= self.window
            and self._over(self._missed, who, duties)
            and self._over(self._unseen, who, duties)
        ]
        self._missed.clear()
        self._duties.clear()
        self._unseen.clear()
        return found


#: Report groups collecting signatures at once (the oldest is dropped first).
_OPEN_REPORTS = 1_024


class DowntimeReports:
    """Signed downtime reports from the members of one stake table, grouped by statement,
    until a group carries > 2/3 of the stake: then it becomes a certificate (once)."""

    def __init__(self) -> None:
        self._open: dict[tuple[object, ...], dict[bytes, DowntimeReport]] = {}
        self._done: set[tuple[object, ...]] = set()

    @staticmethod
    def _key(r: DowntimeReport) -> tuple[object, ...]:
        return (r.stake_epoch, r.offender, r.from_height, r.to_height, r.missed, r.duties)

    def certified(self, r: DowntimeReport) -> bool:
        """Whether ``r``'s statement already became a certificate here."""
        return self._key(r) in self._done

    def add(self, r: DowntimeReport, table: Mapping[bytes, int]) -> DowntimeCertificate | None:
        """Add a checked report of a member of ``table``; the certificate once it has quorum."""
        key = self._key(r)
        bucket = self._open.setdefault(key, {})
        if len(self._open) > _OPEN_REPORTS:
            self._open.pop(next(iter(self._open)))
        bucket[r.signer] = r
        if not has_quorum(sum(table.get(s, 0) for s in bucket), sum(table.values())):
            return None
        self._done.add(key)
        self._open.pop(key, None)
        sigs = tuple(Endorsement(s, bucket[s].signature) for s in sorted(bucket))
        return DowntimeCertificate(r, sigs)
