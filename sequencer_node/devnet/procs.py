"""Starting, identifying and stopping the devnet's child processes.

Children run in their own session (``start_new_session``) so that a Ctrl-C in the terminal
reaches only ``seqctl devnet up``, which then stops them in order (load, nodes, L1). In the
foreground, Linux children also get ``PR_SET_PDEATHSIG`` = SIGTERM: if the supervisor dies
without cleaning up (SIGKILL), its children stop too instead of lingering as orphans.

A pid recorded in ``devnet.json`` is only signalled if the process still has the start time
recorded with it (``/proc/<pid>/stat``), so a recycled pid is never killed by ``down``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sequencer_node.devnet.config import DevnetError
from sequencer_node.system import parent_death

#: How long a child gets between SIGTERM and SIGKILL.
STOP_DEADLINE_S = 15.0


def process_start_time(pid: int) -> int | None:
    """The process start time in clock ticks since boot (Linux), or None if unknown/gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may contain spaces: split after its closing parenthesis
    fields = stat[stat.rfind(")") + 2 :].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def is_running(pid: int, start_time: int | None) -> bool:
    """True if ``pid`` is alive and (when known) is still the process started at ``start_time``."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    if start_time is not None and Path("/proc").is_dir():
        now = process_start_time(pid)
        if now is None or now != start_time:
            return False
        # a zombie (exited, not yet reaped by its parent) counts as stopped
        with contextlib.suppress(OSError):
            state = Path(f"/proc/{pid}/stat").read_text()
            if state[state.rfind(")") + 2 :].startswith("Z"):
                return False
    return True


def _set_pdeathsig() -> None:
    # SIGTERM, not SIGKILL: a devnet child still gets to stop gracefully.
    parent_death.die_with_parent(sig=signal.SIGTERM)


@dataclass
class Child:
    """A started child process and where its output goes."""

    name: str
    popen: subprocess.Popen[bytes] | None
    pid: int
    start_time: int | None
    log: Path

    def alive(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        return is_running(self.pid, self.start_time)

    def exit_code(self) -> int | None:
        return self.popen.poll() if self.popen is not None else None

    def record(self) -> dict[str, object]:
        return {"pid": self.pid, "start_time": self.start_time, "log": str(self.log)}


def spawn(
    name: str,
    argv: Sequence[str],
    log: Path,
    *,
    env: dict[str, str] | None = None,
    die_with_parent: bool = True,
) -> Child:
    """Start ``argv`` with stdout and stderr appended to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    full_env = dict(os.environ)
    full_env.update(env or {})
    full_env.setdefault("PYTHONUNBUFFERED", "1")
    preexec = _set_pdeathsig if die_with_parent and sys.platform.startswith("linux") else None
    with open(log, "ab") as out:
        out.write(f"==> {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(argv)}\n".encode())
        out.flush()
        try:
            p = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=full_env,
                start_new_session=True,
                preexec_fn=preexec,
            )
        except OSError as e:
            raise DevnetError(f"cannot start {name} ({argv[0]}): {e.strerror}") from None
    return Child(name, p, p.pid, process_start_time(p.pid), log)


def adopt(name: str, record: dict[str, object]) -> Child:
    """A child recorded in ``devnet.json`` by an earlier ``up``."""
    pid = record.get("pid")
    st = record.get("start_time")
    return Child(
        name,
        None,
        int(pid) if isinstance(pid, int) else -1,
        int(st) if isinstance(st, int) else None,
        Path(str(record.get("log", ""))),
    )


def _signal(child: Child, sig: int) -> None:
    if not child.alive():
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(child.pid, sig)


def stop(children: Sequence[Child], deadline_s: float = STOP_DEADLINE_S) -> dict[str, str]:
    """SIGTERM ``children``, wait up to ``deadline_s``, SIGKILL what is left; reap them all.

    Returns how each one ended (``exit 0``, ``killed``, ...). A second Ctrl-C while waiting
    skips to SIGKILL.
    """
    outcome: dict[str, str] = {}
    for c in children:
        _signal(c, signal.SIGTERM)
    end = time.monotonic() + deadline_s
    try:
        while time.monotonic() < end and any(c.alive() for c in children):
            time.sleep(0.05)
    except KeyboardInterrupt:
        pass
    for c in children:
        if c.alive():
            _signal(c, signal.SIGKILL)
            outcome[c.name] = f"killed after {deadline_s:.0f}s"
    for c in children:
        if c.popen is not None:
            try:
                code = c.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                outcome[c.name] = "did not exit after SIGKILL"
                continue
            outcome.setdefault(
                c.name, f"exit {code}" if code >= 0 else f"ended by {signal.Signals(-code).name}"
            )
        else:
            end2 = time.monotonic() + 5
            while c.alive() and time.monotonic() < end2:
                time.sleep(0.05)
            outcome.setdefault(c.name, "stopped" if not c.alive() else "still running")
    return outcome


def check_ports_free(host: str, ports: Sequence[tuple[str, int]]) -> None:
    """Raise DevnetError naming every port in use."""
    busy: list[str] = []
    for what, port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, port))
            except OSError:
                busy.append(f"{port} ({what})")
    if busy:
        raise DevnetError(
            f"ports already in use on {host}: {', '.join(busy)}; stop what uses them (another "
            f"devnet? `seqctl devnet down --dir DIR`) or choose other base ports with "
            f"--l1-port/--rpc-port/--p2p-port"
        )


def tail(path: Path, lines: int = 20) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(data.splitlines()[-lines:])
