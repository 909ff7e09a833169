"""One simulated node, the view of the simulation an adversary gets, and the strategy hooks.

Shared by the harness (:mod:`sequencer_node.sim.harness`) and the adversaries
(:mod:`sequencer_node.sim.adversary`), so neither imports the other's internals: an
:class:`Instance` is what a network rule or a byzantine strategy sees of a node (its name, key,
core and the strategies it runs), :class:`SimView` is what it may ask of the simulation,
:class:`Strategy` lists the hooks a byzantine strategy can fill in, and :func:`kind_of` says
which signed statement (proposal, vote, timeout) a message carries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from sequencer_node.core import api
from sequencer_node.core.sequencer import SequencerCore
from sequencer_node.wire.crypto import SigningKey
from sequencer_node.wire.eth import EthTransaction
from sequencer_node.wire.messages import Block, CertifiedBlock, TimeoutMessage, Transaction, Vote


class SimView(Protocol):
    """What an adversary may read or do in the simulation (besides the instances)."""

    now: int
    config_kw: dict[str, int]
    instances: list[Instance]

    @property
    def l1_head(self) -> int: ...

    @property
    def l1_finalized(self) -> int: ...

    @property
    def finalized_l1_epoch(self) -> int: ...

    def seed_known(self, l1_epoch: int) -> bool: ...

    def snapshot(self, l1_epoch: int) -> api.StakeSnapshot: ...

    def feed(self, inst: Instance, event: api.Event) -> None:
        """Hand ``event`` to the instance's core (no strategy filter) and route its effects."""
        ...

    def send(self, src: Instance, dst: Instance, msg: object) -> None:
        """Send ``msg`` from ``src`` to ``dst`` over the simulated network (rules apply)."""
        ...


class Strategy:
    """A byzantine behaviour of an instance: override the hooks it needs. The core itself stays
    the unmodified protocol core; a strategy only changes what goes in (L1 view) and what comes
    out (messages), through the public interface."""

    def outgoing(
        self, sim: SimView, inst: Instance, msg: object, dsts: Sequence[Instance]
    ) -> list[tuple[Instance, object]] | None:
        """Replace the sending of ``msg`` to ``dsts``: the (destination, message) pairs to send,
        or None to leave it to the next strategy (finally: send ``msg`` to every ``dsts``)."""
        return None

    def l1_event(self, sim: SimView, inst: Instance, event: api.Event) -> api.Event | None:
        """Filter what the core learns from L1 (head, snapshots, forced entries); None hides it."""
        return event

    def before_input(self, sim: SimView, inst: Instance) -> None:
        """Called before each input (message, ack, tick) reaches the instance's core."""

    def observe(self, sim: SimView, inst: Instance, msg: object) -> None:
        """Called after a message from the network reached the instance's core."""


@dataclass
class Instance:
    idx: int
    name: str
    key: SigningKey
    honest: bool
    behaviours: frozenset[str]
    core: SequencerCore | None = None
    durable: api.PersistedState | None = None
    store: list[CertifiedBlock] = field(default_factory=list)
    certified: dict[bytes, CertifiedBlock] = field(default_factory=dict)
    committed: list[bytes] = field(default_factory=list)
    skew_ms: int = 0
    paused_until: int = 0
    #: When the core is next ticked (its local clock): as the node does, when its timed
    #: work is due (``SequencerCore.next_tick_ms``), at most ``Simulation.idle_tick_ms`` apart.
    next_tick: int = 0
    incarnation: int = 0
    evidence: set[tuple[str, bytes, int]] = field(default_factory=set)
    downtime_certs: int = 0
    #: Byzantine strategies this instance runs (empty: the instance follows the protocol).
    strategies: tuple[Strategy, ...] = ()
    #: What the node process keeps on disk besides the record and the blocks (used by a
    #: restart like the node's, :class:`~sequencer_node.sim.harness.NodeRestart`): the L1
    #: stake snapshots it was fed, its newest chain snapshots, the acknowledged transactions
    #: not yet committed (the journal).
    stake_snapshots: dict[int, api.StakeSnapshot] = field(default_factory=dict)
    chain_snapshots: list[api.ChainSnapshot] = field(default_factory=list)
    journal: dict[bytes, Transaction | EthTransaction] = field(default_factory=dict)
    #: Blocks stored with the watermark record (voted for or proposed), by hash.
    voted: dict[bytes, Block] = field(default_factory=dict)
    #: Message id -> delivery time of gossip seen (the p2p seen-cache; empty after a restart).
    seen: dict[bytes, int] = field(default_factory=dict)
    #: Until the L1 watcher's first look after a restart, L1 events do not reach the core.
    l1_blind: bool = False

    @property
    def pk(self) -> bytes:
        return self.key.public_key

    @property
    def up(self) -> bool:
        return self.core is not None


def kind_of(msg: object) -> tuple[str, bytes, int, object] | None:
    """(kind, signer, round, signed statement) of a slashable message, else None."""
    if isinstance(msg, Block):
        p = msg.proposal
        return ("proposal", p.header.proposer, p.header.round, p)
    if isinstance(msg, Vote):
        return ("vote", msg.voter, msg.round, msg)
    if isinstance(msg, TimeoutMessage):
        t = msg.timeout
        return ("timeout", t.voter, t.round, t)
    return None


__all__ = ["Instance", "SimView", "Strategy", "kind_of"]
