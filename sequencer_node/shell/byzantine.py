"""Byzantine behaviour, for tests only: a node that misbehaves on purpose so that the fault
scenario (``tests/faults``) can check that the honest nodes catch it.

Nothing here runs unless ``sequencer-node run`` is given the hidden ``--byzantine STRATEGY,...``
option *and* the environment sets ``SEQNET_ALLOW_BYZANTINE=1`` (:func:`require_allowed`); the
normal command line cannot reach it by accident.

Strategies (:class:`Strategy`):

* ``equivocate``: as leader, sign a second block for the round (the same header with a
  timestamp one millisecond later) and send one block to half of the peers, the other to the
  rest (both flagged as gossip, so honest nodes pass them on and see both).
* ``double-vote``: after each vote of ours, sign and gossip a second vote of the same round for
  another block hash.
* ``twin``: behave honestly but record every statement this key signs (and to how many peers
  it went); two processes run with the same key (the scenario starts the second one) and the
  records tell which (kind, round) they signed differently and sent, i.e. the equivocation the
  twins injected. There is no same-key guard
  to skip: a node that dials its own key only stops dialling that address.
* ``gossip-flood``: gossip ``TxBatch`` frames of well-formed transfers with bad signatures
  (issue 12, finding 1), as fast as the peers take them.
* ``catchup-flood``: send ``SyncRequest`` for the blocks just below the head to every peer,
  many per second (issue 12, finding 2).

Every injected equivocation (and, for ``twin``, every signed statement) is appended as one JSON
line to ``byzantine.jsonl`` in the data directory, so the harness can compare what was
injected with the evidence the honest nodes submitted to L1. ``equivocate`` and
``double-vote`` stop after :data:`MAX_INJECTIONS` rounds each, so the chain keeps certifying.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Protocol

import trio

from sequencer_node.core.api import SyncRequest
from sequencer_node.shell.p2p_messages import MAX_TX_BATCH, TxBatch
from sequencer_node.wire.codec import signing_bytes
from sequencer_node.wire.crypto import SigningKey, sign_message
from sequencer_node.wire.messages import Block, Proposal, TimeoutMessage, Transaction, Vote

log = logging.getLogger(__name__)

ENV_ALLOW = "SEQNET_ALLOW_BYZANTINE"
RECORD_FILENAME = "byzantine.jsonl"
#: Rounds ``equivocate`` and ``double-vote`` each inject (then the node behaves).
MAX_INJECTIONS = 3
#: Transactions per flooded batch, and batches per burst of ``gossip-flood``.
FLOOD_BATCH = MAX_TX_BATCH
FLOOD_BURST = 4
#: Catch-up requests per peer per burst of ``catchup-flood`` (one burst per tick).
SYNC_BURST = 200
FLOOD_TICK_S = 0.05


class Strategy(enum.Enum):
    EQUIVOCATE = "equivocate"
    DOUBLE_VOTE = "double-vote"
    TWIN = "twin"
    GOSSIP_FLOOD = "gossip-flood"
    CATCHUP_FLOOD = "catchup-flood"


class ByzantineRefused(Exception):
    """The byzantine mode was asked for without the test flag, or named an unknown strategy."""


def parse_strategies(text: str) -> frozenset[Strategy]:
    """``"equivocate,gossip-flood"`` -> the strategies; raises ByzantineRefused."""
    out = set()
    for name in (p.strip() for p in text.split(",")):
        if not name:
            continue
        try:
            out.add(Strategy(name))
        except ValueError:
            known = ", ".join(s.value for s in Strategy)
            raise ByzantineRefused(f"unknown strategy {name!r} (known: {known})") from None
    if not out:
        raise ByzantineRefused("--byzantine needs at least one strategy")
    return frozenset(out)


def require_allowed(environ: Mapping[str, str] = os.environ) -> None:
    """Refuse unless the environment explicitly allows byzantine behaviour (tests only)."""
    if environ.get(ENV_ALLOW) != "1":
        raise ByzantineRefused(
            f"--byzantine is for fault tests only; it misbehaves on purpose and gets the key "
            f"slashed. Set {ENV_ALLOW}=1 to allow it"
        )


class Peers(Protocol):
    """What a strategy needs of the peer manager."""

    def broadcast(self, msg: object) -> int: ...

    def send_to(self, peer: bytes, msg: object, *, gossip: bool = False) -> bool: ...

    def connected(self) -> list[bytes]: ...


def statement_digest(statement: object, chain_id: int) -> str:
    return hashlib.sha256(signing_bytes(statement, chain_id)).hexdigest()


class Byzantine:
    """The node's byzantine side: :meth:`on_broadcast` sees every message the core broadcasts
    (and may send something else instead); :meth:`run` runs the floods."""

    def __init__(
        self,
        strategies: Iterable[Strategy],
        key: SigningKey,
        chain_id: int,
        data_dir: Path,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.strategies = frozenset(strategies)
        self.key = key
        self.pk = key.public_key
        self.chain_id = chain_id
        self.record_path = data_dir / RECORD_FILENAME
        self._clock = clock
        self._injected: dict[Strategy, set[int]] = {Strategy.EQUIVOCATE: set(),
                                                    Strategy.DOUBLE_VOTE: set()}  # fmt: skip
        self.flooded = {"tx_batches": 0, "sync_requests": 0}
        log.warning("BYZANTINE MODE (tests only): %s",
                    ", ".join(sorted(s.value for s in self.strategies)))  # fmt: skip

    def _record(self, **fields: object) -> None:
        fields["at"] = round(self._clock(), 3)
        with self.record_path.open("a") as f:
            f.write(json.dumps(fields) + "\n")

    # --- consensus statements ----------------------------------------------------------------

    def on_broadcast(self, msg: object, peers: Peers) -> bool:
        """Called for each message the core broadcasts; True if it was sent here instead."""
        if Strategy.TWIN in self.strategies:
            self._record_own(msg, len(peers.connected()))
        mine = (isinstance(msg, Block) and msg.proposal.header.proposer == self.pk) or (
            isinstance(msg, Vote) and msg.voter == self.pk
        )
        if mine and isinstance(msg, Block) and Strategy.EQUIVOCATE in self.strategies:
            return self._equivocate(msg, peers)
        if mine and isinstance(msg, Vote) and Strategy.DOUBLE_VOTE in self.strategies:
            self._double_vote(msg, peers)
        return False

    def _record_own(self, msg: object, peers: int) -> None:
        statement: Proposal | Vote | object
        if isinstance(msg, Block) and msg.proposal.header.proposer == self.pk:
            kind, statement, round_ = "proposal", msg.proposal, msg.proposal.header.round
        elif isinstance(msg, Vote) and msg.voter == self.pk:
            kind, statement, round_ = "vote", msg, msg.round
        elif isinstance(msg, TimeoutMessage) and msg.timeout.voter == self.pk:
            kind, statement, round_ = "timeout", msg.timeout, msg.timeout.round
        else:
            return
        digest = statement_digest(statement, self.chain_id)
        self._record(kind=kind, round=round_, digest=digest, peers=peers)

    def _left(self, strategy: Strategy, round_: int) -> bool:
        done = self._injected[strategy]
        if round_ in done or len(done) >= MAX_INJECTIONS:
            return False
        done.add(round_)
        return True

    def _equivocate(self, block: Block, peers: Peers) -> bool:
        h = block.proposal.header
        targets = peers.connected()
        if len(targets) < 2 or not self._left(Strategy.EQUIVOCATE, h.round):
            return False
        other_header = dataclasses.replace(h, timestamp_ms=h.timestamp_ms + 1)
        other_proposal = sign_message(Proposal(other_header, bytes(64)), self.key, self.chain_id)
        other = dataclasses.replace(block, proposal=other_proposal)
        half = len(targets) // 2
        for t in targets[:half]:
            peers.send_to(t, block, gossip=True)
        for t in targets[half:]:
            peers.send_to(t, other, gossip=True)
        self._record(kind="double_proposal", round=h.round, height=h.height)
        log.warning("BYZANTINE: two proposals for round %d (height %d)", h.round, h.height)
        return True

    def _double_vote(self, vote: Vote, peers: Peers) -> None:
        if not self._left(Strategy.DOUBLE_VOTE, vote.round):
            return
        fake = hashlib.sha256(b"byzantine" + vote.block_hash).digest()
        other = sign_message(dataclasses.replace(vote, block_hash=fake), self.key, self.chain_id)
        peers.broadcast(other)
        self._record(kind="double_vote", round=vote.round, height=vote.height)
        log.warning("BYZANTINE: two votes in round %d (height %d)", vote.round, vote.height)

    # --- floods ------------------------------------------------------------------------------

    async def run(self, peers: Peers, committed_height: Callable[[], int]) -> None:
        """The floods, until cancelled (nothing to do for the other strategies)."""
        gossip = Strategy.GOSSIP_FLOOD in self.strategies
        catchup = Strategy.CATCHUP_FLOOD in self.strategies
        if not (gossip or catchup):
            return
        serial = 0
        while True:
            await trio.sleep(FLOOD_TICK_S)
            if gossip:
                for _ in range(FLOOD_BURST):
                    serial += 1
                    peers.broadcast(self._bad_batch(serial))
                    self.flooded["tx_batches"] += 1
            if catchup:
                top = committed_height()
                req = SyncRequest(max(1, top - 8), max(1, top))
                for t in peers.connected():
                    for _ in range(SYNC_BURST):
                        if not peers.send_to(t, req):
                            break
                        self.flooded["sync_requests"] += 1

    def _bad_batch(self, serial: int) -> TxBatch:
        """``FLOOD_BATCH`` distinct, well-formed transfers whose signatures are wrong."""
        base = serial * FLOOD_BATCH
        sig = hashlib.sha512(serial.to_bytes(8, "big")).digest()
        txs = tuple(
            Transaction(self.pk, bytes(20), 1, base + i, 1, sig) for i in range(FLOOD_BATCH)
        )
        return TxBatch(txs)


__all__ = [
    "ENV_ALLOW",
    "MAX_INJECTIONS",
    "RECORD_FILENAME",
    "Byzantine",
    "ByzantineRefused",
    "Strategy",
    "parse_strategies",
    "require_allowed",
    "statement_digest",
]
