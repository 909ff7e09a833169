"""The vote pool: signed consensus statements per slot, certificates formed from them, evidence.

Every proposal, vote and timeout this node accepts is kept by its *slot* (signer, round) for a
window of recent rounds (``ROUND_HISTORY``): a second, different statement in a slot is
equivocation and becomes evidence (once per kind, signer and round). Votes are bucketed by
(round, block) and form a QC once more than 2/3 of the epoch's stake voted; timeouts are
bucketed by round and form a TC (etcd raft keeps the same job apart in ``quorum`` and
``ProgressTracker``). Signatures are checked by the caller before anything is added here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from sequencer_node.core.api import EpochInfo
from sequencer_node.wire.certificates import has_quorum, timeout_rank, vote_for
from sequencer_node.wire.codec import signing_bytes
from sequencer_node.wire.messages import (
    DoubleProposal,
    DoubleTimeout,
    DoubleVote,
    Endorsement,
    Evidence,
    EvidenceKind,
    Proposal,
    QuorumCertificate,
    Timeout,
    TimeoutCertificate,
    Vote,
)

#: Rounds below the current one for which votes/timeouts are still kept (evidence horizon).
ROUND_HISTORY = 256
#: Evidence kept for ``status()`` and tests (the shell submits each piece as it is found).
_EVIDENCE_KEPT = 1_024

#: (height, epoch, table) of the block that will extend a high QC: what a TC names.
TableOf = Callable[[QuorumCertificate | None], tuple[int, int, EpochInfo] | None]


class VotePool:
    """Statements by slot, vote and timeout buckets, and the evidence found in them."""

    def __init__(self, chain_id: int) -> None:
        self._chain_id = chain_id
        self._proposal_slot: dict[tuple[bytes, int], Proposal] = {}
        self._vote_slot: dict[tuple[bytes, int], Vote] = {}
        self._votes: dict[tuple[int, bytes], dict[bytes, Vote]] = {}
        self._timeout_slot: dict[tuple[bytes, int], Timeout] = {}
        self._timeouts: dict[int, dict[bytes, Timeout]] = {}
        self._timeout_qcs: dict[tuple[int, bytes], QuorumCertificate] = {}
        self._evidence_keys: set[tuple[EvidenceKind, bytes, int]] = set()
        self.evidence: list[Evidence] = []

    # --- slots and evidence ---------------------------------------------------------------

    def first_proposal(self, proposal: Proposal) -> Proposal:
        """The first proposal kept in ``proposal``'s slot (``proposal`` itself if none)."""
        h = proposal.header
        return self._proposal_slot.setdefault((h.proposer, h.round), proposal)

    def vote_in_slot(self, vote: Vote) -> Vote | None:
        return self._vote_slot.get((vote.voter, vote.round))

    def add_vote(self, vote: Vote) -> None:
        """Keep a checked vote whose slot is empty, towards a QC for its block."""
        self._vote_slot[(vote.voter, vote.round)] = vote
        self._votes.setdefault((vote.round, vote.block_hash), {})[vote.voter] = vote

    def voters(self, round_: int) -> set[bytes]:
        """Keys whose vote of ``round_`` reached this node, before or after a QC formed and for
        whichever block (an honest node may have voted for the other proposal of an
        equivocating leader: it took part all the same)."""
        return {voter for voter, r in self._vote_slot if r == round_}

    def votes_of_qc(self, qc: QuorumCertificate) -> list[Evidence]:
        """Every endorsement in a valid QC is a signed vote: keep them, so a double voter
        that split its two votes between halves of the network is caught once a QC travels."""
        found = []
        for e in qc.signatures:
            vote = vote_for(qc, e.signer, e.signature)
            prev = self._vote_slot.setdefault((e.signer, qc.round), vote)
            if prev != vote:
                ev = self.evidence_of(prev, vote)
                if ev is not None:
                    found.append(ev)
        return found

    def timeout_in_slot(self, t: Timeout) -> Timeout | None:
        return self._timeout_slot.get((t.voter, t.round))

    def keep_timeout(self, t: Timeout) -> None:
        """Keep a checked timeout whose slot is empty."""
        self._timeout_slot[(t.voter, t.round)] = t

    def count_timeout(self, t: Timeout) -> None:
        """Count a kept timeout towards its round's TC."""
        if self._timeout_slot.get((t.voter, t.round)) == t:
            self._timeouts.setdefault(t.round, {})[t.voter] = t

    def add_timeout_qc(self, high_qc: QuorumCertificate) -> None:
        """A checked QC that a timeout reports as its high QC (a TC must carry it)."""
        self._timeout_qcs[(high_qc.round, high_qc.block_hash)] = high_qc

    def evidence_of(
        self, old: Proposal | Vote | Timeout, new: Proposal | Vote | Timeout
    ) -> Evidence | None:
        """Evidence that ``old`` and ``new``, signed statements of one slot, differ (once per
        kind, signer and round)."""
        if signing_bytes(old, self._chain_id) == signing_bytes(new, self._chain_id):
            return None
        ev: Evidence
        if isinstance(old, Proposal) and isinstance(new, Proposal):
            ev = DoubleProposal(old, new)
        elif isinstance(old, Vote) and isinstance(new, Vote):
            ev = DoubleVote(old, new)
        elif isinstance(old, Timeout) and isinstance(new, Timeout):
            ev = DoubleTimeout(old, new)
        else:  # pragma: no cover - callers pass matching kinds
            raise AssertionError("mismatched evidence kinds")
        key = (ev.kind, ev.offender, ev.round)
        if key in self._evidence_keys:
            return None
        self._evidence_keys.add(key)
        self.evidence.append(ev)
        if len(self.evidence) > _EVIDENCE_KEPT:
            del self.evidence[0]
        return ev

    # --- certificates ---------------------------------------------------------------------

    def form_qc(self, vote: Vote, table: Mapping[bytes, int]) -> QuorumCertificate | None:
        """A QC for ``vote``'s block once the votes for it carry > 2/3 of ``table``."""
        bucket = self._votes.get((vote.round, vote.block_hash), {})
        votes = [v for v in bucket.values() if v.epoch == vote.epoch and v.height == vote.height]
        stake = sum(table.get(v.voter, 0) for v in votes)
        if not has_quorum(stake, sum(table.values())):
            return None
        sigs = tuple(
            Endorsement(v.voter, v.signature)
            for v in sorted(votes, key=lambda v: v.voter)
            if table.get(v.voter, 0) > 0
        )
        return QuorumCertificate(vote.block_hash, vote.height, vote.round, vote.epoch, sigs)

    def form_tc(self, round_: int, table_of: TableOf) -> TimeoutCertificate | None:
        """A TC for ``round_`` once its timeouts carry > 2/3 of the stake of the epoch that
        follows their highest QC (``table_of`` names it)."""
        timeouts = [
            t
            for t in self._timeouts.get(round_, {}).values()
            if t.high_qc_round == 0 or (t.high_qc_round, t.high_qc_block) in self._timeout_qcs
        ]
        # The TC's high QC must be the highest among the timeouts it carries, and its epoch
        # (whose table counts the stake) follows that QC; filtering by the table can change
        # the highest, so settle both together (a few passes at most).
        usable = timeouts
        for _ in range(3):
            if not usable:
                return None
            best = max(usable, key=timeout_rank)
            high_qc = self._timeout_qcs.get((best.high_qc_round, best.high_qc_block))
            judged = table_of(high_qc)
            if judged is None:
                return None
            height, epoch, table = judged[0], judged[1], judged[2].table
            kept = [t for t in usable if t.epoch <= epoch and table.get(t.voter, 0) > 0]
            if len(kept) == len(usable):
                break
            usable = kept
        else:
            return None
        usable = sorted(usable, key=lambda t: t.voter)
        top = max(usable, key=timeout_rank)  # what verify_tc will pick
        if (top.high_qc_round, top.high_qc_block) != (best.high_qc_round, best.high_qc_block):
            return None
        if not has_quorum(sum(table[t.voter] for t in usable), sum(table.values())):
            return None
        return TimeoutCertificate(round_, height, epoch, tuple(usable), high_qc)

    # --- forgetting -----------------------------------------------------------------------

    def prune(self, floor: int) -> None:
        """Forget every statement of a round below ``floor``."""
        for d in (self._vote_slot, self._proposal_slot, self._timeout_slot):
            for k in [k for k in d if k[1] < floor]:
                del d[k]
        for k2 in [k for k in self._votes if k[0] < floor]:
            del self._votes[k2]
        for r in [r for r in self._timeouts if r < floor]:
            del self._timeouts[r]
        for k3 in [k for k in self._timeout_qcs if k[0] < floor]:
            del self._timeout_qcs[k3]
        self._evidence_keys = {k for k in self._evidence_keys if k[2] >= floor}


__all__ = ["ROUND_HISTORY", "TableOf", "VotePool"]
