"""Seeded, deterministic simulation of N sequencer cores (TigerBeetle VOPR / etcd rafttest style).

One seed drives everything: network delays, drops, duplicates, replays, byzantine choices, the
L1 randomness. A failing run is replayed with the same seed.

The network is a priority queue of deliveries on a virtual clock. Faults: drop, delay,
duplicate, replay of old messages, symmetric and one-way partitions, crash and restart (from the
durable watermark record and the node's block store), pause, clock skew. Byzantine instances:
an equivocating leader, a double voter, a *twin* (a second instance with the same key), a
sender of malformed (invalid but signed) messages, and *amnesia* (a node restarted without its
watermark record: the negative control of the never-sign-twice rule).

Checks run as effects appear (:class:`Violation` is raised at once):

* agreement: one committed block per height across honest instances, with one state root;
* no rollback: each instance commits heights 1, 2, 3... exactly once, restarts included;
* signer safety: no honest key ever releases two different statements of one kind for one round;
* accountability: an honest instance that received two conflicting statements of a byzantine key
  (within its evidence horizon) has emitted the evidence;
* liveness (:meth:`Simulation.check_liveness`): after faults stop, every honest instance commits
  a new block within a bound derived from the timeouts.
"""

from __future__ import annotations

import hashlib
import heapq
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from sequencer_node.core import api
from sequencer_node.core.fees import FeeParams, L1FeeInfo
from sequencer_node.core.sequencer import SequencerCore
from sequencer_node.sim.adversary import HOLD, NetRule, combine
from sequencer_node.sim.instance import Instance, Strategy, kind_of
from sequencer_node.sim.rng import Rng
from sequencer_node.wire.codec import encode, message_id, signing_bytes
from sequencer_node.wire.crypto import SigningKey, sign_message
from sequencer_node.wire.eth import EthTransaction, eth_tx_hash
from sequencer_node.wire.messages import (
    Block,
    CertifiedBlock,
    DowntimeCertificate,
    EvidenceKind,
    ForcedTransaction,
    Proposal,
    Transaction,
    Vote,
    block_hash,
)

CHAIN_ID = 901


class Violation(AssertionError):
    """A safety or liveness property failed; the message names it and the seed."""


@dataclass
class NetParams:
    drop: float = 0.0
    duplicate: float = 0.0
    replay: float = 0.0
    delay_min_ms: int = 2
    delay_max_ms: int = 30
    #: A gossiped message arriving again within this many ms of its first delivery is
    #: dropped by the receiver, as the node's p2p seen-cache does (5 min there; 0: off). A
    #: core's retransmission then reaches only instances that missed the first copy.
    dedup_ms: int = 0


@dataclass(frozen=True)
class NodeRestart:
    """A restart as the node process does it (``shell/node_service.py``), not from memory.

    The core is rebuilt from what the node keeps on disk: the watermark record, the newest
    chain snapshot (taken every ``snapshot_every`` committed heights; 0: none, a full replay)
    plus the stored blocks above it, the certified blocks, the stake snapshots it was fed
    (``stored_snapshots``: the node stores them since the soak's stall) and its journal of
    acknowledged transactions, which it submits again. Its L1 view (head, stake snapshots,
    forced entries) arrives only ``l1_delay_ms`` after the start, as the L1 watcher's first
    poll; peers' messages may come first.
    """

    l1_delay_ms: int = 0
    snapshot_every: int = 0
    stored_snapshots: bool = True


_kind_of = kind_of


class Simulation:
    """N cores on a simulated network. See the module docstring."""

    def __init__(
        self,
        seed: int,
        *,
        stakes: Sequence[int] = (1, 1, 1, 1),
        byzantine: Mapping[int, Iterable[str]] | None = None,
        twins: Iterable[int] = (),
        net: NetParams | None = None,
        block_time_ms: int = 100,
        idle_block_ms: int = 0,
        timeout_base_ms: int = 400,
        timeout_max_ms: int = 3_200,
        epoch_length: int = 8,
        tick_ms: int = 20,
        downtime_window: int = 1_000,
        leader_seed: bytes | None = None,
        strategies: Mapping[int, Sequence[Strategy]] | None = None,
        fees: FeeParams | None = None,
        node_restart: NodeRestart | None = None,
    ) -> None:
        self.seed = seed
        self.node_restart = node_restart
        #: Acknowledged transactions (a pool accepted them from a client): hash -> instance.
        self.acked: dict[bytes, int] = {}
        self._gossiping = False
        self.rng = Rng(seed)
        self.net = net or NetParams()
        self.now = 0
        self.tick_ms = tick_ms
        #: An instance whose core has no timed work is ticked at most this long apart (the
        #: node's ``idle_tick_s`` is ten of its ticks).
        self.idle_tick_ms = 10 * tick_ms
        self.l1_block_ms = 200
        self.l1_slots = 4
        byzantine = byzantine or {}
        strategies = strategies or {}
        twins = set(twins)
        self.config_kw = dict(
            chain_id=CHAIN_ID,
            block_time_ms=block_time_ms,
            idle_block_ms=idle_block_ms,
            timeout_base_ms=timeout_base_ms,
            timeout_max_ms=timeout_max_ms,
            epoch_length=epoch_length,
            l1_slots_per_epoch=self.l1_slots,
            # Finality lags 4 blocks (one L1 epoch) here: the seed lead covers it, the origin
            # lag and an L1 epoch, and 5 L2 epochs of at least 0.8 s cover the up to 20 L1
            # blocks (4 s) from an honest anchor until the snapshot it names is finalized
            # (docs/protocol.md, section 2).
            seed_lead_blocks=16,
            seed_anchor_epochs=5,
            sequencing_window=20,
            l1_finality_blocks=4,
            max_l1_origin_lag=8,
            max_clock_skew_ms=500,
            downtime_window=downtime_window,
            max_block_txs=64,
        )
        self.keys = [SigningKey.deterministic(f"sim-node-{i}") for i in range(len(stakes))]
        self.users = [SigningKey.deterministic(f"sim-user-{j}") for j in range(4)]
        self._nonces = [0] * len(self.users)
        self.stake_schedule: dict[int, tuple[tuple[bytes, int], ...]] = {
            0: tuple((k.public_key, s) for k, s in zip(self.keys, stakes, strict=True))
        }
        seed_bytes = leader_seed or hashlib.sha256(b"sim-l1" + seed.to_bytes(8, "big")).digest()
        self._l1_seed = seed_bytes
        self.genesis = api.Genesis(
            balances=tuple((u.address, 10**12 if fees is None else 10**18) for u in self.users),
            snapshot=api.StakeSnapshot(0, self.stake_schedule[0], seed_bytes),
            timestamp_ms=0,
            fees=fees,
        )
        #: Fee of the transfers submit_tx sends (a fee model needs more than 1).
        self.tx_fee = 1 if fees is None else 10**13
        #: The simulated L1's fee data per block (fee models only): what is not set here is
        #: a block with a 1 gwei base fee, a blob base fee of 1 and no batches.
        self.l1_fee_data: dict[int, L1FeeInfo] = {}
        self.instances: list[Instance] = []
        for i, key in enumerate(self.keys):
            beh = frozenset(byzantine.get(i, ()))
            plan = tuple(strategies.get(i, ()))
            honest = not (beh - {"amnesia"}) and i not in twins and not plan
            copies = 2 if i in twins else 1
            for c in range(copies):
                inst = Instance(len(self.instances), f"n{i}{'ab'[c] if copies > 1 else ''}",
                                key, honest, beh, strategies=plan)  # fmt: skip
                self.instances.append(inst)
        self._queue: list[tuple[int, int, int, str, object]] = []
        self._qseq = 0
        self.blocked: set[tuple[int, int]] = set()
        #: Network adversary (see :mod:`sequencer_node.sim.adversary`) and what it held back.
        self.rules: list[NetRule] = []
        self.held: deque[tuple[int, int, object]] = deque(maxlen=100_000)
        #: (instance that assembled it, certificate) of every downtime certificate formed.
        self.downtime_certificates: list[tuple[int, DowntimeCertificate]] = []
        self._recent: deque[tuple[int, bytes, object]] = deque(maxlen=256)
        self.chain: dict[int, tuple[bytes, bytes]] = {}  # height -> (hash, state root)
        self.signed: dict[tuple[bytes, str, int], bytes] = {}
        self._delivered: dict[tuple[int, str, bytes, int], set[bytes]] = {}
        self.trace: deque[str] = deque(maxlen=200)
        self._l1_head = -1
        self._finalized_epoch = -1
        self.equivocations: list[tuple[object, object]] = []
        self.forced: list[ForcedTransaction] = []
        for inst in self.instances:
            self._boot(inst)

    # --- helpers ------------------------------------------------------------------------------

    def _fail(self, what: str) -> None:
        tail = "\n".join(list(self.trace)[-30:])
        raise Violation(
            f"{what} (seed={self.seed}, t={self.now} ms; replay with SEQ_SIM_SEED={self.seed})"
            f"\nlast events:\n{tail}"
        )

    def config_for(self, inst: Instance) -> api.CoreConfig:
        return api.CoreConfig(key=inst.key, **self.config_kw)

    def _boot(self, inst: Instance) -> None:
        persisted = None if "amnesia" in inst.behaviours else inst.durable
        inst.next_tick = 0  # a new core ticks at once, as a started node does
        above = sorted(inst.certified.values(), key=lambda cb: cb.block.header.height)
        chain, extra = self._stored_start(inst)
        make = partial(
            SequencerCore, self.config_for(inst), self.genesis, persisted=persisted,
            chain=chain, certified=tuple(above), **extra,
        )  # fmt: skip
        if self.genesis.fees is None:  # (tests stand in for SequencerCore with these args)
            inst.core = make()
        else:
            inst.core = make(l1_fees=self.l1_fee_infos(0, self.l1_finalized))
        inst.incarnation += 1
        inst.committed = [block_hash(cb.block.header) for cb in inst.store]
        inst.seen.clear()
        nr = self.node_restart
        if nr is not None and nr.l1_delay_ms > 0 and self._l1_head >= 0:
            inst.l1_blind = True
            self._push(self.now + nr.l1_delay_ms, inst.idx, "l1", (inst.incarnation, 0))
        else:
            self._l1_catch_up(inst, route=False)
        if nr is not None:
            for tx in list(inst.journal.values()):
                self._route(inst, self._handle(inst, api.TxSubmitted(tx)))

    def _stored_start(self, inst: Instance) -> tuple[tuple[CertifiedBlock, ...], dict[str, Any]]:
        """The stored chain a restart replays, the blocks stored with the watermark record
        that no QC known here certified (every node keeps those: its vote vouched for them),
        and the node-like extras (its chain snapshot, its stored stake snapshots)."""
        nr = self.node_restart
        extra: dict[str, Any] = {}
        top = len(inst.store)
        for k in [k for k, b in inst.voted.items() if b.header.height <= top]:
            del inst.voted[k]
        extra["uncertified"] = tuple(
            b for k, b in sorted(inst.voted.items(), key=lambda kb: kb[1].header.height)
            if k not in inst.certified
        )  # fmt: skip
        if nr is None:
            return tuple(inst.store), extra
        if nr.stored_snapshots:
            extra["stake_snapshots"] = tuple(inst.stake_snapshots.values())
        if not inst.chain_snapshots:
            return tuple(inst.store), extra
        snap = inst.chain_snapshots[-1]
        extra["snapshot"] = snap
        return tuple(cb for cb in inst.store if cb.block.header.height > snap.height), extra

    def _l1_catch_up(self, inst: Instance, *, route: bool) -> None:
        """Everything the L1 says so far, to one instance (at boot, or the watcher's first
        poll after a restart)."""
        inst.l1_blind = False
        events: list[api.Event] = [
            api.StakeSnapshotAvailable(self.snapshot(e)) for e in range(self._finalized_epoch + 1)
        ]
        if self.forced:
            events.append(api.ForcedEntriesSeen(tuple(self.forced)))
        if self._l1_head >= 0:
            events.append(api.L1HeadChanged(self._l1_head, self.l1_finalized))
            if self.genesis.fees is not None:
                events.append(api.L1FeeInfoSeen(self.l1_fee_infos(0, self.l1_finalized)))
        for ev in events:
            # Effects of a fresh core's L1 events are dropped, as before strategies existed.
            self._l1_event(inst, ev, route=route)

    def l1_fee_infos(self, first: int, last: int) -> tuple[L1FeeInfo, ...]:
        """The fee data of L1 blocks ``first .. last``."""
        return tuple(
            self.l1_fee_data.get(n) or L1FeeInfo(n, 10**9, 1) for n in range(first, last + 1)
        )

    def seed_known(self, l1_epoch: int) -> bool:
        """Whether L1 epoch ``l1_epoch``'s snapshot exists yet: its seed is fixed by the last
        block before the epoch (as on the L1 mock), so nobody can know it earlier."""
        return l1_epoch == 0 or l1_epoch * self.l1_slots - 1 <= self._l1_head

    def snapshot(self, l1_epoch: int) -> api.StakeSnapshot:
        """L1 epoch ``l1_epoch``'s stake snapshot; only once its seed block exists (the
        simulator derives seeds from its own seed, which no adversary may read ahead)."""
        if not self.seed_known(l1_epoch):
            raise ValueError(f"L1 epoch {l1_epoch}'s snapshot does not exist yet")
        if l1_epoch == 0:
            return self.genesis.snapshot
        start = max(e for e in self.stake_schedule if e <= l1_epoch)
        seed = hashlib.sha256(self._l1_seed + l1_epoch.to_bytes(8, "big")).digest()
        return api.StakeSnapshot(l1_epoch, self.stake_schedule[start], seed)

    @property
    def l1_head(self) -> int:
        return max(0, self._l1_head)

    @property
    def l1_finalized(self) -> int:
        return max(0, self._l1_head - 4)

    @property
    def finalized_l1_epoch(self) -> int:
        return self._finalized_epoch

    def feed(self, inst: Instance, event: api.Event) -> None:
        """Hand ``event`` to the instance's core as is and route its effects."""
        if inst.core is not None:
            self._route(inst, self._handle(inst, event))

    def _l1_event(self, inst: Instance, event: api.Event, *, route: bool = True) -> None:
        """An L1 observation for one instance, through its strategies' filters."""
        ev: api.Event | None = event
        for strategy in inst.strategies:
            if ev is not None:
                ev = strategy.l1_event(self, inst, ev)
        if ev is None or inst.core is None or inst.l1_blind:
            return
        if isinstance(ev, api.StakeSnapshotAvailable):
            inst.stake_snapshots[ev.snapshot.l1_epoch] = ev.snapshot  # the node stores them
        effects = self._handle(inst, ev)
        if route:
            self._route(inst, effects)

    def _handle(
        self, inst: Instance, event: api.Event | None, now: int | None = None
    ) -> list[api.Effect]:
        """One input to the instance's core (None: a tick). A core that finds its own chain
        contradicted (``SAFETY`` assertion) saw a fork: a violation on an honest instance; a
        byzantine instance (a twin fed conflicting certificates) just crashes."""
        core = inst.core
        if core is None:
            return []
        at = self.local_now(inst) if now is None else now
        try:
            out = core.tick(at) if event is None else core.handle(event, at)
            # The node's schedule (Node._schedule_tick): after a tick, the core's next due
            # time; after an input, only ever sooner.
            due = min(max(core.next_tick_ms(at), at + self.tick_ms), at + self.idle_tick_ms)
            inst.next_tick = due if event is None else min(inst.next_tick, due)
            if inst.honest and any(isinstance(e, api.BlockCommitted) for e in out):
                self._check_tree(inst, core)
            return out
        except AssertionError as exc:
            if not str(exc).startswith("SAFETY") or isinstance(exc, Violation):
                raise
            if inst.honest:
                self._fail(f"FORK: {inst.name}'s core found a conflicting commit: {exc}")
            self.crash(inst.idx)
            return []

    def _check_tree(self, inst: Instance, core: SequencerCore) -> None:
        """T1: after a commit, every block in the tree descends from the committed head (or is
        genesis). A block that does not can never be committed, and a block judged on it walks
        its ancestry into pruned blocks (a closed epoch's suffix crashed a core that way)."""
        tree = core.tree
        for bh, header in tree.known_headers():
            cur, h = bh, header
            while cur != tree.committed_hash and cur != tree.genesis_hash:
                parent = tree.header(h.parent_hash)
                if parent is None or h.height <= tree.committed_height:
                    self._fail(f"TREE: {inst.name} keeps block {bh.hex()[:8]} (height "
                               f"{header.height}, epoch {header.epoch}) off its committed "
                               f"chain at height {tree.committed_height}")  # fmt: skip
                    return
                cur, h = h.parent_hash, parent

    def _before_input(self, inst: Instance) -> None:
        for strategy in inst.strategies:
            strategy.before_input(self, inst)

    def local_now(self, inst: Instance) -> int:
        return max(0, self.now + inst.skew_ms)

    def honest(self) -> list[Instance]:
        return [i for i in self.instances if i.honest]

    # --- network ------------------------------------------------------------------------------

    def _push(self, at: int, dst: int, kind: str, payload: object) -> None:
        self._qseq += 1
        heapq.heappush(self._queue, (at, self._qseq, dst, kind, payload))

    def send(self, src: Instance, dst: Instance, msg: object) -> None:
        self._send(src, dst, msg)

    def _send(self, src: Instance, dst: Instance, msg: object) -> None:
        if (src.idx, dst.idx) in self.blocked:
            return
        extra = combine(r.decide(src, dst, msg) for r in self.rules if r.active)
        if extra == HOLD:
            self.held.append((src.idx, dst.idx, msg))
            return
        if self.rng.chance(self.net.drop):
            return
        at = self.now + (extra or 0)
        at += self.rng.randint(self.net.delay_min_ms, self.net.delay_max_ms)
        kind = "gossip" if self._gossiping else "msg"
        self._push(at, dst.idx, kind, (src.pk, msg))
        if self.rng.chance(self.net.duplicate):
            at2 = self.now + self.rng.randint(self.net.delay_min_ms, 4 * self.net.delay_max_ms)
            self._push(at2, dst.idx, kind, (src.pk, msg))
        self._recent.append((dst.idx, src.pk, msg))

    def add_rule(self, rule: NetRule) -> NetRule:
        """Install a network adversary rule (see :mod:`sequencer_node.sim.adversary`)."""
        self.rules.append(rule)
        return rule

    def release_held(self) -> int:
        """Deliver every held-back message now (in order, with the network's usual delay)."""
        count = len(self.held)
        while self.held:
            src, dst, msg = self.held.popleft()
            at = self.now + self.rng.randint(self.net.delay_min_ms, self.net.delay_max_ms)
            self._push(at, dst, "msg", (self.instances[src].pk, msg))
        return count

    def inject(self, dst: int, sender: bytes, msg: object, delay_ms: int = 1) -> None:
        """Deliver ``msg`` to instance ``dst`` as if ``sender`` sent it (tests, byzantine)."""
        self._push(self.now + delay_ms, dst, "msg", (sender, msg))

    def _route(self, src: Instance, effects: list[api.Effect]) -> None:
        committed = len(src.committed)
        for eff in effects:
            if isinstance(eff, api.Broadcast):
                # Transactions go to each peer directly (not relayed, so not deduplicated).
                self._gossiping = not isinstance(eff.message, Transaction | EthTransaction)
                try:
                    self._outgoing(src, eff.message, [d for d in self.instances if d is not src])
                finally:
                    self._gossiping = False
            elif isinstance(eff, api.SendTo):
                dsts = [d for d in self.instances if d.pk == eff.peer and d is not src]
                self._outgoing(src, eff.message, dsts)
            elif isinstance(eff, api.PersistWatermark):
                src.durable = eff.record
                for b in eff.blocks:
                    src.voted[block_hash(b.header)] = b
                self._push(self.now + 1, src.idx, "ack", (src.incarnation, eff.seq))
            elif isinstance(eff, api.BlockCommitted):
                self._on_commit(src, eff)
            elif isinstance(eff, api.BlockCertified):
                src.certified[block_hash(eff.certified.block.header)] = eff.certified
            elif isinstance(eff, api.EvidenceFound):
                kind, signer, rnd, _ = _kind_of_evidence(eff)
                src.evidence.add((kind, signer, rnd))
                self.trace.append(f"{self.now} {src.name} evidence {kind} r{rnd}")
            elif isinstance(eff, api.DowntimeCertificateReady):
                src.downtime_certs += 1
                if len(self.downtime_certificates) < 10_000:
                    self.downtime_certificates.append((src.idx, eff.certificate))
            elif isinstance(eff, api.TxResult) and eff.accepted and src.core is not None:
                # A client's transaction acknowledged (TxResult answers TxSubmitted only): the
                # node journals it before answering.
                tx = src.core.pending_tx(eff.tx_hash)
                if tx is not None:
                    src.journal[eff.tx_hash] = tx
                    self.acked.setdefault(eff.tx_hash, src.idx)
        self._maybe_snapshot(src, committed)

    def _maybe_snapshot(self, inst: Instance, before: int) -> None:
        """Take the node's chain snapshot when its commits crossed a multiple of
        ``snapshot_every`` (the newest two are kept, as the node's store does)."""
        nr = self.node_restart
        every = 0 if nr is None else nr.snapshot_every
        after = len(inst.committed)
        if every <= 0 or inst.core is None or after // every == before // every:
            return
        snap = inst.core.snapshot()
        if snap is not None and snap.height == after:
            inst.chain_snapshots = [*inst.chain_snapshots, snap][-2:]

    def _outgoing(self, src: Instance, msg: object, dsts: list[Instance]) -> None:
        info = _kind_of(msg)
        if info is not None and info[1] == src.pk and src.honest:
            kind, signer, rnd, stmt = info
            sb = signing_bytes(stmt, CHAIN_ID)
            prev = self.signed.setdefault((signer, kind, rnd), sb)
            if prev != sb:
                self._fail(f"DOUBLE SIGN: honest {src.name} signed two {kind}s at round {rnd}")
        if "silent" in src.behaviours:
            return
        for strategy in src.strategies:
            sends = strategy.outgoing(self, src, msg, dsts)
            if sends is not None:
                for d, m in sends:
                    self._send(src, d, m)
                return
        if info is not None and info[1] == src.pk and not src.honest:
            self._byzantine_send(src, msg, dsts)
            return
        for d in dsts:
            self._send(src, d, msg)

    def _byzantine_send(self, src: Instance, msg: object, dsts: list[Instance]) -> None:
        beh = src.behaviours
        half = list(dsts)
        self.rng.shuffle(half)
        cut = len(half) // 2
        alt: object | None = None
        if isinstance(msg, Block) and "equivocate" in beh:
            h = msg.header
            other = replace(h, timestamp_ms=h.timestamp_ms + 1)
            prop = sign_message(Proposal(other, bytes(64)), src.key, CHAIN_ID)
            alt = replace(msg, proposal=prop)
        elif isinstance(msg, Vote) and "double_vote" in beh:
            fake = hashlib.sha256(msg.block_hash).digest()
            alt = sign_message(replace(msg, block_hash=fake), src.key, CHAIN_ID)
        if "malformed" in beh and self.rng.chance(0.3):
            self._send_malformed(src, msg, dsts)
        if alt is None:
            for d in dsts:
                self._send(src, d, msg)
            return
        self.trace.append(f"{self.now} {src.name} equivocates {type(msg).__name__}")
        self.equivocations.append((msg, alt))
        for d in half[:cut]:
            self._send(src, d, msg)
        for d in half[cut:]:
            self._send(src, d, alt)
        if half[cut:] and self.rng.chance(0.5):  # sloppy: one node hears both versions
            self._send(src, half[-1], msg)

    def _send_malformed(self, src: Instance, msg: object, dsts: list[Instance]) -> None:
        bad: object
        if isinstance(msg, Vote):
            bad = replace(msg, signature=bytes(64))
        elif isinstance(msg, Block):
            h = replace(msg.header, state_root=bytes(32))
            bad = replace(msg, proposal=sign_message(Proposal(h, bytes(64)), src.key, CHAIN_ID))
        else:
            bad = Vote(bytes(32), 1, 1, 0, src.pk, bytes(64))
        for d in dsts:
            self._send(src, d, bad)

    # --- checks -------------------------------------------------------------------------------

    def _on_commit(self, inst: Instance, eff: api.BlockCommitted) -> None:
        h = eff.certified.block.header
        bh = block_hash(h)
        inst.store.append(eff.certified)
        for k in [k for k, cb in inst.certified.items() if cb.block.header.height <= h.height]:
            del inst.certified[k]
        if h.height != len(inst.committed) + 1:
            self._fail(f"ROLLBACK/GAP: {inst.name} committed height {h.height} after "
                       f"{len(inst.committed)}")  # fmt: skip
        inst.committed.append(bh)
        for tx_hash in block_tx_hashes(eff.certified.block):
            inst.journal.pop(tx_hash, None)
        self.trace.append(f"{self.now} {inst.name} commit h{h.height} r{h.round} {bh.hex()[:8]}")
        if not inst.honest:
            return
        known = self.chain.get(h.height)
        if known is None:
            self.chain[h.height] = (bh, eff.state_root)
        elif known[0] != bh:
            self._fail(f"FORK: {inst.name} committed {bh.hex()[:8]} at height {h.height}, "
                       f"another honest node committed {known[0].hex()[:8]}")  # fmt: skip
        elif known[1] != eff.state_root:
            self._fail(f"STATE ROOT mismatch at height {h.height} on {inst.name}")

    def _note_delivery(self, inst: Instance, msg: object) -> None:
        info = _kind_of(msg)
        if info is None or not inst.honest or inst.core is None:
            return
        kind, signer, rnd, stmt = info
        if signer == inst.pk or abs(rnd - inst.core.round) > 60:
            return
        if not any(not o.honest and o.pk == signer for o in self.instances):
            return
        if not _valid_signature(stmt, signer):
            return
        key = (inst.idx, kind, signer, rnd)
        seen = self._delivered.setdefault(key, set())
        seen.add(signing_bytes(stmt, CHAIN_ID))
        if len(seen) >= 2 and (kind, signer, rnd) not in inst.evidence:
            self._fail(f"MISSED EVIDENCE: {inst.name} saw two {kind}s of one key at round {rnd}")

    # --- driving ------------------------------------------------------------------------------

    def _deliver(self, dst: int, kind: str, payload: object) -> None:
        inst = self.instances[dst]
        if inst.core is None:
            return
        if inst.paused_until > self.now:
            self._push(inst.paused_until, dst, kind, payload)
            return
        self._before_input(inst)
        if inst.core is None:
            return
        now = self.local_now(inst)
        if kind == "l1":
            assert isinstance(payload, tuple)
            if payload[0] == inst.incarnation and inst.l1_blind:
                self._l1_catch_up(inst, route=True)
            return
        if kind == "gossip" and self._repeat(inst, payload):
            return
        if kind == "ack":
            assert isinstance(payload, tuple)
            incarnation, seq = payload
            if incarnation != inst.incarnation:
                return
            effects = self._handle(inst, api.WatermarkPersisted(int(seq)), now)
        else:
            assert isinstance(payload, tuple)
            sender, msg = payload
            assert isinstance(sender, bytes)
            effects = self._handle(inst, api.MessageReceived(sender, msg), now)
            self._route(inst, effects)
            self._note_delivery(inst, msg)
            for strategy in inst.strategies:
                strategy.observe(self, inst, msg)
            return
        self._route(inst, effects)

    def _repeat(self, inst: Instance, payload: object) -> bool:
        """Whether the p2p seen-cache drops this gossip (a repeat within ``dedup_ms``)."""
        ttl = self.net.dedup_ms
        if ttl <= 0:
            return False
        assert isinstance(payload, tuple)
        key = hashlib.sha256(encode(payload[1])).digest()
        first = inst.seen.get(key)
        if first is not None and self.now - first < ttl:
            return True
        inst.seen[key] = self.now
        if len(inst.seen) > 200_000:  # bounded like the shell's cache: forget the oldest
            for k in list(inst.seen)[:100_000]:
                del inst.seen[k]
        return False

    def _l1_step(self) -> None:
        head = self.now // self.l1_block_ms
        if head == self._l1_head:
            return
        was_finalized = max(0, self._l1_head - 4) if self._l1_head >= 0 else -1
        self._l1_head = head
        finalized = max(0, head - 4)
        events: list[api.Event] = [api.L1HeadChanged(head, finalized)]
        if self.genesis.fees is not None and finalized > was_finalized:
            events.append(api.L1FeeInfoSeen(self.l1_fee_infos(was_finalized + 1, finalized)))
        fin_epoch = finalized // self.l1_slots
        while self._finalized_epoch < fin_epoch:
            self._finalized_epoch += 1
            events.append(api.StakeSnapshotAvailable(self.snapshot(self._finalized_epoch)))
        for inst in self.instances:
            for ev in events:
                self._l1_event(inst, ev)

    def step(self) -> None:
        """Advance the virtual clock by one tick: deliver what is due, then tick every node."""
        self.now += self.tick_ms
        self._l1_step()
        while self._queue and self._queue[0][0] <= self.now:
            _, _, dst, kind, payload = heapq.heappop(self._queue)
            self._deliver(dst, kind, payload)
        if self.net.replay and self._recent and self.rng.chance(self.net.replay):
            dst, sender, msg = self.rng.choice(list(self._recent))
            self.inject(dst, sender, msg, self.rng.randint(1, 200))
        for inst in self.instances:
            if (
                inst.core is not None
                and inst.paused_until <= self.now
                and self.local_now(inst) >= inst.next_tick
            ):
                self._before_input(inst)
                if inst.core is not None:
                    self._route(inst, self._handle(inst, None))

    def run_for(self, ms: int) -> None:
        end = self.now + ms
        while self.now < end:
            self.step()

    def run_until(self, cond: object, max_ms: int) -> bool:
        end = self.now + max_ms
        while self.now < end:
            if callable(cond) and cond():
                return True
            self.step()
        return bool(callable(cond) and cond())

    # --- faults -------------------------------------------------------------------------------

    def partition(self, groups: Sequence[Sequence[int]]) -> None:
        """Cut every link between instances of different groups (instances not listed are
        isolated)."""
        side = {i: g for g, members in enumerate(groups) for i in members}
        self.blocked = {
            (a.idx, b.idx)
            for a in self.instances
            for b in self.instances
            if a is not b and side.get(a.idx, -1 - a.idx) != side.get(b.idx, -1 - b.idx)
        }
        self.trace.append(f"{self.now} partition {groups}")

    def cut_one_way(self, src: int, dst: int) -> None:
        self.blocked.add((src, dst))

    def heal(self) -> None:
        self.blocked = set()
        self.trace.append(f"{self.now} heal")

    def crash(self, idx: int) -> None:
        inst = self.instances[idx]
        inst.core = None
        for key in [k for k in self._delivered if k[0] == idx]:
            del self._delivered[key]
        self.trace.append(f"{self.now} crash {inst.name}")

    def restart(self, idx: int) -> None:
        inst = self.instances[idx]
        if inst.core is None:
            self._boot(inst)
            inst.evidence.clear()
            self.trace.append(f"{self.now} restart {inst.name}")

    def pause(self, idx: int, ms: int) -> None:
        self.instances[idx].paused_until = self.now + ms

    def set_skew(self, idx: int, skew_ms: int) -> None:
        self.instances[idx].skew_ms = skew_ms

    def change_stakes(self, from_l1_epoch: int, stakes: Sequence[int]) -> None:
        """New stake table in the L1 snapshots from ``from_l1_epoch`` on (not yet finalized)."""
        if from_l1_epoch <= self._finalized_epoch:
            raise ValueError("that L1 epoch is already finalized")
        self.stake_schedule[from_l1_epoch] = tuple(
            (k.public_key, s) for k, s in zip(self.keys, stakes, strict=True)
        )

    def submit_tx(self, user: int, to_node: int, amount: int = 1) -> None:
        key = self.users[user]
        tx = Transaction(key.public_key, self.users[(user + 1) % len(self.users)].address,
                         amount, self._nonces[user], self.tx_fee, bytes(64))  # fmt: skip
        tx = sign_message(tx, key, CHAIN_ID)
        inst = self.instances[to_node]
        if inst.core is None:
            return
        effects = self._handle(inst, api.TxSubmitted(tx))
        if any(isinstance(e, api.TxResult) and e.accepted for e in effects):
            self._nonces[user] += 1
        self._route(inst, effects)

    def submit(self, tx: Transaction | EthTransaction, to_node: int) -> bool:
        """Give a ready transaction (native or Ethereum) to one node as a client would; True
        if its pool accepted it (it then gossips it)."""
        inst = self.instances[to_node]
        if inst.core is None:
            return False
        effects = self._handle(inst, api.TxSubmitted(tx))
        self._route(inst, effects)
        return any(isinstance(e, api.TxResult) and e.accepted for e in effects)

    def queue_forced(self, user: int, amount: int = 1) -> ForcedTransaction:
        """Queue a transfer on the simulated L1 (forced inclusion); every node reads it."""
        key = self.users[user]
        tx = Transaction(key.public_key, self.users[(user + 2) % len(self.users)].address,
                         amount, self._nonces[user], self.tx_fee, bytes(64))  # fmt: skip
        tx = sign_message(tx, key, CHAIN_ID)
        self._nonces[user] += 1
        entry = ForcedTransaction(len(self.forced), max(0, self._l1_head), tx)
        self.forced.append(entry)
        for inst in self.instances:
            self._l1_event(inst, api.ForcedEntriesSeen((entry,)))
        return entry

    def stop_faults(self) -> None:
        self.net = NetParams(
            delay_min_ms=self.net.delay_min_ms, delay_max_ms=self.net.delay_max_ms,
            dedup_ms=self.net.dedup_ms,
        )  # fmt: skip
        self.heal()
        self.rules.clear()
        self.release_held()
        for inst in self.instances:
            inst.paused_until = 0
            if inst.honest and inst.core is None:
                self.restart(inst.idx)

    def jailed_honest(self) -> list[str]:
        """Names of honest instances some downtime certificate names as the offender."""
        bad = {c.report.offender for _, c in self.downtime_certificates}
        return [i.name for i in self.honest() if i.pk in bad]

    def liveness_bound_ms(self) -> int:
        """Time within which a new commit must appear after faults stop.

        A node's timer may have backed off to ``timeout_max``; rounds led by faulty keys each
        cost at most one timeout; then two happy rounds commit. Plus sync and delivery slack.
        """
        cfg = self.config_kw
        faulty = len({i.pk for i in self.instances if not i.honest})
        return (faulty + 3) * int(cfg["timeout_max_ms"]) + 40 * int(cfg["block_time_ms"]) + 2_000

    def check_liveness(self) -> int:
        """Stop the faults, then require a new commit on every honest instance in time."""
        self.stop_faults()
        base = max((len(i.committed) for i in self.honest()), default=0)
        bound = self.liveness_bound_ms()
        start = self.now
        done = self.run_until(lambda: all(len(i.committed) > base for i in self.honest()), bound)
        if not done:
            heights = {i.name: len(i.committed) for i in self.instances}
            rounds = {i.name: i.core.round if i.core else None for i in self.instances}
            self._fail(f"STALL: no new commit on every honest node within {bound} ms after faults "
                       f"stopped (base {base}, heights {heights}, rounds {rounds})")  # fmt: skip
        return self.now - start


def block_tx_hashes(block: Block) -> list[bytes]:
    """The hashes the mempool knows a block's transactions by (as the node's journal)."""
    return [*(message_id(t) for t in block.transactions),
            *(eth_tx_hash(t) for t in block.eth_transactions)]  # fmt: skip


def _valid_signature(stmt: object, signer: bytes) -> bool:
    from sequencer_node.wire.crypto import verify_message

    return verify_message(stmt, signer, CHAIN_ID)


#: The sim's name for the kind of statement each kind of evidence shows signed twice.
_STATEMENT_OF = {
    EvidenceKind.DOUBLE_PROPOSAL: "proposal",
    EvidenceKind.DOUBLE_VOTE: "vote",
    EvidenceKind.DOUBLE_TIMEOUT: "timeout",
}


def _kind_of_evidence(eff: api.EvidenceFound) -> tuple[str, bytes, int, object]:
    ev = eff.evidence
    return (_STATEMENT_OF[ev.kind], ev.offender, ev.round, ev.a)


__all__ = [
    "CHAIN_ID",
    "Instance",
    "NetParams",
    "NodeRestart",
    "Simulation",
    "Violation",
    "block_tx_hashes",
]
