"""Reproduce a whole devnet resumed after an overload (issue 13: a resumed node stopped answering).

Starts a 4-node network the way ``scripts/bench`` does (:class:`BenchNet`: 250 ms blocks,
epoch length 400, 1 s L1 slots, 256 load accounts), drives it past saturation with ``seqctl
load`` (``--rate`` tx/s offered), optionally SIGKILLs node-0 ``--lag-after`` seconds into the
load so that it is behind when the network stops (a node that lags under overload), stops the
network under load (SIGTERM, 10 s deadline: ``procs.stop``), then starts a resumed Devnet on
the same directory with new ports, optionally under load again (``--resume-rate``), and polls
every node's ``/health`` and ``/v1/status`` once a second for ``--watch`` seconds.

Prints one line per poll (certified height, /health status and milliseconds per node) and a
summary: journaled transactions per node at the stop, restore times from the node logs, time
to the first block after the resume, the slowest /health answer and the timeouts per node.
The directory is kept (``--root``); set ``SEQNET_STALL_DIR`` to also get each node's
event-loop stalls (:mod:`sequencer_node.shell.stalls`). Run one at a time, under ``nice``:
``nice -n 10 python scripts/resume_after_overload.py --root /tmp/resume --lag-after 15``.
"""

from __future__ import annotations

import argparse
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import trio

from sequencer_node.devnet.bench import PROFILES, BenchNet, fund_extra_accounts
from sequencer_node.devnet.config import DevnetConfig
from sequencer_node.devnet.ports import free_block
from sequencer_node.devnet.procs import stop
from sequencer_node.devnet.runner import Devnet

T0 = time.time()
N = 4
ACCOUNTS = 256


def say(s: str) -> None:
    print(f"[{time.time() - T0:7.1f}] {s}", flush=True)


def load(urls: list[str], rate: int, seconds: float) -> subprocess.Popen[bytes]:
    seqctl = Path(sys.executable).parent / "seqctl"
    argv = [str(seqctl), "load", "--node-url", ",".join(urls), "--rate", str(rate),
            "--duration", f"{seconds:g}", "--accounts", str(ACCOUNTS), "--drain", "0",
            "--json", "--quiet"]  # fmt: skip
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def _wait_in_thread(p: subprocess.Popen[bytes]) -> None:
    """Wait for the load generator ``p`` to exit without blocking the event loop."""
    await trio.to_thread.run_sync(p.wait)


async def poll(urls: list[str], seconds: float, rows: list[dict[str, Any]]) -> None:
    """One row a second: per node (height or error, /health status or error, ms)."""
    async with httpx.AsyncClient(timeout=3.0) as http:
        end = time.time() + seconds
        while time.time() < end:
            row: dict[str, Any] = {"t": time.time()}
            for i, u in enumerate(urls):
                t = time.perf_counter()
                try:
                    health: object = (await http.get(u + "/health")).status_code
                except httpx.HTTPError as e:
                    health = type(e).__name__
                ms = round((time.perf_counter() - t) * 1000)
                try:
                    height: object = (await http.get(u + "/v1/status")).json()["heads"][
                        "certified"
                    ]["height"]
                except (httpx.HTTPError, ValueError, KeyError) as e:
                    height = type(e).__name__
                row[f"node-{i}"] = (height, health, ms)
            rows.append(row)
            say("  ".join(f"{k} {v}" for k, v in row.items() if k != "t"))
            await trio.sleep(1.0)


def journal_sizes(d: Path) -> list[int]:
    out = []
    for i in range(N):
        with sqlite3.connect(d / "nodes" / f"node-{i}" / "node.sqlite3") as c:
            out.append(int(c.execute("SELECT COUNT(*) FROM journal").fetchone()[0]))
    return out


async def overload(net: BenchNet, args: argparse.Namespace) -> None:
    await net.start()
    await fund_extra_accounts(net.urls[0], ACCOUNTS)
    say(f"overload: {args.rate} tx/s for {args.seconds:g} s")
    p = load(net.urls, args.rate, args.seconds + 60)
    try:
        if args.lag_after:
            await trio.sleep(args.lag_after)
            net.kill(0)
            say("node-0 killed (it will be behind at the resume)")
        await trio.sleep(args.seconds - args.lag_after)
    finally:
        p.kill()
        p.wait()
        t = time.time()
        outcome = stop([c for c in net.devnet.children() if c.alive()], deadline_s=10.0)
        say(f"stopped under load in {time.time() - t:.1f} s: {outcome}")


async def resume(d: Path, args: argparse.Namespace) -> tuple[float, list[dict[str, Any]]]:
    prof = PROFILES["full"]
    base = free_block(1 + 2 * N)
    cfg = DevnetConfig(
        directory=d, nodes=N, stakes=(10,) * N, load=False,
        block_time_ms=prof.block_time_ms, idle_block_ms=prof.idle_block_ms,
        timeout_base_ms=prof.timeout_base_ms, epoch_length=400, slot_time=1,
        l1_port=base, rpc_port=base + 1, p2p_port=base + 1 + N,
    )  # fmt: skip
    dev = Devnet(cfg, say, detach=False)
    urls = [cfg.rpc_url(i) for i in range(N)]
    rows: list[dict[str, Any]] = []
    t = time.time()
    first = -1.0
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(poll, urls, args.watch, rows)
            await dev.start()
            first = time.time() - t
            say(f"resumed: first certified block {first:.1f} s after the start")
            if args.resume_rate:
                p = load(urls, args.resume_rate, args.watch)
                nursery.start_soon(_wait_in_thread, p)
    finally:
        stop(dev.children(), deadline_s=10.0)
    return first, rows


def summary(d: Path, journals: list[int], first: float, rows: list[dict[str, Any]]) -> None:
    print(f"\ndirectory kept: {d}")
    print(f"journaled transactions at the stop: {journals}")
    print(f"first certified block after the resume: {first:.1f} s")
    for i in range(N):
        name = f"node-{i}"
        log = (d / "logs" / f"{name}.log").read_text(errors="replace")
        restored = re.findall(r"restored (\d+) certified blocks in ([\d.]+) s", log)
        answered = [r[name][2] for r in rows if r[name][1] == 200]
        failed = sum(1 for r in rows if r[name][1] != 200 and r[name][1] != "ConnectError")
        last = restored[-1] if restored else "-"
        print(f"{name}: restored {last} (blocks, s); /health max "
              f"{max(answered, default=0)} ms, {failed} polls unanswered")  # fmt: skip


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, required=True, help="where the network's directory goes")
    ap.add_argument("--rate", type=int, default=2400, help="offered tx/s before the stop")
    ap.add_argument("--seconds", type=float, default=60.0, help="load before the stop")
    ap.add_argument(
        "--lag-after",
        type=float,
        default=0.0,
        help="SIGKILL node-0 this many seconds into the load (0: no)",
    )
    ap.add_argument("--resume-rate", type=int, default=2400, help="tx/s after the resume (0: none)")
    ap.add_argument("--watch", type=float, default=120.0, help="seconds to poll after the resume")
    args = ap.parse_args()
    args.root.mkdir(parents=True, exist_ok=True)
    net = BenchNet(args.root, N, PROFILES["full"], say)
    d = net.cfg.directory
    say(f"network in {d}")
    await overload(net, args)
    journals = journal_sizes(d)
    first, rows = await resume(d, args)
    summary(d, journals, first, rows)


if __name__ == "__main__":
    trio.run(main)
