"""Where the money goes, per batch: what the L1 charged for a batch against what the L2
collected in fees from its blocks (docs/fees.md, "Where the money goes").

The ledger's fee state keeps running totals of the fees collected (base, L1 data, priority)
and of what the L1 fee vault paid the batcher account. :class:`FeeAccounting` remembers the
totals after each committed block (bounded), so a batch covering L2 heights ``first ..
last`` collected ``totals(last) - totals(first - 1)``. An external-DA batch's cost is the L1 gas of
its pointer post plus the DA layer's fee for its blob (in wei at the L1's rate; the L1 counts
the same sum as the batch's posting cost, which the L1 fee vault pays). The batches view
(``GET /v1/batches``, ``seqctl batches``) adds those fields to each row that has the totals
of both ends (after a restart, batches below the restart height have none).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from sequencer_node.core.fees import FeeState

#: Committed heights whose totals are kept (the newest ones).
KEEP_HEIGHTS = 200_000


class FeeAccounting:
    """Running fee totals per committed height (see the module docstring)."""

    def __init__(self, keep: int = KEEP_HEIGHTS) -> None:
        self._keep = keep
        self._totals: OrderedDict[int, tuple[int, int, int]] = OrderedDict()

    def on_commit(self, height: int, state: FeeState | None) -> None:
        if state is None:
            return
        self._totals[height] = (state.collected_base, state.collected_l1, state.collected_priority)
        while len(self._totals) > self._keep:
            self._totals.popitem(last=False)

    def collected(self, first: int, last: int) -> tuple[int, int, int] | None:
        """(base, L1 data, priority) fees collected by the blocks ``first .. last``."""
        before = (0, 0, 0) if first <= 1 else self._totals.get(first - 1)
        after = self._totals.get(last)
        if before is None or after is None:
            return None
        return (after[0] - before[0], after[1] - before[1], after[2] - before[2])

    def batch_row(self, row: dict[str, Any]) -> dict[str, Any]:
        """``row`` (a batches-view row: ``first_height``, ``last_height``, ``fee_paid``, and
        for an external-DA batch ``da_fee_wei``) with what the L2 collected for it and whether
        its L1 data fees covered what posting it cost: the L1's charge plus the DA layer's
        (``total_cost``, what the L1 fee vault pays the batcher account)."""
        got = self.collected(int(row["first_height"]), int(row["last_height"]))
        if got is None:
            return {**row, "l2_collected": None, "l1_fee_covered": None}
        paid = posting_cost(row)
        cover = None if not paid else round(got[1] / paid, 4)
        collected = {"base_fee": str(got[0]), "l1_data_fee": str(got[1]),
                     "priority_fee": str(got[2])}  # fmt: skip
        return {**row, "l2_collected": collected, "l1_fee_covered": cover}


def posting_cost(row: dict[str, Any]) -> int | None:
    """Wei a batches-view row's batch cost to post: its L1 charge (``fee_paid``) plus what
    the DA layer charged (``da_fee_wei``, external DA only); None while not known."""
    paid = row.get("fee_paid")
    if paid is None:
        return None
    return int(paid) + int(row.get("da_fee_wei") or 0)


__all__ = ["KEEP_HEIGHTS", "FeeAccounting", "posting_cost"]
