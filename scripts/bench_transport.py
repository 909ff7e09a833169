#!/usr/bin/env python3
"""Throughput of the encrypted p2p transport over loopback TCP, two processes.

The sender process runs the handshake and pushes N messages through a SecureConnection
(ChaCha20-Poly1305 + framing), either one ``send_all`` per message or coalesced in batches
(``send_encoded`` of up to 64 messages, as the peer manager's writer does). The receiver
(this process) decrypts and strictly decodes every message. Reports the median of a few runs
to ``bench-results/transport.txt``.

Usage: .venv/bin/python scripts/bench_transport.py [--runs 3] [--messages 40000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sequencer_node.shell.transport import secure_accept, secure_connect  # noqa: E402
from sequencer_node.wire.codec import encode  # noqa: E402
from sequencer_node.wire.crypto import SigningKey  # noqa: E402
from sequencer_node.wire.messages import L1Call, Vote  # noqa: E402

CHAIN = 7
SERVER, CLIENT = SigningKey.deterministic("bench-server"), SigningKey.deterministic("bench-client")
KEYS = {SERVER.public_key, CLIENT.public_key}
COALESCE = 64


def payload(kind: str) -> object:
    if kind == "vote":  # ~150 B: a consensus vote
        return Vote(b"\x11" * 32, 1, 1, 0, CLIENT.public_key, b"\x22" * 64)
    return L1Call("bench", b"\x5a" * 900, CLIENT.public_key, 1, b"\x33" * 64)  # ~1 KiB


async def sender(port: int, n: int, kind: str, coalesce: int) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    conn = await secure_connect(
        stream, identity=CLIENT, chain_id=CHAIN, is_allowed=KEYS.__contains__
    )
    raw = encode(payload(kind))
    item = (raw, True)
    for start in range(0, n, coalesce):
        await conn.send_encoded([item] * min(coalesce, n - start))
    await conn.aclose()


async def one_run(n: int, kind: str, coalesce: int) -> tuple[float, int]:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    # Started before accept() so the child can connect; Popen itself does not block on it.
    proc = subprocess.Popen(  # noqa: ASYNC220
        [sys.executable, __file__, "--sender", str(port), str(n), kind, str(coalesce)]
    )
    stream = await listeners[0].accept()
    conn = await secure_accept(
        stream, identity=SERVER, chain_id=CHAIN, is_allowed=KEYS.__contains__
    )
    t0 = time.perf_counter()
    for _ in range(n):
        await conn.receive()
    elapsed = time.perf_counter() - t0
    wire_bytes = conn.statistics().bytes_received
    await conn.aclose()
    await listeners[0].aclose()
    await trio.to_thread.run_sync(proc.wait, 60)
    return elapsed, wire_bytes


async def main(runs: int, n: int) -> str:
    lines = [
        "# Encrypted p2p transport over loopback TCP (2 processes; receiver decrypts + strictly",
        f"# decodes every message). median of {runs} runs, {n} messages per run.",
        f"# python {sys.version.split()[0]}, trio {trio.__version__}, "
        f"{os.cpu_count()} cores, load average at start {os.getloadavg()[0]:.2f} "
        "(the box is shared: compare rows of one run, not runs)",
        f"{'payload':<8} {'writes':<16} {'msgs/s':>10} {'MB/s':>8} {'bytes/msg':>10}",
    ]
    for kind in ("vote", "1KiB"):
        for coalesce, label in ((1, "one per message"), (COALESCE, f"coalesced x{COALESCE}")):
            rates, mbs, per = [], [], 0
            for _ in range(runs):
                elapsed, wire = await one_run(n, kind, coalesce)
                rates.append(n / elapsed)
                mbs.append(wire / elapsed / 1e6)
                per = wire // n
            line = (
                f"{kind:<8} {label:<16} {statistics.median(rates):>10,.0f} "
                f"{statistics.median(mbs):>8.1f} {per:>10}"
            )
            print(line, flush=True)
            lines.append(line)
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--sender":
        port, n, kind, coalesce = sys.argv[2:6]
        trio.run(sender, int(port), int(n), kind, int(coalesce))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--messages", type=int, default=40_000)
    args = parser.parse_args()
    text = trio.run(main, args.runs, args.messages)
    out = ROOT / "bench-results" / "transport.txt"
    out.parent.mkdir(exist_ok=True)
    out.write_text(text)
    print(f"wrote {out}")
