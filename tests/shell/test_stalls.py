"""The stall diagnosis (issue 13): a task step longer than the threshold is recorded with the
task and what the node was doing; shorter ones are not; off unless the variable is set."""

from __future__ import annotations

import gc
import time
from pathlib import Path

import pytest
import trio

from sequencer_node.shell.stalls import ENV_DIR, ENV_MS, install_from_env, write_summary


async def test_a_long_task_step_is_recorded_with_its_activity(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_DIR, str(tmp_path))
    monkeypatch.setenv(ENV_MS, "10")
    monitor = install_from_env(lambda task: "handling X")
    assert monitor is not None
    try:

        async def blocking() -> None:
            time.sleep(0.03)  # noqa: ASYNC251 (a synchronous step: what a stall is)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(blocking, name="blocking")
            nursery.start_soon(trio.sleep, 0, name="quick")
    finally:
        trio.lowlevel.remove_instrument(monitor)
    write_summary(monitor)
    lines = monitor.path.read_text().splitlines()
    assert len(lines) == 5  # the stall, its total, one line per collector generation
    ms, cpu_ms, what = lines[0].split(" ", 2)
    assert float(ms) >= 30
    assert 0 <= float(cpu_ms) < float(ms)  # a sleep takes no CPU
    assert what == "blocking handling X"
    assert lines[1].startswith("total ")
    assert lines[1].endswith("in 1 stalls: blocking handling X")
    assert [line.split(":")[0] for line in lines[2:]] == ["gc gen0", "gc gen1", "gc gen2"]


async def test_every_collection_is_counted_whatever_its_length(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_DIR, str(tmp_path))
    monkeypatch.setenv(ENV_MS, "10000")  # no collection is a stall
    monitor = install_from_env(lambda task: "")
    assert monitor is not None
    try:
        gc.collect(0)
        gc.collect(2)
        gc.collect(2)
    finally:
        trio.lowlevel.remove_instrument(monitor)
    write_summary(monitor)
    assert monitor.gc_count[0] >= 1
    assert monitor.gc_count[2] >= 2
    assert monitor.gc_s[2] > 0
    summary = monitor.path.read_text().splitlines()  # nothing over the threshold: no stall
    assert [x.split(":")[0] for x in summary] == ["gc gen0", "gc gen1", "gc gen2"]
    assert summary[2].startswith(f"gc gen2: {monitor.gc_count[2]} collections, ")


def test_off_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_DIR, raising=False)
    assert install_from_env(lambda task: "") is None
