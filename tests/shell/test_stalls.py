"""The stall diagnosis (issue 13): a task step longer than the threshold is recorded with the
task and what the node was doing; shorter ones are not; off unless the variable is set."""

from __future__ import annotations

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
    assert len(lines) == 2
    ms, cpu_ms, what = lines[0].split(" ", 2)
    assert float(ms) >= 30
    assert 0 <= float(cpu_ms) < float(ms)  # a sleep takes no CPU
    assert what == "blocking handling X"
    assert lines[1].startswith("total ")
    assert lines[1].endswith("in 1 stalls: blocking handling X")


def test_off_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_DIR, raising=False)
    assert install_from_env(lambda task: "") is None
