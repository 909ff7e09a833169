"""Composable adversaries for the simulator: network rules and byzantine strategies.

Both act only through the public interface of the protocol core (events in, effects out, wire
messages, :meth:`~sequencer_node.core.sequencer.SequencerCore.status`), so an attack is a few
lines in a test and survives refactors of the core's internals.

**Network rules** (``sim.add_rule(rule)``) see every message the simulated network carries and
return a verdict: ``None`` (no opinion), an extra delay in ms, or :data:`HOLD` (the message is
held back; :meth:`~sequencer_node.sim.harness.Simulation.release_held` delivers it later, and
stopping the faults does). Several rules compose: any ``HOLD`` wins, delays add up. Predicates
over ``(src, dst, msg)`` (:func:`sent_by`, :func:`sent_to`, :func:`is_a`, :func:`all_of`, ...)
say which messages a rule touches; a rule may keep state (e.g. "the first block seen at
height L").

**Strategies** (``Simulation(strategies={key_index: [...]})``) make the instances of a key
byzantine. The core they drive is the honest core; a strategy changes what it is told (its L1
view) and what leaves it (messages):

* :class:`Equivocate`: a leader sends one proposal to some nodes and a conflicting one (same
  round, other block) to the rest;
* a *twin* is the same key on two instances (``Simulation(twins=[k])``), each running an
  honest core: they sign conflicting messages whenever they see different things;
* :class:`WithholdVotes`: the node's votes (all, or those a predicate picks) never leave;
* :class:`FreezeOrigin`: the node's proposals keep the parent's ``l1_origin`` (its core is told
  that L1 finality never moves), the attack of issue 11, finding 4;
* :class:`GrindOrigin`: when it proposes the first block of an epoch, the node picks, among the
  ``l1_origin`` values validators accept, one that makes it the first leader of the next epoch
  (issue 11, finding 5); otherwise it freezes the origin to keep its choice wide.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Final

from sequencer_node.core import api
from sequencer_node.core.election import epoch_seed, weighted_order
from sequencer_node.core.epochs import anchor_refusal, snapshot_epoch
from sequencer_node.sim.instance import Instance, SimView, Strategy
from sequencer_node.wire.crypto import sign_message
from sequencer_node.wire.messages import Block, Proposal, Vote

#: Verdict of a network rule: hold the message back (deliver it only when released).
HOLD: Final = -1

Verdict = int | None
Predicate = Callable[[Instance, Instance, object], bool]

# --- predicates ---------------------------------------------------------------------------------


def sent_by(*idx: int) -> Predicate:
    """Messages sent by the instances ``idx``."""
    members = frozenset(idx)
    return lambda src, dst, msg: src.idx in members


def sent_to(*idx: int) -> Predicate:
    """Messages addressed to the instances ``idx``."""
    members = frozenset(idx)
    return lambda src, dst, msg: dst.idx in members


def is_a(*types: type) -> Predicate:
    """Messages of these wire types."""
    return lambda src, dst, msg: isinstance(msg, types)


def all_of(*preds: Predicate) -> Predicate:
    return lambda src, dst, msg: all(p(src, dst, msg) for p in preds)


def any_of(*preds: Predicate) -> Predicate:
    return lambda src, dst, msg: any(p(src, dst, msg) for p in preds)


def negate(pred: Predicate) -> Predicate:
    return lambda src, dst, msg: not pred(src, dst, msg)


def everything(src: Instance, dst: Instance, msg: object) -> bool:
    return True


# --- network rules ------------------------------------------------------------------------------


class NetRule:
    """A network adversary rule. Subclasses override :meth:`decide`."""

    active: bool = True

    def decide(self, src: Instance, dst: Instance, msg: object) -> Verdict:
        return None


class Hold(NetRule):
    """Hold back every message ``when`` matches (a partition is ``Hold`` of cross traffic)."""

    def __init__(self, when: Predicate = everything) -> None:
        self.when = when

    def decide(self, src: Instance, dst: Instance, msg: object) -> Verdict:
        return HOLD if self.when(src, dst, msg) else None


class OnlyTo(NetRule):
    """Messages ``when`` matches reach only the instances ``allowed``; the rest are held."""

    def __init__(self, when: Predicate, allowed: Iterable[int]) -> None:
        self.when = when
        self.allowed = frozenset(allowed)

    def decide(self, src: Instance, dst: Instance, msg: object) -> Verdict:
        if dst.idx in self.allowed or not self.when(src, dst, msg):
            return None
        return HOLD


class Delay(NetRule):
    """Add ``ms`` to the delivery time of every message ``when`` matches."""

    def __init__(self, ms: int, when: Predicate = everything) -> None:
        if ms < 0:
            raise ValueError("a delay cannot be negative")
        self.ms = ms
        self.when = when

    def decide(self, src: Instance, dst: Instance, msg: object) -> Verdict:
        return self.ms if self.when(src, dst, msg) else None


def slow_node(idx: int, ms: int) -> Delay:
    """Everything instance ``idx`` sends arrives ``ms`` later than the network's own delay."""
    return Delay(ms, sent_by(idx))


def combine(verdicts: Iterable[Verdict]) -> Verdict:
    """Compose rule verdicts: any HOLD wins, delays add up, None when no rule had an opinion."""
    total: int | None = None
    for v in verdicts:
        if v is None:
            continue
        if v == HOLD:
            return HOLD
        total = v if total is None else total + v
    return total


# --- byzantine strategies -----------------------------------------------------------------------


class Equivocate(Strategy):
    """A leader that signs two blocks for one round: ``msg`` to the instances in ``to_a``, a
    variant (timestamp + 1) to every other destination, and both to the instances in
    ``both_to`` (those hold evidence at once; the others only once a second version reaches
    them). Default split: the lower half of the destinations by index get the original."""

    def __init__(self, to_a: Iterable[int] | None = None, both_to: Iterable[int] = ()) -> None:
        self.to_a = None if to_a is None else frozenset(to_a)
        self.both_to = frozenset(both_to)
        self.sent: list[tuple[Block, Block]] = []

    def outgoing(
        self, sim: SimView, inst: Instance, msg: object, dsts: Sequence[Instance]
    ) -> list[tuple[Instance, object]] | None:
        if not isinstance(msg, Block) or msg.header.proposer != inst.pk:
            return None
        h = msg.header
        other = replace(h, timestamp_ms=h.timestamp_ms + 1)
        alt = replace(msg, proposal=sign_message(Proposal(other, bytes(64)), inst.key, _chain(sim)))
        self.sent.append((msg, alt))
        ordered = sorted(dsts, key=lambda d: d.idx)
        side_a = {d.idx for d in ordered[: len(ordered) // 2]} if self.to_a is None else self.to_a
        sends: list[tuple[Instance, object]] = [(d, msg if d.idx in side_a else alt) for d in dsts]
        sends += [(d, alt if d.idx in side_a else msg) for d in dsts if d.idx in self.both_to]
        return sends


class WithholdVotes(Strategy):
    """Never send this node's votes that ``when`` matches (default: all of them), to the
    instances ``to`` (default: to anyone)."""

    def __init__(
        self, when: Callable[[Vote], bool] | None = None, to: Iterable[int] | None = None
    ) -> None:
        self.when = when
        self.to = None if to is None else frozenset(to)
        self.withheld = 0

    def outgoing(
        self, sim: SimView, inst: Instance, msg: object, dsts: Sequence[Instance]
    ) -> list[tuple[Instance, object]] | None:
        if not isinstance(msg, Vote) or msg.voter != inst.pk:
            return None
        if self.when is not None and not self.when(msg):
            return None
        keep = [d for d in dsts if self.to is not None and d.idx not in self.to]
        self.withheld += len(dsts) - len(keep)
        return [(d, msg) for d in keep]


class FreezeOrigin(Strategy):
    """Propose with the oldest ``l1_origin`` validators accept today: the parent's.

    The honest core proposes ``max(parent origin, its finalized L1 view)``; this strategy tells
    its core that L1 finality is stuck at ``frozen_at`` (the head still moves, so the core keeps
    validating everyone else's blocks). Forced transactions whose window is judged at the
    block's origin then never become due in its blocks.
    """

    def __init__(self, frozen_at: int = 0) -> None:
        self.frozen_at = frozen_at
        #: (height, l1_origin, L1 finalized head of the network) of every block it proposed.
        self.proposed: list[tuple[int, int, int]] = []

    def l1_event(self, sim: SimView, inst: Instance, event: api.Event) -> api.Event | None:
        if isinstance(event, api.L1HeadChanged):
            return api.L1HeadChanged(event.head, min(event.finalized, self.frozen_at))
        return event

    def outgoing(
        self, sim: SimView, inst: Instance, msg: object, dsts: Sequence[Instance]
    ) -> list[tuple[Instance, object]] | None:
        mine = isinstance(msg, Block) and msg.header.proposer == inst.pk
        if mine and isinstance(msg, Block) and len(self.proposed) < 100_000:
            self.proposed.append((msg.header.height, msg.header.l1_origin, sim.l1_finalized))
        return None


class GrindOrigin(FreezeOrigin):
    """Choose the origin of each epoch-first block it proposes to lead a later epoch.

    The first block of L2 epoch ``e`` is the anchor of epoch ``e + seed_anchor_epochs``: its
    ``l1_origin`` names that epoch's stake snapshot and seed (docs/protocol.md, section 2).
    Before each input the strategy asks its core (``status()``) whether the epoch's last block
    is next; if so it lists every origin validators accept for the anchor (from the parent's,
    and at most ``max_l1_origin_lag`` behind the finalized head, up to the L1 head, and the
    anchor rule of :func:`~sequencer_node.core.epochs.anchor_refusal`), keeps those naming a
    snapshot whose seed already exists (it reads no seed ahead of the L1), computes each one's
    schedule with the public election functions, and raises its core's finalized view to an
    origin that puts itself first (an honest core proposes with its finalized view, and may do
    so inside the input that completes the parent's QC: hence the choice one block ahead). It
    does not freeze between choices: validators refuse an origin far behind their finalized
    head.
    """

    def __init__(self) -> None:
        super().__init__(0)
        self._origin_at: dict[int, int] = {}
        self._done: set[int] = set()
        #: (epoch whose first block it may propose, chosen origin or None if none wins).
        self.choices: list[tuple[int, int | None]] = []
        #: Per choice: how many different snapshots with a known seed the accepted origins
        #: name (2 or more is a real choice between seeds; the rule allows at most 1).
        self.known_options: list[int] = []

    def observe(self, sim: SimView, inst: Instance, msg: object) -> None:
        if isinstance(msg, Block):
            h = msg.header
            self._origin_at[h.height] = max(self._origin_at.get(h.height, 0), h.l1_origin)
            if len(self._origin_at) > 256:
                del self._origin_at[min(self._origin_at)]

    def outgoing(
        self, sim: SimView, inst: Instance, msg: object, dsts: Sequence[Instance]
    ) -> list[tuple[Instance, object]] | None:
        self.observe(sim, inst, msg)  # its own blocks are parents too
        return super().outgoing(sim, inst, msg, dsts)

    def l1_event(self, sim: SimView, inst: Instance, event: api.Event) -> api.Event | None:
        # No freezing: validators refuse an origin far behind their finalized head
        # (max_l1_origin_lag), so a frozen grinder would lose its leadership. It chooses
        # among the origins validators accept instead.
        return event

    def before_input(self, sim: SimView, inst: Instance) -> None:
        core = inst.core
        if core is None:
            return
        status = core.status()
        length = sim.config_kw["epoch_length"]
        # The next first block of an epoch: it extends the last block R of the current epoch
        # once a suffix block closed it (docs/protocol.md, section 3a), so it comes a round or
        # more after R. Choose once R is certified (its origin bounds the choice).
        first = (status.committed_height // length + 1) * length + 1
        if status.certified_height < first - 1 or first in self._done:
            return
        self._done.add(first)
        if len(self._done) > 64:
            self._done.discard(min(self._done))
        target = (first - 1) // length + sim.config_kw["seed_anchor_epochs"]
        known = self._known_snapshots(sim, self._origin_at.get(first - 1, 0))
        self.known_options.append(len(set(known.values())))
        # Its core can only be told a higher finalized head, so it picks among those.
        chosen = next(
            (o for o, e in sorted(known.items())
             if o >= sim.l1_finalized and self._leads(sim, inst, e, target)),
            None,
        )  # fmt: skip
        self.choices.append((target, chosen))
        if chosen is not None and chosen > self.frozen_at:
            self.frozen_at = chosen
            sim.feed(inst, api.L1HeadChanged(sim.l1_head, chosen))

    @staticmethod
    def _known_snapshots(sim: SimView, parent_origin: int) -> dict[int, int]:
        """Origin -> L1 epoch of the snapshot it names, for every origin validators accept in
        the anchor now whose snapshot's seed exists already."""
        kw = sim.config_kw
        genesis_epoch = sim.snapshot(0).l1_epoch
        rule = dict(genesis_epoch=genesis_epoch, slots=kw["l1_slots_per_epoch"],
                    lead=kw["seed_lead_blocks"])  # fmt: skip
        low = max(parent_origin, sim.l1_finalized - kw["max_l1_origin_lag"])
        out: dict[int, int] = {}
        for o in range(low, sim.l1_head + 1):
            if anchor_refusal(o, head=sim.l1_head, finalized=sim.l1_finalized, **rule):
                continue
            e = snapshot_epoch(o, **rule)
            if sim.seed_known(e):
                out[o] = e
        return out

    @staticmethod
    def _leads(sim: SimView, inst: Instance, l1_epoch: int, epoch: int) -> bool:
        snap = sim.snapshot(l1_epoch)
        order = weighted_order(snap.table(), epoch_seed(snap.seed, epoch))
        return bool(order) and order[0] == inst.pk


def seed_with_leader(
    stakes: dict[bytes, int], who: bytes, position: int = 0, epochs: Iterable[int] = (0,)
) -> bytes:
    """A genesis L1 seed whose schedule puts ``who`` at ``position`` (the leader after
    ``position`` failed rounds) in each of ``epochs`` while they use the genesis snapshot: the
    simulation's ``leader_seed``."""
    wanted = tuple(epochs)
    for i in range(100_000):
        seed = i.to_bytes(32, "big")
        orders = [weighted_order(stakes, epoch_seed(seed, e)) for e in wanted]
        if all(len(o) > position and o[position] == who for o in orders):
            return seed
    raise ValueError("no seed puts that key there")


def _chain(sim: SimView) -> int:
    return sim.config_kw["chain_id"]


__all__ = [
    "HOLD",
    "Delay",
    "Equivocate",
    "FreezeOrigin",
    "GrindOrigin",
    "Hold",
    "NetRule",
    "OnlyTo",
    "Predicate",
    "Verdict",
    "WithholdVotes",
    "all_of",
    "any_of",
    "combine",
    "everything",
    "is_a",
    "negate",
    "sent_by",
    "seed_with_leader",
    "sent_to",
    "slow_node",
]
