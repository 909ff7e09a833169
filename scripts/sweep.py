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
one JSON line, to ``--out`` (default ``bench-results/sweep-<sweep>-<first seed>.jsonl``).
Progress goes to stderr. Exit status: 0 if every seed passed, 1 if one failed (each is printed
with the command that replays it), 2 for bad arguments, 130 if interrupted.

Run it with ``scripts/sweep`` (the project's environment). Examples::

    scripts/sweep random --from 100000 --count 2000 --soak --node-restart
    scripts/sweep stake --from 100000 --count 500 --soak
    scripts/sweep stake --from 0 --count 8 --majority   # must fail: the control
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sequencer_node.sim.harness import NodeRestart, Violation
from sequencer_node.sim.scenarios import run_random, run_stake_sweep

ROOT = Path(__file__).resolve().parent.parent
#: Progress lines at most this often (seconds).
_PROGRESS_S = 5.0
#: Seeds in one sweep, at most (a day of one core at the soak profile's ~1 s per seed).
_MAX_COUNT = 100_000


@dataclass(frozen=True)
class Job:
    """One sweep's parameters: everything a worker needs to run a seed of it."""

    sweep: str
    soak: bool
    node_restart: bool
    majority: bool


def run_seed(job: Job, seed: int) -> dict[str, Any]:
    """Run one seed; its result as a JSON-ready dict (``ok``: it passed)."""
    t0 = time.process_time()
    result: dict[str, Any] = {"seed": seed}
    try:
        if job.sweep == "random":
            out = run_random(
                seed,
                fault_ms=20_000 if job.soak else 6_000,
                actions=40 if job.soak else 12,
                node_restart=NodeRestart() if job.node_restart else None,
            )
            result.update(heights=list(out.heights), behaviour=out.behaviour,
                          recovery_ms=out.recovery_ms)  # fmt: skip
            problem = None if max(out.heights) > 0 else "no block committed"
        else:
            st = run_stake_sweep(seed, fault_ms=15_000 if job.soak else 6_000,
                                 majority=job.majority)  # fmt: skip
            result.update(heights=list(st.heights), behaviour=st.behaviour,
                          changes=list(st.changes),
                          wrongly_jailed=list(st.wrongly_jailed))  # fmt: skip
            problem = None
            if max(st.heights) == 0:
                problem = "no block committed"
            elif st.wrongly_jailed:
                problem = f"honest nodes jailed: {', '.join(st.wrongly_jailed)}"
        result.update(ok=problem is None, failure=problem)
    except Violation as exc:
        result.update(ok=False, failure=str(exc).splitlines()[0], details=str(exc))
    except Exception as exc:  # a bug of the core or the simulator: the sweep goes on
        result.update(ok=False, failure=f"{type(exc).__name__}: {exc}",
                      details=traceback.format_exc())  # fmt: skip
    result["cpu_s"] = round(time.process_time() - t0, 3)
    return result


def _run_one(args: tuple[Job, int]) -> dict[str, Any]:
    return run_seed(*args)


def results(job: Job, seeds: range, jobs: int) -> Iterator[dict[str, Any]]:
    """Each seed's result, in seed order; on ``jobs`` worker processes if more than one."""
    if jobs <= 1:
        for seed in seeds:
            yield run_seed(job, seed)
        return
    with multiprocessing.Pool(jobs) as pool:
        yield from pool.imap(_run_one, ((job, s) for s in seeds), chunksize=4)


def replay_command(job: Job, seed: int) -> str:
    flags = [job.sweep, "--from", str(seed), "--count", "1", "--jobs", "1"]
    flags += ["--soak"] * job.soak + ["--node-restart"] * job.node_restart
    flags += ["--majority"] * job.majority
    return "scripts/sweep " + " ".join(flags)


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="scripts/sweep",
        description=__doc__.split("\n\n")[0],
        epilog="Exit status: 0 every seed passed, 1 a seed failed, 2 bad arguments, 130 "
        "interrupted.",
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
                   help="the soak profile: longer fault schedules (random: 20 s, 40 actions; "
                        "stake: 15 s) instead of CI's (6 s, 12 actions)")  # fmt: skip
    p.add_argument("--node-restart", action="store_true",
                   help="random only: restarted nodes are rebuilt from what a node process "
                        "keeps on disk, not from memory")  # fmt: skip
    p.add_argument("--majority", action="store_true",
                   help="stake only: two twin keys with more than 1/3 of the stake, the "
                        "negative control (seeds must fail: it shows the checks can)")  # fmt: skip
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                   help="worker processes (default: the number of cores)")  # fmt: skip
    p.add_argument("--out", type=Path, default=None,
                   help="results file, one JSON line per seed (default "
                        "bench-results/sweep-<sweep>-<first seed>.jsonl)")  # fmt: skip
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
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    job = Job(args.sweep, args.soak, args.node_restart, args.majority)
    seeds = range(args.first, args.first + args.count)
    out = args.out or ROOT / "bench-results" / f"sweep-{args.sweep}-{args.first}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    print(f"sweep {args.sweep}: seeds {seeds.start}-{seeds.stop - 1} on {args.jobs} "
          f"process(es), results in {out}", file=sys.stderr)  # fmt: skip
    failed: list[dict[str, Any]] = []
    done, t0 = 0, time.monotonic()
    last = t0
    with out.open("w", buffering=1) as f:  # a line per seed as it ends: a stop loses nothing
        try:
            for r in results(job, seeds, args.jobs):
                f.write(json.dumps(r) + "\n")
                done += 1
                if not r["ok"]:
                    failed.append(r)
                    print(f"seed {r['seed']} FAILED: {r['failure']}", file=sys.stderr)
                now = time.monotonic()
                if now - last >= _PROGRESS_S or done == len(seeds):
                    last = now
                    print(f"  {done}/{len(seeds)} seeds, {len(failed)} failed, "
                          f"{done / max(now - t0, 1e-9):.1f} seeds/s", file=sys.stderr)  # fmt: skip
        except KeyboardInterrupt:
            print(f"interrupted after {done} seeds ({len(failed)} failed); their results are "
                  f"in {out}", file=sys.stderr)  # fmt: skip
            return 130
    if not failed:
        print(f"all {len(seeds)} seeds passed", file=sys.stderr)
        return 0
    print(f"{len(failed)} of {len(seeds)} seeds failed; replay one with:", file=sys.stderr)
    for r in failed[:20]:
        print(f"  {replay_command(job, r['seed'])}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
