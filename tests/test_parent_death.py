"""Pool workers die with their parent (no orphans after a SIGKILL of a node or the L1)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

PARENT = """
import concurrent.futures, multiprocessing, os, sys, time
from sequencer_node.system.parent_death import die_with_parent

def noop(*args):
    pass

if __name__ == "__main__":
    init = die_with_parent if sys.argv[1] == "protected" else noop
    pool = concurrent.futures.ProcessPoolExecutor(
        1, mp_context=multiprocessing.get_context("spawn"),
        initializer=init, initargs=(os.getpid(),))
    print(pool.submit(os.getpid).result(), flush=True)
    time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return not state[state.rfind(")") + 2 :].startswith("Z")


def _worker_after_parent_sigkill(tmp_path: Path, mode: str, wait_s: float) -> tuple[int, bool]:
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    parent = subprocess.Popen(
        [sys.executable, str(script), mode],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).parent.parent,
    )
    assert parent.stdout is not None
    worker = int(parent.stdout.readline())
    assert _alive(worker)
    parent.send_signal(signal.SIGKILL)
    parent.wait(timeout=10)
    deadline = time.monotonic() + wait_s
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.05)
    return worker, _alive(worker)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_protected_worker_dies_with_its_parent(tmp_path: Path) -> None:
    _, alive = _worker_after_parent_sigkill(tmp_path, "protected", wait_s=10)
    assert not alive


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_control_unprotected_worker_is_orphaned(tmp_path: Path) -> None:
    """The leak this guards against is real: without the call the worker outlives its parent."""
    worker, alive = _worker_after_parent_sigkill(tmp_path, "control", wait_s=2)
    try:
        assert alive
    finally:
        if _alive(worker):
            os.kill(worker, signal.SIGKILL)
