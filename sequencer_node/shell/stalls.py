"""Event-loop stall diagnosis (issue 13, ``/health`` latency under load): a Trio instrument
that times every task step and records the ones longer than a threshold, with the task's
name and what the node was doing (the core task's current input or effect).

Off unless ``SEQNET_STALL_DIR`` is set (the benchmark's diagnosis runs): then each node
process appends its stalls over ``SEQNET_STALL_MS`` (default 10) to
``$SEQNET_STALL_DIR/stalls-<pid>.txt``, one line each: ``<ms> <cpu ms> <task> <activity>``
(wall time, and the CPU time of the loop's thread in it: on a loaded machine a step may wait
for a core, or block on a disk), and at exit a summary line per activity and one per garbage
collector generation with the time of ALL its collections (short ones included: what the
collector costs the node). It costs four clock reads per task step.
"""

from __future__ import annotations

import gc
import os
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import trio

ENV_DIR = "SEQNET_STALL_DIR"
ENV_MS = "SEQNET_STALL_MS"


class StallMonitor(trio.abc.Instrument):
    """Records task steps longer than ``threshold_s`` (see the module docstring)."""

    def __init__(
        self, path: Path, threshold_s: float, activity: Callable[[trio.lowlevel.Task], str]
    ) -> None:
        self.path = path
        self.threshold_s = threshold_s
        self.activity = activity
        self._started = -1.0  # no step timed yet (installed in the middle of one)
        self._started_cpu = 0.0
        self._gc_started = 0.0
        self.total_s: dict[str, float] = {}
        self.count: Counter[str] = Counter()
        #: Every collection's time and count by generation, whatever its length.
        self.gc_s = [0.0, 0.0, 0.0]
        self.gc_count = [0, 0, 0]
        self._since = time.perf_counter()

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self._started = time.perf_counter()
        self._started_cpu = time.thread_time()

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        if self._started < 0:
            return
        took = time.perf_counter() - self._started
        self._started = -1.0
        if took < self.threshold_s:
            return
        what = f"{task.name.rsplit('.', 1)[-1]} {self.activity(task)}"
        self.total_s[what] = self.total_s.get(what, 0.0) + took
        self.count[what] += 1
        with self.path.open("a") as f:
            cpu = time.thread_time() - self._started_cpu
            f.write(f"{took * 1000:.1f} {cpu * 1000:.1f} {what}\n")

    def on_gc(self, phase: str, info: dict[str, int]) -> None:
        """A ``gc.callbacks`` hook: a collection over the threshold is recorded as a stall of
        task ``gc`` (the step it interrupted is recorded too, including it)."""
        if phase == "start":
            self._gc_started = time.perf_counter()
            return
        took = time.perf_counter() - self._gc_started
        gen = info.get("generation", 2)
        self.gc_s[gen] += took
        self.gc_count[gen] += 1
        if took >= self.threshold_s:
            what = f"gc gen{gen}"
            self.total_s[what] = self.total_s.get(what, 0.0) + took
            self.count[what] += 1
            with self.path.open("a") as f:
                f.write(f"{took * 1000:.1f} {took * 1000:.1f} {what}\n")

    def summary(self) -> str:
        """Stalls by task and activity, longest total first; then every collection by
        generation over the process's monitored time."""
        lines = [
            f"total {self.total_s[w] * 1000:.0f} ms in {self.count[w]} stalls: {w}"
            for w in sorted(self.total_s, key=self.total_s.__getitem__, reverse=True)
        ]
        elapsed = time.perf_counter() - self._since
        lines += [
            f"gc gen{g}: {self.gc_count[g]} collections, {self.gc_s[g] * 1000:.0f} ms in "
            f"{elapsed:.0f} s ({self.gc_s[g] / max(elapsed, 1e-9) * 100:.2f} % of the time)"
            for g in range(3)
        ]
        return "\n".join(lines)


def install_from_env(activity: Callable[[trio.lowlevel.Task], str]) -> StallMonitor | None:
    """Add a StallMonitor to the running Trio loop if ``SEQNET_STALL_DIR`` is set."""
    where = os.environ.get(ENV_DIR)
    if not where:
        return None
    threshold_ms = float(os.environ.get(ENV_MS, "10"))
    Path(where).mkdir(parents=True, exist_ok=True)
    monitor = StallMonitor(Path(where) / f"stalls-{os.getpid()}.txt", threshold_ms / 1000,
                           activity)  # fmt: skip
    trio.lowlevel.add_instrument(monitor)
    gc.callbacks.append(monitor.on_gc)
    return monitor


def write_summary(monitor: StallMonitor | None) -> None:
    if monitor is not None:
        if monitor.on_gc in gc.callbacks:
            gc.callbacks.remove(monitor.on_gc)
        with monitor.path.open("a") as f:
            f.write(monitor.summary() + "\n")
