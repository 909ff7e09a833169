"""What the network benchmark (``scripts/bench``) reads from the processes it measures.

* :class:`Sampler`: every ``interval`` seconds, the CPU time and resident memory of each
  process (``/proc/<pid>/stat`` and ``status``; CPU with the process's live descendants, a
  node's batch workers) and the latency of each node's ``/health``
  (an answer from the node's event loop: its stall under load), stamped with the wall clock
  so that a window (such as a load step's steady state) can be cut out afterwards;
* :func:`verify_rate`: Ed25519 verifications per second on one core, with the primitive the
  nodes use (the signature cache bypassed), beside OpenSSL's;
* :func:`cosign_cost`: a co-signer's rebuild of a blob batch, computing commitments against
  checking the proposer's proofs;
* :func:`machine`: the machine and the versions, recorded with every result.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import trio

from sequencer_node.wire import crypto

TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def proc_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of ``pid`` (None once it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def proc_descendants(pid: int) -> list[int]:
    """The live descendants of ``pid`` (children of any of its threads, recursively: a node's
    batch worker processes, started by the thread that submitted the first job)."""
    out: list[int] = []
    todo = [pid]
    while todo and len(out) < 256:  # bounded: a node has a handful
        parent = todo.pop()
        try:
            tasks = list(Path(f"/proc/{parent}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                kids = [int(x) for x in (task / "children").read_text().split()]
            except (OSError, ValueError):
                continue
            out.extend(kids)
            todo.extend(kids)
    return out


def proc_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


@dataclass
class Sample:
    at: float
    cpu_s: dict[str, float]
    rss_mb: dict[str, float]
    #: CPU seconds of each process's live descendants (a node's batch workers: they do the
    #: node's compression and KZG work, so "a node's CPU" is the process and these)
    child_cpu_s: dict[str, float] = field(default_factory=dict)
    #: resident memory of those descendants, summed
    child_rss_mb: dict[str, float] = field(default_factory=dict)


@dataclass
class Sampler:
    """Samples processes (``pids``: name -> pid) and nodes' ``/health`` (``health``: name ->
    RPC URL) until cancelled. Bounded: at most ``max_samples`` of each kind are kept."""

    pids: dict[str, int]
    health: dict[str, str]
    interval: float = 0.25
    max_samples: int = 100_000
    samples: list[Sample] = field(default_factory=list)
    #: (wall time, node, seconds) of each /health answer (timeouts count as the timeout)
    health_s: list[tuple[float, str, float]] = field(default_factory=list)

    def sample_now(self) -> None:
        cpu: dict[str, float] = {}
        rss: dict[str, float] = {}
        child: dict[str, float] = {}
        child_rss: dict[str, float] = {}
        for name, pid in self.pids.items():
            c, r = proc_cpu_s(pid), proc_rss_mb(pid)
            if c is not None:
                cpu[name] = c
                kids = proc_descendants(pid)
                child[name] = sum(proc_cpu_s(k) or 0.0 for k in kids)
                child_rss[name] = sum(proc_rss_mb(k) or 0.0 for k in kids)
            if r is not None:
                rss[name] = r
        if len(self.samples) < self.max_samples:
            self.samples.append(Sample(time.time(), cpu, rss, child, child_rss))

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=2.0) as http, trio.open_nursery() as nursery:
            for name, url in self.health.items():
                nursery.start_soon(self._poll_health, http, name, url)
            while True:
                self.sample_now()
                await trio.sleep(self.interval)

    async def _poll_health(self, http: httpx.AsyncClient, name: str, url: str) -> None:
        while True:
            t0 = time.perf_counter()
            # a timeout is recorded as its duration: the node did not answer
            with contextlib.suppress(httpx.HTTPError):
                await http.get(url + "/health")
            if len(self.health_s) < self.max_samples:
                self.health_s.append((time.time(), name, time.perf_counter() - t0))
            await trio.sleep(self.interval)

    def window(self, t0: float, t1: float) -> dict[str, Any]:
        """CPU (cores: each process with its descendants; ``child_cores``: the descendants'
        part), peak RSS of each process (``child_rss_mb``: of its descendants, summed), and
        /health percentiles, in [t0, t1]."""
        inside = [s for s in self.samples if t0 <= s.at <= t1]
        cores: dict[str, float] = {}
        child_cores: dict[str, float] = {}
        if len(inside) >= 2:
            a, b = inside[0], inside[-1]
            for name in b.cpu_s:
                if name in a.cpu_s and b.at > a.at:
                    # a worker that died (and was replaced) takes its CPU time with it: never
                    # below zero, so at worst the window counts less than was spent
                    span = b.at - a.at
                    kids = max(0.0, b.child_cpu_s.get(name, 0.0) - a.child_cpu_s.get(name, 0.0))
                    child_cores[name] = kids / span
                    cores[name] = (b.cpu_s[name] - a.cpu_s[name]) / span + child_cores[name]
        rss = {n: max(s.rss_mb.get(n, 0.0) for s in inside) for n in self.pids} if inside else {}
        child_rss = (
            {n: max(s.child_rss_mb.get(n, 0.0) for s in inside) for n in self.pids}
            if inside
            else {}
        )
        lat = sorted(x for t, _, x in self.health_s if t0 <= t <= t1)
        return {
            "cores": cores,
            "child_cores": child_cores,
            "rss_mb": rss,
            "child_rss_mb": child_rss,
            "health_ms": {
                "samples": len(lat),
                "p50": _ms(_pct(lat, 50)),
                "p99": _ms(_pct(lat, 99)),
                "max": _ms(lat[-1] if lat else None),
            },
        }


def _pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    return values[min(len(values) - 1, max(0, round(p / 100 * len(values) + 0.5) - 1))]


def _ms(x: float | None) -> float | None:
    return None if x is None else round(x * 1000, 2)


def verify_rate(n: int = 2000, repeats: int = 5) -> dict[str, Any]:
    """Ed25519 verifications per second on this core: the nodes' primitive
    (:func:`sequencer_node.wire.crypto.verify_uncached`), median of ``repeats`` runs of ``n``
    distinct signatures."""
    key = crypto.SigningKey.deterministic("bench-verify")
    msgs = [hashlib.sha256(i.to_bytes(4, "big")).digest() * 5 for i in range(n)]
    sigs = [key.sign(m) for m in msgs]
    checks: dict[str, Callable[[bytes, bytes, bytes], bool]] = {
        "nodes": crypto.verify_uncached,
        "openssl": crypto.verify_openssl,
    }
    rates: dict[str, list[float]] = {k: [] for k in checks}
    for _ in range(repeats):  # alternated, so both see the same machine
        for name, check in checks.items():
            t0 = time.perf_counter()
            for m, s in zip(msgs, sigs, strict=True):
                if not check(key.public_key, s, m):
                    raise AssertionError("a good signature failed to verify")
            rates[name].append(n / (time.perf_counter() - t0))
    nodes, openssl = statistics.median(rates["nodes"]), statistics.median(rates["openssl"])
    return {
        "library": crypto.VERIFY_LIBRARY,
        "per_s_per_core": round(nodes),
        "runs": [round(r) for r in rates["nodes"]],
        "openssl_per_s_per_core": round(openssl),
        "speedup_over_openssl": round(nodes / openssl, 2),
    }


def cosign_cost(blocks: int = 40, txs_per_block: int = 250, repeats: int = 3) -> dict[str, Any]:
    """A co-signer's rebuild of a blob batch, side by side: computing the commitments and
    proofs (what co-signers did) against checking the proposer's proofs (what they do now);
    medians of ``repeats``, in this process."""
    from sequencer_node.batcher.kzg_worker import check, prepare
    from sequencer_node.batching.sample import sample_chain
    from sequencer_node.wire.codec import encode
    from sequencer_node.wire.l1calls import MAX_CALLDATA

    _, chain = sample_chain(accounts=500, blocks=blocks, txs_per_block=txs_per_block)
    encoded = [encode(b) for b in chain]
    compute, verify = [], []
    mine = prepare(encoded, 3, "blobs", MAX_CALLDATA, False)  # also loads the trusted setup
    for _ in range(repeats):
        t0 = time.perf_counter()
        prepare(encoded, 3, "blobs", MAX_CALLDATA, False)
        compute.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        check(encoded, mine.draft.payload, 3, "blobs", MAX_CALLDATA, mine.commitments, mine.proofs)
        verify.append(time.perf_counter() - t0)
    blobs = len(mine.commitments)
    c, v = statistics.median(compute), statistics.median(verify)
    return {
        "txs": blocks * txs_per_block,
        "blobs": blobs,
        "compute_commitments_s": round(c, 3),
        "check_proofs_s": round(v, 3),
        "compute_ms_per_blob": round(c * 1000 / max(1, blobs), 1),
        "check_ms_per_blob": round(v * 1000 / max(1, blobs), 1),
        "speedup": round(c / v, 2) if v else None,
    }


def machine(root: Path) -> dict[str, Any]:
    """CPU, cores, load average, OS, Python, the packages that matter, the git commit."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions: dict[str, str | None] = {}
    for pkg in ("cryptography", "pynacl", "msgpack", "trio", "hypercorn", "starlette", "httpx",
                "ckzg"):  # fmt: skip
        try:
            versions[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            versions[pkg] = None
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=False, timeout=10,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "os": platform.platform(),
        "python": platform.python_version(),
        "packages": versions,
        "commit": commit,
    }
