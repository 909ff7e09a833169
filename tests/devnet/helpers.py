"""Helpers of the devnet tests: free port ranges, the project's commands, process checks."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sequencer_node.devnet.ports import free_block

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_bases(nodes: int) -> tuple[int, int, int]:
    """(l1 port, rpc base, p2p base): a block of 100 free ports (tests put a DA port at +90)."""
    if nodes > 40:
        raise ValueError("the block holds at most 40 nodes")
    base = free_block(100)
    return base, base + 10, base + 50


def seqctl() -> list[str]:
    exe = BIN / "seqctl"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "sequencer_node.cli"]


def devnet_command() -> list[str]:
    """The README's command: ./scripts/devnet when the project's environment is the one running
    the tests (its stamp matches, so the script does not reinstall), else ``seqctl devnet up``."""
    venv = Path(sys.prefix)
    stamp = venv / ".seqnet-installed"
    want = subprocess.run(
        ["sha256sum", str(ROOT / "pyproject.toml")], capture_output=True, text=True, check=True
    ).stdout.split()[0]
    if stamp.exists() and stamp.read_text().strip() == want:
        return [str(ROOT / "scripts" / "devnet")]
    return [*seqctl(), "devnet", "up"]


def env_for_scripts() -> dict[str, str]:
    env = dict(os.environ)
    env["SEQ_VENV"] = sys.prefix
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def processes_mentioning(text: str) -> list[tuple[int, str]]:
    """Live processes whose command line contains ``text`` (Linux /proc)."""
    out: list[tuple[int, str]] = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (p / "stat").read_text()
        except OSError:
            continue
        if state[state.rfind(")") + 2 :].startswith("Z"):
            continue
        if text in cmd and int(p.name) != os.getpid():
            out.append((int(p.name), cmd))
    return out


def kill_mentioning(text: str) -> None:
    """Teardown: SIGKILL every process started for one test directory."""
    for pid, _ in processes_mentioning(text):
        with contextlib.suppress(OSError):
            os.kill(pid, 9)


def wait_for(what: str, check: Callable[[], Any], deadline_s: float, poll: float = 1.0) -> Any:
    end = time.monotonic() + deadline_s
    last: Any = None
    while time.monotonic() < end:
        last = check()
        if last:
            return last
        time.sleep(poll)
    raise AssertionError(f"timed out after {deadline_s:.0f}s waiting for {what}; last: {last!r}")


def status_json(directory: Path) -> dict[str, Any] | None:
    r = subprocess.run(
        [*seqctl(), "devnet", "status", "--json", "--dir", str(directory)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if r.returncode != 0:
        return None
    data: dict[str, Any] = json.loads(r.stdout)
    return data


def certified_and_batched(directory: Path) -> dict[str, Any] | None:
    st = status_json(directory)
    if st is None:
        return None
    heights = [
        ((n.get("heads") or {}).get("certified") or {}).get("height") or 0 for n in st["nodes"]
    ]
    if heights and min(heights) >= 1 and (st["l1"]["batches"] or 0) >= 1:
        return st
    return None
