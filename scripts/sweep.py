"""Sweep the protocol simulator over fresh seeds, past the ones CI runs.

CI runs the random fault sweep on seeds 0-199 and the stake-change sweep on 0-49
(``tests/core/test_sim.py``); every seed beyond is a schedule nobody has tried. Fresh seeds are
cheap (0.2-1 s of CPU each) and found a whole-network restart that stalled for good after
thirteen sessions of CI-seed sweeps (docs/reliability.md), so run this regularly, e.g.
nightly, on a seed range of its own.

Sweeps (the scenarios of ``sequencer_node.sim.scenarios``):

* ``random``: 4-6 sequencers, one faulty key below 1/3 of the stake, partitions, cuts, crashes
  and whole-network restarts, pauses, clock skew, stake changes; then liveness;
* ``stake``: a new stake table at every epoch boundary by any amount the L1 allows, one faulty
  key below 1/3 of every table; no fork, no honest node jailed, then liveness.

Every step of a run is checked by the simulator (agreement, no commit without a QC, ...); a
seed fails on a violation (fork, stall), on an honest node wrongly jailed, on a run that
committed nothing, or on an exception (a bug). Each seed's result is written as it finishes,
one JSON line with the command that replays it, to ``--out`` (default
``bench-results/sweep-<sweep>[-<flags>]-<first seed>-<count>.jsonl``; an existing file is
kept unless ``--force``). Progress goes to stderr. Exit status: 0 if every seed passed, 1 if
one failed (the replay commands are printed), 2 for bad arguments or an unwritable results
file, 130 if interrupted. ``--majority`` is the negative control: 0 when its runs fork as
they must.

Run it with ``scripts/sweep`` (the project's environment). Examples::

    scripts/sweep random --from 100000 --count 2000 --soak --node-restart
    scripts/sweep stake --from 100000 --count 500 --soak
    scripts/sweep stake --from 0 --count 8 --majority   # must fail: the control
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import traceback
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sequencer_node.sim.harness import NodeRestart, Violation
from sequencer_node.sim.scenarios import CI_PROFILE, SOAK_PROFILE, run_random, run_stake_sweep

ROOT = Path(__file__).resolve().parent.parent
#: Progress lines at most this often (seconds).
_PROGRESS_S = 5.0
#: Seeds in one sweep, at most (a day of one core at the soak profile's ~1 s per seed).
_MAX_COUNT = 100_000
#: Replay commands printed at the end, at most (every line of the results file has its own).
_REPLAYS_SHOWN = 20


@dataclass(frozen=True)
class Job:
    """One sweep's parameters: everything a worker needs to run a seed of it."""

    sweep: str
    soak: bool
    node_restart: bool
    majority: bool


def run_seed(job: Job, seed: int) -> dict[str, Any]:
    """Run one seed; its result as a JSON-ready dict (``ok``: it passed; ``replay``: the
    command that runs it again)."""
    t0 = time.process_time()
    result: dict[str, Any] = {"seed": seed, "replay": replay_command(job, seed)}
    profile = SOAK_PROFILE if job.soak else CI_PROFILE
    try:
        if job.sweep == "random":
            out = run_random(
                seed,
                fault_ms=profile.random_fault_ms,
                actions=profile.random_actions,
                node_restart=NodeRestart() if job.node_restart else None,
            )
            result.update(heights=list(out.heights), behaviour=out.behaviour,
                          recovery_ms=out.recovery_ms)  # fmt: skip
            problem = None if max(out.heights) > 0 else "no block committed"
        else:
            st = run_stake_sweep(seed, fault_ms=profile.stake_fault_ms, majority=job.majority)
            result.update(heights=list(st.heights), behaviour=st.behaviour,
                          changes=list(st.changes),
                          wrongly_jailed=list(st.wrongly_jailed))  # fmt: skip
            problem = None
            if max(st.heights) == 0:
                problem = "no block committed"
            elif st.wrongly_jailed and not job.majority:  # > 1/3 faulty: nothing is promised
                problem = f"honest nodes jailed: {', '.join(st.wrongly_jailed)}"
        result.update(ok=problem is None, failure=problem, violation=False)
    except Violation as exc:
        result.update(ok=False, failure=str(exc).splitlines()[0], violation=True,
                      details=str(exc))  # fmt: skip
    except Exception as exc:  # a bug of the core or the simulator: the sweep goes on
        result.update(ok=False, failure=f"{type(exc).__name__}: {exc}", violation=False,
                      details=traceback.format_exc())  # fmt: skip
    result["cpu_s"] = round(time.process_time() - t0, 3)
    return result


def _ignore_interrupts() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops the sweep, once


def results(job: Job, seeds: range, jobs: int) -> Iterator[dict[str, Any]]:
    """Each seed's result, in seed order; on ``jobs`` worker processes if more than one (a
    worker that dies, e.g. killed for memory, raises BrokenProcessPool: no silent hang)."""
    if jobs <= 1:
        for seed in seeds:
            yield run_seed(job, seed)
        return
    pool = ProcessPoolExecutor(jobs, initializer=_ignore_interrupts)
    try:
        yield from pool.map(run_seed, [job] * len(seeds), seeds, chunksize=4)
    except BaseException:  # stopped (Ctrl-C, a dead worker, the caller closed us): do not wait
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    # Done: wait for the pool's own thread, or the interpreter's exit races it on a closed pipe
    # ("Exception ignored ... Bad file descriptor" after a sweep that passed).
    pool.shutdown(wait=True)


def replay_command(job: Job, seed: int) -> str:
    flags = [job.sweep, "--from", str(seed), "--count", "1", "--jobs", "1"]
    flags += ["--soak"] * job.soak + ["--node-restart"] * job.node_restart
    flags += ["--majority"] * job.majority
    return "scripts/sweep " + " ".join(flags)


def default_out(job: Job, seeds: range) -> Path:
    """``bench-results/sweep-<sweep>[-soak][-node-restart][-majority]-<first>-<count>.jsonl``:
    runs with other parameters (a replay of one seed too) never share a file."""
    flags = "-soak" * job.soak + "-node-restart" * job.node_restart + "-majority" * job.majority
    name = f"sweep-{job.sweep}{flags}-{seeds.start}-{len(seeds)}.jsonl"
    return ROOT / "bench-results" / name


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="scripts/sweep",
        description=__doc__.split("\n\n")[0],
        epilog="Exit status: 0 every seed passed (--majority: the control forked as it must), "
        "1 a seed failed (--majority: the control did not fork), 2 bad arguments or an "
        "unwritable results file, 130 interrupted.",
    )
    p.add_argument("sweep", choices=("random", "stake"),
                   help="random: fault schedules with restarts; stake: stake changes at "
                        "every epoch boundary")  # fmt: skip
    p.add_argument("--from", dest="first", type=int, default=100_000, metavar="SEED",
                   help="first seed (default 100000; CI runs 0-199 and 0-49)")  # fmt: skip
    p.add_argument("--count", type=int, default=1_000,
                   help="how many seeds, from --from on (default 1000, at most "
                        f"{_MAX_COUNT})")  # fmt: skip
    p.add_argument("--soak", action="store_true",
                   help="the soak profile: longer fault schedules (random: "
                        f"{SOAK_PROFILE.random_fault_ms // 1000} s, "
                        f"{SOAK_PROFILE.random_actions} actions; stake: "
                        f"{SOAK_PROFILE.stake_fault_ms // 1000} s) instead of CI's "
                        f"({CI_PROFILE.random_fault_ms // 1000} s, {CI_PROFILE.random_actions} "
                        f"actions; stake: {CI_PROFILE.stake_fault_ms // 1000} s)")  # fmt: skip
    p.add_argument("--node-restart", action="store_true",
                   help="random only: restarted nodes are rebuilt from what a node process "
                        "keeps on disk, not from memory")  # fmt: skip
    p.add_argument("--majority", action="store_true",
                   help="stake only: the negative control, two twin keys with more than 1/3 "
                        "of the stake; it passes when its runs fork (it shows the checks "
                        "can fail) and every failure is a fork or a stall")  # fmt: skip
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                   help="worker processes (default: the number of cores)")  # fmt: skip
    p.add_argument("--out", type=Path, default=None,
                   help="results file, one JSON line per seed (default bench-results/"
                        "sweep-<sweep>[-<flags>]-<first seed>-<count>.jsonl); an existing "
                        "file is kept unless --force")  # fmt: skip
    p.add_argument("--force", action="store_true", help="overwrite an existing results file")
    args = p.parse_args(argv)
    if args.first < 0:
        p.error("--from must be 0 or more")
    if not 1 <= args.count <= _MAX_COUNT:
        p.error(f"--count must be between 1 and {_MAX_COUNT}")
    if args.jobs < 1:
        p.error("--jobs must be 1 or more")
    if args.node_restart and args.sweep != "random":
        p.error("--node-restart applies to the random sweep only (the stake sweep restarts "
                "no node)")  # fmt: skip
    if args.majority and args.sweep != "stake":
        p.error("--majority applies to the stake sweep only")
    args.job = Job(args.sweep, args.soak, args.node_restart, args.majority)
    args.seeds = range(args.first, args.first + args.count)
    args.out = (args.out or default_out(args.job, args.seeds)).resolve()
    if args.out.exists() and not args.force:
        p.error(f"{args.out} exists: pass --force to overwrite it, or another --out")
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.touch()
    except OSError as exc:
        p.error(f"cannot write the results file: {exc}")
    return args


def _print_replays(failed: list[dict[str, Any]]) -> None:
    for r in failed[:_REPLAYS_SHOWN]:
        print(f"  {r['replay']}", file=sys.stderr)
    if len(failed) > _REPLAYS_SHOWN:
        print(f"  ... and {len(failed) - _REPLAYS_SHOWN} more (each line of the results "
              "file has its replay)", file=sys.stderr)  # fmt: skip


def control_held(rows: list[dict[str, Any]]) -> bool:
    """The negative control's rule (as tests/core/test_sim.py's): some run forked, and every
    run that failed failed by a fork or a stall (not by an exception)."""
    failures = [str(r["failure"]) for r in rows if not r["ok"]]
    forks = sum(f.startswith("FORK") for f in failures)
    return forks > 0 and all(
        r["violation"] and str(r["failure"]).startswith(("FORK", "STALL"))
        for r in rows if not r["ok"]
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    job, seeds, out = args.job, args.seeds, args.out
    print(f"sweep {args.sweep}: seeds {seeds.start}-{seeds.stop - 1} on {args.jobs} "
          f"process(es), results in {out}", file=sys.stderr)  # fmt: skip
    rows: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    t0 = last = time.monotonic()
    with out.open("w", buffering=1) as f:  # a line per seed as it ends: a stop loses nothing
        try:
            for r in results(job, seeds, args.jobs):
                f.write(json.dumps(r) + "\n")
                rows.append(r)
                if not r["ok"]:
                    failed.append(r)
                    print(f"seed {r['seed']} failed: {r['failure']}", file=sys.stderr)
                now = time.monotonic()
                if now - last >= _PROGRESS_S or len(rows) == len(seeds):
                    last = now
                    rate = len(rows) / max(now - t0, 1e-9)
                    print(f"  {len(rows)}/{len(seeds)} seeds, {len(failed)} failed, "
                          f"{rate:.1f} seeds/s", file=sys.stderr)  # fmt: skip
        except KeyboardInterrupt:
            print(f"interrupted after {len(rows)} seeds ({len(failed)} failed); their results "
                  f"are in {out}", file=sys.stderr)  # fmt: skip
            _print_replays(failed)
            return 130
    if job.majority:
        held = control_held(rows)
        verdict = (
            "as it must (the checks can fail)"
            if held
            else "NOT as it must: no fork, or a failure that is neither a fork nor a stall"
        )
        print(f"negative control: {len(failed)} of {len(seeds)} runs failed, {verdict}",
              file=sys.stderr)  # fmt: skip
        return 0 if held else 1
    if not failed:
        print(f"all {len(seeds)} seeds passed", file=sys.stderr)
        return 0
    print(f"{len(failed)} of {len(seeds)} seeds failed; replay one with:", file=sys.stderr)
    _print_replays(failed)
    return 1


if __name__ == "__main__":
    sys.exit(main())
