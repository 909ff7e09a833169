"""Downtime tracking: missed duties per sequencer over windows of committed L2 heights.

Duties are read from the committed chain only, so every honest node counts the same numbers
and signs the same :class:`~sequencer_node.wire.messages.DowntimeReport`:

* a *proposal duty* for the leader of every round between a committed block's parent round and
  its own round (each such round failed, so its leader missed it) and for the block's proposer
  (done);
* a *vote duty* for every member of the block's epoch table: missed if the member's signature
  is not in the QC that certifies the block.

Windows are ``[k*W + 1, (k+1)*W]`` in heights. At the end of a window every sequencer whose
missed share is at least ``threshold_percent`` is reported. A QC holds the first > 2/3 of votes
to arrive, so a live but slow member can miss some vote duties: the threshold is meant for
"mostly down", not "sometimes late" (a short blip never reaches it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


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

    def _add(self, who: bytes, missed: bool) -> None:
        self._duties[who] = self._duties.get(who, 0) + 1
        if missed:
            self._missed[who] = self._missed.get(who, 0) + 1

    def on_commit(
        self,
        height: int,
        *,
        failed_leaders: Iterable[bytes],
        proposer: bytes,
        members: Iterable[bytes],
        voters: set[bytes],
    ) -> list[DowntimeFinding]:
        """Account one committed block; at a window's end return who missed too much."""
        for leader in failed_leaders:
            self._add(leader, True)
        self._add(proposer, False)
        for m in members:
            self._add(m, m not in voters)
        if height % self.window != 0:
            return []
        start = height - self.window + 1
        found = [
            DowntimeFinding(who, start, height, self._missed.get(who, 0), duties)
            for who, duties in sorted(self._duties.items())
            if duties > 0 and 100 * self._missed.get(who, 0) >= self.threshold_percent * duties
        ]
        self._missed.clear()
        self._duties.clear()
        return found
