"""Free TCP ports for the local networks the benchmark and the tests start.

A port is chosen before the process that listens on it starts, so it must stay free in
between. Ports are drawn *below* the kernel's ephemeral range (``ip_local_port_range``): a port
inside it can be taken in that gap by any outgoing connection on the machine (the nodes' own
peer dials, the load generator's HTTP clients), which made a benchmark node die with "address
in use" in CI. Blocks are drawn at random so that concurrent runs rarely meet.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
#: Below this, ports are commonly given to system services.
_LOWEST = 10_000
_DEFAULT_EPHEMERAL = (32_768, 60_999)


def ephemeral_range() -> tuple[int, int]:
    """The kernel's range of ports for outgoing connections (Linux default when unknown)."""
    try:
        low, high = (int(v) for v in _RANGE_FILE.read_text().split())
    except (OSError, ValueError):
        return _DEFAULT_EPHEMERAL
    return low, high


def free_block(size: int, host: str = "127.0.0.1", rng: random.Random | None = None) -> int:
    """The first port of ``size`` consecutive ports, all free now and none ephemeral."""
    if size < 1:
        raise ValueError(f"a block has at least one port, got {size}")
    rng = rng or random.Random()
    low, high = ephemeral_range()
    # Use the free space below the ephemeral range, or above it when that is larger.
    lo, hi = (_LOWEST, low - size) if low - _LOWEST >= 65_535 - high else (high + 1, 65_535 - size)
    if hi <= lo:
        raise RuntimeError(f"no room for {size} ports outside the ephemeral range {low}-{high}")
    for _ in range(200):
        base = rng.randrange(lo, hi)
        if all(is_free(p, host) for p in range(base, base + size)):
            return base
    raise RuntimeError(f"no run of {size} free ports found between {lo} and {hi + size}")


def free_port(host: str = "127.0.0.1") -> int:
    """One free port outside the ephemeral range."""
    return free_block(1, host)


def is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a TCP listener could bind ``host:port`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True
