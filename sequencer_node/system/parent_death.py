"""Make a helper process die with its parent (Linux ``PR_SET_PDEATHSIG``).

A worker of a ``ProcessPoolExecutor`` blocks on its call queue, and a spawned worker holds both
ends of that queue's pipe, so it never sees EOF when its parent is SIGKILLed: it would sleep
forever as an orphan. Asking the kernel to signal it when the parent dies closes that leak.
Elsewhere than Linux this is a no-op.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int | None = None, sig: int = signal.SIGKILL) -> None:
    """Deliver ``sig`` to this process when its parent dies.

    ``parent_pid`` closes the race where the parent died before the call: if it is given and
    the current parent differs, the process exits at once.
    """
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)
