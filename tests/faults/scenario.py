"""The fault scenario: L1 + 4 nodes (40/30/20/10 %) under steady load, one perturbation at a
time, each followed by recovery, then the end checks (:mod:`tests.faults.checks`).

Each step measures certification before the fault (a short baseline), during it, and the time
to recover after it is healed: every node certified two blocks beyond the highest height any
node had when the fault ended. A step that expects a *halt* (the 40 % node down, a 50/50
partition) fails if any node certifies more than :data:`HALT_SLACK` blocks while the fault
lasts; one that expects *progress* fails if the healthy nodes certify fewer than
:data:`MIN_PROGRESS`.

Profiles: ``ci`` (one round, short holds; a few minutes on 2 cores) and ``soak`` (several
rounds with seeded choices of victims, longer holds). Entry points: :func:`run_scenario`
(from a test) and ``scripts/scenario`` (``python -m tests.faults.scenario``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from sequencer_node.cli.tx import make_transfer
from sequencer_node.clients.l1 import InboxBatch, L1Client, L1Error
from sequencer_node.devnet.accounts import dev_key
from tests.faults import attacks, checks
from tests.faults.load import Ack, Load
from tests.faults.network import STAKES, FaultNet, Timing
from tests.faults.proxy import Faults

#: Blocks a halted network may still certify after the fault starts (already in flight).
HALT_SLACK = 2
#: Blocks the healthy nodes must certify while a tolerated fault lasts.
MIN_PROGRESS = 3
NODE_MEMORY_CAP_MB = 400
#: An acknowledged transaction lost when every node is killed at once, acknowledged at most
#: this long before, was still only in the mempools (a few block times).
CRASH_WINDOW_S = 2.0
#: A transaction acknowledged by a node this long before it was killed may not have been
#: gossiped yet (the answer goes out before the gossip).
GOSSIP_WINDOW_S = 0.5
L1_MEMORY_CAP_MB = 400


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    rounds: int
    hold_s: float  # how long a fault lasts
    baseline_s: float
    recover_limit_s: float
    load_rate: float
    load_accounts: int
    #: Crashes of the whole network at the end (stopping at the first that stalls).
    restart_cycles: int = 6
    #: The long attack steps too: the downtime jail (minutes of pause), the equivocator and
    #: the hostile client.
    long_attacks: bool = False
    timing: Timing = field(default_factory=Timing)


PROFILES = {
    "ci": Profile(
        "ci",
        rounds=1,
        hold_s=8.0,
        baseline_s=3.0,
        recover_limit_s=45.0,
        load_rate=8.0,
        load_accounts=16,
        restart_cycles=2,
    ),
    "soak": Profile(
        "soak",
        rounds=4,
        hold_s=20.0,
        baseline_s=5.0,
        recover_limit_s=90.0,
        load_rate=15.0,
        load_accounts=24,
        long_attacks=True,
    ),
}


@dataclass
class Step:
    """What one perturbation did and what was measured (times are unix seconds)."""

    kind: str  # what the tests look it up by: "kill-minority", "partition", ...
    name: str
    fault: str
    expect: str  # "progress" | "halt"
    ok: bool = False
    problems: list[str] = field(default_factory=list)
    baseline: tuple[float, float] = (0.0, 0.0)
    window: tuple[float, float] = (0.0, 0.0)
    span: tuple[float, float] = (0.0, 0.0)  # the whole step, recovery included
    advance: int = 0  # blocks certified during the fault (max over the observed nodes)
    recover_s: float | None = None
    blocks_ratio: float | None = None
    tx_ratio: float | None = None
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class Report:
    seed: int
    profile: str
    directory: str
    steps: list[Step] = field(default_factory=list)
    end: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0

    def steps_of(self, kind: str) -> list[Step]:
        out = [s for s in self.steps if s.kind == kind]
        if not out:
            raise KeyError(f"no {kind!r} step in the run (steps: {[s.name for s in self.steps]})")
        return out

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


Action = Callable[[], Awaitable[None] | None]


class Scenario:
    def __init__(self, net: FaultNet, load: Load, profile: Profile, seed: int) -> None:
        self.net = net
        self.load = load
        self.profile = profile
        self.rng = random.Random(seed)
        self.report = Report(seed, profile.name, str(net.root))
        #: (node, unix time, window) of every kill -9, to tell losses in a crash from others.
        self.kills: list[tuple[int, float, float]] = []
        self._end_chain = checks.Chain()
        #: The highest certified height any node reported so far (recovery targets).
        self.top_seen = 0

    def say(self, text: str) -> None:
        print(f"[scenario {time.strftime('%H:%M:%S')}] {text}", flush=True)

    # --- one step ----------------------------------------------------------------------------

    async def step(
        self,
        kind: str,
        name: str,
        fault: str,
        inject: Action,
        heal: Action,
        *,
        expect: str,
        hold_s: float | None = None,
        baseline_s: float | None = None,
        recover_limit_s: float | None = None,
    ) -> Step:
        st = Step(kind, name, fault, expect)
        self.report.steps.append(st)
        self.say(f"{name}: {fault} (expect {expect})")
        t0 = time.time()
        await trio.sleep(self.profile.baseline_s if baseline_s is None else baseline_s)
        await self.heights()
        try:
            await _call(inject)
            t1 = time.time()
            st.baseline = (t0, t1)
            st.advance = await self._advance_during(hold_s or self.profile.hold_s)
            await _call(heal)
            st.window = (t1, time.time())
            limit = recover_limit_s or self.profile.recover_limit_s
            st.recover_s = await self.wait_recovered(limit)
        except AssertionError as e:
            st.problems.append(str(e))
        if expect == "halt" and st.advance > HALT_SLACK:
            st.problems.append(f"certified {st.advance} blocks while a halt was expected")
        if expect == "progress" and st.advance < MIN_PROGRESS:
            st.problems.append(f"only {st.advance} blocks certified during the fault")
        if st.recover_s is None and not st.problems:
            st.problems.append("did not recover")
        st.problems += self.net.dead()
        st.span = (t0, time.time())
        st.ok = not st.problems
        self.say(
            f"{name}: {'ok' if st.ok else 'FAILED: ' + '; '.join(st.problems)} "
            f"(advance {st.advance}, recovered in {_fmt(st.recover_s)} s)"
        )
        return st

    async def heights(self) -> list[int | None]:
        hs = await self.net.heights()
        self.top_seen = max([self.top_seen, *(h for h in hs if h is not None)])
        return hs

    async def _advance_during(self, hold_s: float) -> int:
        """Blocks certified while the fault lasts (after one second for in-flight rounds),
        as the most any answering node advanced."""
        await trio.sleep(1.0)
        before = await self.heights()
        await trio.sleep(max(0.0, hold_s - 1.0))
        after = await self.heights()
        adv = [a - b for a, b in zip(after, before, strict=True) if a is not None and b is not None]
        return max(adv, default=0)

    async def wait_recovered(self, limit_s: float) -> float:
        """Seconds until every node certified 2 blocks beyond the highest height seen so far
        (by any node, before the fault included: after a crash of every node nobody answers
        at the heal)."""
        start = time.monotonic()
        await self.heights()
        target = self.top_seen + 2
        while time.monotonic() - start < limit_s:
            hs = await self.heights()
            if all(h is not None and h >= target for h in hs):
                return time.monotonic() - start
            if self.net.dead():
                raise AssertionError("; ".join(self.net.dead()))
            await trio.sleep(0.25)
        raise AssertionError(
            f"not every node reached height {target} within {limit_s:.0f} s "
            f"after healing (heights {hs})"
        )

    # --- the perturbations -------------------------------------------------------------------

    def kill(self, i: int, window_s: float = GOSSIP_WINDOW_S) -> None:
        self.kills.append((i, time.time(), window_s))
        self.net.kill(i)

    def minority(self) -> int:
        """A node whose loss the others tolerate (any but the 40 % one)."""
        return self.rng.choice([1, 2, 3])

    async def kill_restart(self, i: int, tag: str = "") -> Step:
        expect = "halt" if STAKES[i] > 100 / 3 else "progress"
        kind = "kill-40" if i == 0 else "kill-minority"
        return await self.step(
            kind,
            f"kill -9 node-{i} ({STAKES[i]}%){tag}",
            f"SIGKILL node-{i}, restart it after the hold",
            lambda: self.kill(i),
            lambda: self.net.start_node(i),
            expect=expect,
        )

    async def pause(self, i: int, tag: str = "") -> Step:
        return await self.step(
            "pause",
            f"pause node-{i} ({STAKES[i]}%){tag}",
            f"SIGSTOP node-{i} for 10 s, then SIGCONT",
            lambda: self.net.pause(i),
            lambda: self.net.resume(i),
            expect="progress",
            hold_s=10.0,
        )

    async def blackhole(self, i: int, tag: str = "") -> Step:
        mesh = self.net.mesh
        assert mesh is not None
        return await self.step(
            "blackhole",
            f"blackhole node-{i} ({STAKES[i]}%){tag}",
            f"every link of node-{i} silently drops",
            lambda: mesh.isolate(i, Faults(blackhole=True)),
            mesh.heal,
            expect="progress",
        )

    async def partition(self, tag: str = "") -> Step:
        mesh = self.net.mesh
        assert mesh is not None
        return await self.step(
            "partition",
            f"partition {{40,10}}|{{30,20}}{tag}",
            "links between the halves blackholed",
            lambda: mesh.partition([{0, 3}, {1, 2}]),
            mesh.heal,
            expect="halt",
        )

    async def storm(self, tag: str = "") -> Step:
        mesh = self.net.mesh
        assert mesh is not None
        storm = Faults(delay_ms=50, jitter_ms=30, cut=0.002)
        return await self.step(
            "storm",
            f"delay/cut storm{tag}",
            "every link: 50±30 ms per frame, 0.2 % of frames cut mid-frame (connection closed)",
            lambda: mesh.everywhere(storm),
            mesh.heal,
            expect="progress",
            hold_s=self.profile.hold_s * 1.5,
        )

    async def frame_loss(self, tag: str = "") -> Step:
        mesh = self.net.mesh
        assert mesh is not None
        i, j = self.rng.sample([1, 2, 3], 2)
        lossy = Faults(drop=0.05, duplicate=0.05)
        before = await attacks.p2p_stats(self.net)
        step = await self.step(
            "frame-loss",
            f"frame loss node-{i}<->node-{j}{tag}",
            "5 % of frames dropped, 5 % duplicated on one link",
            lambda: mesh.set_link(i, j, lossy),
            mesh.heal,
            expect="progress",
        )
        after = await attacks.p2p_stats(self.net)
        step.info["proxy"] = dataclasses.asdict(mesh.totals())
        # issue 12: a broken session closes and is redialled; nobody is banned for it
        for k in (i, j):
            b, a = before[k], after[k]
            if a is None or b is None:
                continue
            failures = a["offenses"].get("decrypt_failure", 0) - b["offenses"].get(
                "decrypt_failure", 0
            )
            step.info[f"node-{k}"] = {"decrypt_failures": failures, "bans": a["bans"] - b["bans"]}
            if a["bans"] > b["bans"]:
                step.problems.append(f"node-{k} banned a peer for broken frames")
        step.ok = not step.problems
        step.info["note"] = f"sessions broken and redialled: {step.info.get(f'node-{i}')}, " + str(
            step.info.get(f"node-{j}")
        )
        return step

    async def whole_network_restart(self, tag: str = "") -> Step:
        n = len(self.net.nodes)

        def kill_all() -> None:
            for i in range(n):
                self.kill(i, CRASH_WINDOW_S)

        def start_all() -> None:
            for i in range(n):
                self.net.start_node(i)

        return await self.step(
            "restart-all",
            f"kill -9 every node at once{tag}",
            "SIGKILL all 4 nodes together, restart them all",
            kill_all,
            start_all,
            expect="halt",
            hold_s=2.0,
            baseline_s=1.0,
            recover_limit_s=30.0,  # a restart takes 6-12 s; beyond 30 s it has stalled
        )

    async def l1_outage(self) -> Step:
        """The nodes lose the L1 while a forced transaction is queued on it and the L1 moves
        past the sequencing window (issue 16): afterwards batches must land again, the forced
        transaction must be certified, and the follower must agree.

        The L1 mines ``window + 8`` blocks at once (``dev_mine``) during the outage, so the
        outage is longer than the window in L1 blocks without lasting minutes; the nodes never
        compare L1 timestamps with their clock, so an L1 clock ahead of theirs changes nothing.
        """
        net = self.net
        proxy = net.l1_proxy
        assert proxy is not None
        window = net.timing.sequencing_window
        key = dev_key(1)
        forced = make_transfer(key, dev_key(2).address, 1, 0, 1, net.cfg.l2_chain_id)

        async def inject() -> None:
            proxy.set(refuse=True)
            async with L1Client(net.cfg.l1_url) as l1:
                await l1.queue_forced(forced, key)
                await trio.sleep(2 * net.timing.slot_time)  # the entry is mined first
                await l1.dev_mine(window + 8)

        async with L1Client(net.cfg.l1_url) as l1:
            before = await l1.last_batch()
        step = await self.step(
            "l1-outage",
            "L1 outage past the sequencing window",
            f"nodes cut from the L1 while a forced transaction is queued and the L1 mines "
            f"{window + 8} blocks (window {window})",
            inject,
            proxy.heal,
            expect="progress",
        )
        first = 0 if before is None else before.header.batch_number + 1
        await self._check_l1_after_outage(step, first)
        return step

    async def _check_l1_after_outage(self, step: Step, first_new: int) -> None:
        """The forced transaction is certified (at height F), a batch covering F lands on
        L1, and the follower rebuilds the chain up to it."""
        limit = 20 * self.net.timing.block_time_ms / 1000 + 30
        forced_at = await self._wait_forced_block(limit)
        step.info["forced_height"] = forced_at
        if forced_at is None:
            step.problems.append("the forced transaction is not in the certified chain")
            step.ok = False
            return
        landed = await self._wait_batches(first_new, forced_at, limit)
        step.info["batches_after_outage"] = len(landed)
        if not landed or landed[-1].header.last_height < forced_at:
            step.problems.append(
                f"no batch covering L2 height {forced_at} (the forced transaction) landed on "
                f"L1 within {limit:.0f} s ({len(landed)} batches landed after the outage)"
            )
        else:
            after = time.time() - step.window[1]
            want = landed[-1].header.last_height
            derived = await checks.derive(self.net, self._answering(), want, limit)
            step.info["follower_height"] = derived.height
            if derived.error or derived.mismatch or derived.height < want:
                step.problems.append(f"follower: {derived.error or derived.mismatch or 'behind'}")
            step.info["note"] = (
                f"forced tx certified at height {forced_at}; a batch covering it on L1 "
                f"{after:.0f} s after the outage; the follower agrees up to {derived.height}"
            )
        step.ok = not step.problems

    async def _wait_forced_block(self, limit_s: float) -> int | None:
        """The height of the first certified block with a forced entry (the run queues one)."""
        end = time.monotonic() + limit_s
        chain = checks.Chain()
        node = self._answering()
        while time.monotonic() < end:
            top = (await self.heights())[node] or chain.height
            await checks.fetch_chain(self.net, node, top, chain)
            found = [h for h, b in chain.blocks.items() if b["forced_count"]]
            if found:
                return min(found)
            await trio.sleep(1.0)
        return None

    async def _wait_batches(self, first: int, height: int, limit_s: float) -> list[InboxBatch]:
        """Batches from number ``first`` on the L1 inbox, once one covers L2 ``height`` (or
        the ones there after ``limit_s``)."""
        end = time.monotonic() + limit_s
        got: list[InboxBatch] = []
        async with L1Client(self.net.cfg.l1_url) as l1:
            while time.monotonic() < end:
                try:
                    got = await l1.inbox_batches(first, 100)
                except L1Error:
                    got = []
                if got and got[-1].header.last_height >= height:
                    break
                await trio.sleep(1.0)
        return got

    def _loss_problems(self, res: checks.SetCheck) -> tuple[list[str], list[str]]:
        """(unexplained losses, losses in a crash).

        Only the first lost transaction of an account is a cause: the later ones wait behind
        its nonce. A first loss acknowledged by a node shortly before that node was killed
        was still only in (volatile) mempools: the node's own, when it died before gossiping
        it (:data:`GOSSIP_WINDOW_S`), or every one, when every node was killed at once
        (:data:`CRASH_WINDOW_S`).
        """
        in_crash = [
            a
            for a in res.roots
            # the client may read an answer sent just before the kill a little after it
            if any(i == a.node and k - w <= a.at <= k + 0.2 for i, k, w in self.kills)
        ]
        other = [a for a in res.roots if a not in in_crash]

        def describe(acks: list[Ack], what: str) -> list[str]:
            if not acks:
                return []
            first = "; ".join(
                f"account {a.account} nonce {a.nonce} acked by node-{a.node} {self._during(a.at)}"
                for a in acks[:8]
            )
            return [
                f"{len(acks)} accounts lost an acknowledged transaction {what}: {first} "
                f"({len(res.lost)} acknowledged transactions not certified in all, the "
                f"later ones of these accounts waiting behind the lost nonce)"
            ]

        return describe(other, ""), describe(in_crash, "just before its node was killed")

    def _during(self, at: float) -> str:
        for s in self.report.steps:
            if s.span[0] <= at <= s.span[1]:
                return f"during '{s.name}' (+{at - s.span[0]:.1f} s)"
        return "between steps"

    def _answering(self) -> int:
        return next((n.index for n in self.net.nodes if n.alive() and not n.paused), 0)

    # --- the run -----------------------------------------------------------------------------

    async def run(self, only: tuple[str, ...] = ()) -> Report:
        """Every step of the profile; ``only``: just these attack steps (by kind, see
        :data:`ATTACK_STEPS`), then the end checks (for working on one of them)."""
        t0 = time.monotonic()
        if only:
            for kind in only:
                await ATTACK_STEPS[kind](self)
            await self.end_checks()
            self.load.stop()
            self._ratios(self._end_chain)
            self.report.duration_s = time.monotonic() - t0
            return self.report
        for r in range(self.profile.rounds):
            tag = "" if self.profile.rounds == 1 else f" #{r + 1}"
            await self.kill_restart(self.minority(), tag)
            await self.kill_restart(0, tag)
            await self.pause(self.minority(), tag)
            await self.blackhole(self.minority(), tag)
            await self.partition(tag)
            await self.storm(tag)
            await self.frame_loss(tag)
        await self.checkpoint("L1 checkpoint")
        await self.l1_outage()
        await self.attacks()
        await self.end_checks()
        # Last, because a stall here (issue 11, finding 6) is for good: several rounds, so
        # that a race that hits one crash in two shows up nearly always.
        for r in range(self.profile.restart_cycles):
            if not (await self.whole_network_restart(f" #{r + 1}")).ok:
                break
        await self.after_restarts()
        self.report.duration_s = time.monotonic() - t0
        return self.report

    async def attacks(self) -> None:
        """Byzantine nodes, jail, hostile client and peer (:mod:`tests.faults.attacks`). The
        jail comes before the twin: a slashed node is jailed already."""
        if self.profile.long_attacks:
            await attacks.downtime_jail(self)
        await attacks.twin(self)
        if self.profile.long_attacks:
            await attacks.equivocator(self)
        await attacks.hostile_peer(self)
        if self.profile.long_attacks:  # the fuzz targets cover the RPC parsers in CI
            await attacks.hostile_client(self)

    async def checkpoint(self, name: str) -> Step:
        """Every transaction acknowledged so far is in an L1 batch the follower rebuilds."""
        st = Step("checkpoint", name, "none: derive from L1 and compare", "progress")
        self.report.steps.append(st)
        chain = checks.Chain()
        node = self._answering()
        res = await checks.wait_all_certified(self.net, self.load.history, chain, node, 30)
        heights = checks.acked_heights(self.load.history, chain)
        want = max(heights, default=0)
        # the follower re-executes every block: give it time in proportion to the chain
        derived = await checks.derive(self.net, node, want, 60 + want / 10)
        st.info = {
            "acked": res.acked,
            "lost": len(res.lost),
            "follower_height": derived.height,
            "batches": derived.batches,
            "need_height": want,
        }
        unexplained, crash = self._loss_problems(res)
        st.problems += unexplained
        st.info["crash_loss"] = crash  # reported by the end checks
        if derived.error or derived.mismatch:
            st.problems.append(f"follower: {derived.error or derived.mismatch}")
        if derived.height < want:
            st.problems.append(
                f"follower at {derived.height}, acknowledged transactions up "
                f"to height {want} are not all in L1 batches"
            )
        st.ok = not st.problems
        self.say(f"{name}: {'ok' if st.ok else 'FAILED: ' + '; '.join(st.problems)} {st.info}")
        return st

    async def end_checks(self) -> None:
        """Agreement, the set check, memory: before the crashes of the whole network."""
        end = Step("end", "end checks", "none: agreement, set check, memory", "progress")
        self.report.steps.append(end)
        chain0 = checks.Chain()
        res = await checks.wait_all_certified(
            self.net, self.load.history, chain0, self._answering(), 20
        )
        self._end_chain = chain0
        forks = await self._forks()
        unexplained, crash = self._loss_problems(res)
        self.net.sample_memory()
        self.report.end = self._summary(res, forks)
        end.info = {
            "forks": forks,
            "set": unexplained + [f"transaction included twice: {d}" for d in res.duplicated[:5]],
            "crash_loss": crash,
            "memory": checks.memory_problems(self.net, NODE_MEMORY_CAP_MB, L1_MEMORY_CAP_MB),
            "processes": self.net.dead(),
        }
        self._conclude(end)

    async def after_restarts(self) -> None:
        """After the crashes of every node: still no fork, and every acknowledged transaction
        is certified (those of the crashes included)."""
        self.load.stop()
        st = Step("after-restart", "after the whole-network crashes",
                  "none: agreement, set check, memory", "progress")  # fmt: skip
        self.report.steps.append(st)
        chain = checks.Chain()
        res = await checks.wait_all_certified(
            self.net, self.load.history, chain, self._answering(), 20
        )
        forks = await self._forks()
        unexplained, crash = self._loss_problems(res)
        self.net.sample_memory()
        self.report.end["after_restarts"] = self._summary(res, forks)
        st.info = {
            "forks": forks,
            "loss": unexplained + crash,
            "duplicated": [f"transaction included twice: {d}" for d in res.duplicated[:5]],
            "memory": checks.memory_problems(self.net, NODE_MEMORY_CAP_MB, L1_MEMORY_CAP_MB),
            "processes": self.net.dead(),
        }
        self._conclude(st)
        # the longer chain, unless no node answered after the crashes
        self._ratios(chain if chain.height >= self._end_chain.height else self._end_chain)

    async def _forks(self) -> list[str]:
        hs = await self.heights()
        top = min((h for h in hs if h is not None), default=0)
        chains = [await checks.fetch_chain(self.net, i, top) for i in range(len(self.net.nodes))]
        return [f"fork at {f}" for f in checks.forks(chains)[:5]]

    def _summary(self, res: checks.SetCheck, forks: list[str]) -> dict[str, Any]:
        hist = self.load.history
        return {
            "height": self.top_seen,
            "acked": res.acked,
            "lost": len(res.lost),
            "lost_first_per_account": len(res.roots),
            "duplicated": len(res.duplicated),
            "maybe_included": res.maybe_included,
            "unanswered_sends": hist.unanswered,
            "refused": dict(hist.refused),
            "forks": len(forks),
            "peak_rss_mb": [n.peak_rss_kb // 1024 for n in self.net.nodes],
            "worker_peak_rss_mb": [n.worker_peak_rss_kb // 1024 for n in self.net.nodes],
            "l1_peak_rss_mb": self.net.l1_peak_rss_kb // 1024,
        }

    def _conclude(self, st: Step) -> None:
        st.problems = [p for ps in st.info.values() for p in ps]
        st.ok = not st.problems
        self.say(f"{st.name}: {'ok' if st.ok else 'FAILED: ' + '; '.join(st.problems)}")

    def _ratios(self, chain: checks.Chain) -> None:
        for st in self.report.steps:
            if st.window == (0.0, 0.0):
                continue
            b0, t0 = chain.throughput(*st.baseline)
            b1, t1 = chain.throughput(*st.window)
            st.blocks_ratio = round(b1 / b0, 2) if b0 else None
            st.tx_ratio = round(t1 / t0, 2) if t0 else None


async def _call(action: Action) -> None:
    res = action()
    if res is not None:
        await res


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


#: The attack steps ``scripts/scenario --only`` can run alone.
ATTACK_STEPS = {
    "jail": attacks.downtime_jail,
    "twin": attacks.twin,
    "equivocate": attacks.equivocator,
    "hostile-peer": attacks.hostile_peer,
    "hostile-client": attacks.hostile_client,
}


async def run_scenario(
    root: Path, profile: Profile, seed: int, only: tuple[str, ...] = ()
) -> Report:
    """Start the network, run the scenario, stop every process; the report is also written
    to ``root/report.json``."""
    net = FaultNet(root, seed, profile.timing)
    try:
        async with trio.open_nursery() as nursery:
            await net.start(nursery)
            await net.wait_first_block()
            urls = [net.rpc(i) for i in range(len(STAKES))]
            load = Load(
                urls,
                net.cfg.l2_chain_id,
                rate=profile.load_rate,
                accounts=profile.load_accounts,
                seed=seed,
            )
            nursery.start_soon(load.run)
            report = await Scenario(net, load, profile, seed).run(only)
            nursery.cancel_scope.cancel()
    finally:
        net.stop_all()
        await net.http.aclose()
    (root / "report.json").write_text(json.dumps(report.to_json(), indent=2, default=str))
    return report


def markdown(report: Report) -> str:
    """The docs/reliability.md result table of one run."""
    rows = [
        "| Step | Fault | Expect | Result | Blocks during | Recovered in | "
        "Blocks/s vs before | Tx/s vs before |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in report.steps:
        result = "ok" if s.ok else "FAILED: " + "; ".join(s.problems)[:120]
        if s.info.get("note"):
            result += f" ({s.info['note']})"
        rows.append(
            f"| {s.name} | {s.fault} | {s.expect} | {result} | {s.advance} | "
            f"{_fmt(s.recover_s)} s | {s.blocks_ratio} | {s.tx_ratio} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="scripts/scenario", description=__doc__.split("\n\n")[0])
    ap.add_argument("--soak", action="store_true", help="the long profile (several rounds)")
    ap.add_argument("--seed", type=int, default=None, help="replay a run (default: random)")
    ap.add_argument("--dir", type=Path, default=None, help="where logs and data go")
    ap.add_argument(
        "--only",
        default="",
        help=f"run just these attack steps, comma separated ({', '.join(ATTACK_STEPS)})",
    )
    args = ap.parse_args(argv)
    only = tuple(k for k in args.only.split(",") if k)
    if unknown := [k for k in only if k not in ATTACK_STEPS]:
        ap.error(f"unknown steps {unknown}")
    profile = PROFILES["soak" if args.soak else "ci"]
    seed = args.seed if args.seed is not None else random.randrange(2**31)
    root = args.dir or Path(tempfile.mkdtemp(prefix=f"seqnet-scenario-{seed}-"))
    print(f"scenario profile {profile.name}, seed {seed}, logs and data in {root}", flush=True)
    report = trio.run(run_scenario, root, profile, seed, only)
    print(markdown(report))
    print(json.dumps(report.end, indent=2))
    failed = [s.name for s in report.steps if not s.ok]
    print(
        f"{'FAILED: ' + ', '.join(failed) if failed else 'all steps ok'} in "
        f"{report.duration_s:.0f} s; seed {seed}; logs in {root}/logs"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
