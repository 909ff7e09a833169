"""Where a node's CPU goes under load: ``scripts/bench --profile-nodes`` (docs/benchmarks.md).

A network (4 nodes unless ``--nodes`` says otherwise) runs one load step at a fixed rate
while ``py-spy record`` samples each of its first :data:`SAMPLED` nodes with their batch
worker processes (on-CPU samples only, ``--format raw``: one collapsed stack per line with its
count). :func:`categorize` attributes
each sample to the first activity that matches walking from the innermost frame outwards (so
a signature check called by the core counts as signature verification, not as the core), and
the table gives each activity's share and its CPU microseconds per certified transaction per node.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import trio

from sequencer_node.devnet.bench import PROFILES, BenchNet, load_step, with_network, work_dir
from sequencer_node.devnet.bench_probe import Sampler

#: (activity, substrings of a frame "function (file:line)") in the order they are tried on
#: each frame; the first activity with a match on the innermost matching frame wins.
ACTIVITIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("signature verification (libsodium / OpenSSL)",
     ("verify_uncached", "verify_openssl", "crypto_sign_open", "ed25519")),
    ("hashing (message ids, tx and block hashes)", ("hashlib", "message_id", "tx_hash",
                                                     "block_hash")),
    ("msgpack encode and strict decode (wire codec)", ("wire/codec.py:", "msgpack")),
    ("p2p transport (ChaCha20-Poly1305, framing)", ("shell/transport.py", "shell/framing.py",
                                                   "cryptography/hazmat")),
    ("p2p peer manager, gossip", ("shell/peers.py", "shell/gossip.py", "shell/scoring.py")),
    ("HTTP server (hypercorn, h11, starlette, JSON)", ("hypercorn", "h11", "starlette", "json/",
                                                      "shell/rpc.py", "httpx")),
    ("store (SQLite)", ("shell/store.py", "sqlite")),
    ("L1 follower and batcher", ("shell/l1_watcher.py", "batcher/", "clients/l1.py")),
    ("core: consensus, mempool, execution", ("sequencer_node/core/",)),
    ("node service (inputs, effects, views, metrics)", ("shell/node_service.py",
                                                       "shell/api_views.py", "prometheus")),
    ("Trio scheduling, channels, cancel scopes, I/O wait", ("trio/", "selectors", "socket")),
)  # fmt: skip
OTHER = "other"
#: A node's batch worker processes (``sequencer_node/batcher/kzg_worker.py``: block decoding,
#: batch encoding and compression, KZG), sampled with the node (``py-spy --subprocesses``):
#: one row whatever they run, since none of it is on the node's event loop.
WORKER = "batch worker process (decode, compress, KZG)"
WORKER_FRAME = "_process_worker (concurrent/futures/process.py"
#: Innermost frames of threads that wait (py-spy's idle detection misses some here): their
#: samples are not CPU and are left out.
IDLE_FRAMES = (
    "WorkerThread._work (trio/_core/_thread_cache.py",
    "Condition.wait (threading.py",
    "Selector.select (selectors.py",  # e.g. _PollLikeSelector.select: a thread in poll()
    "EpollIOManager.get_events (trio/_core/_io_epoll.py",  # Trio's loop in epoll_wait
    "Event.wait (threading.py",
    # a batch worker (or the node's side of its pool) blocked reading its pipe, and the
    # multiprocessing resource tracker blocked reading its own
    "Connection._recv (multiprocessing/connection.py",
    "main (multiprocessing/resource_tracker.py",
)
IDLE = "idle (a waiting thread)"
#: py-spy starts this long after the load process (its start-up and signing).
PROFILE_DELAY_S = 2.5
#: Nodes sampled at most: py-spy on every node of a 16-node network would take a good part of
#: the cores it measures; the first four stand for the rest (the leader rotates over all).
SAMPLED = 4


def _stacks(raw: str) -> Iterator[tuple[list[str], int, bool]]:
    """(frames outermost first, sample count, idle) of each line of a py-spy raw file."""
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            frames = stack.split(";")
            yield frames, int(count), any(f in frames[-1] for f in IDLE_FRAMES)


def categorize(raw: str) -> Counter[str]:
    """Samples per activity of a py-spy ``--format raw`` file (``frame;frame;... count``)."""
    out: Counter[str] = Counter()
    for frames, count, idle in _stacks(raw):
        out[IDLE if idle else _activity(frames)] += count
    return out


def innermost(raw: str) -> Counter[str]:
    """Samples per innermost frame (what was running)."""
    out: Counter[str] = Counter()
    for frames, count, _ in _stacks(raw):
        out[frames[-1]] += count
    return out


def innermost_own(raw: str) -> Counter[str]:
    """Busy samples per innermost frame of the project's own code (who caused the work: the
    Trio or socket frame under it says only what ran)."""
    out: Counter[str] = Counter()
    for frames, count, idle in _stacks(raw):
        if not idle:
            own = next((f for f in reversed(frames) if "sequencer_node/" in f), "(no own frame)")
            out[own] += count
    return out


def _activity(frames: list[str]) -> str:
    if any(WORKER_FRAME in f for f in frames):
        return WORKER
    for frame in reversed(frames):
        for name, needles in ACTIVITIES:
            if any(n in frame for n in needles):
                return name
    return OTHER


async def profile_nodes(
    root: Path, rate: float, seconds: float, out_dir: Path, say: Any, nodes: int = 4
) -> dict[str, Any]:
    """One step at ``rate`` on ``nodes`` nodes with py-spy on the first :data:`SAMPLED`."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    prof = PROFILES["sweep"]

    async def body(net: BenchNet, sampler: Sampler) -> dict[str, Any]:
        sampled = min(net.n, SAMPLED)
        raws = [root / f"node-{i}.pyspy.txt" for i in range(sampled)]
        async with trio.open_nursery() as nursery:
            for i, pid in enumerate(net.pids()[f"node-{i}"] for i in range(sampled)):
                argv = [spy, "record", "-f", "raw", "-r", "100", "-d", f"{seconds - 3:g}",
                        "--subprocesses", "-o", str(raws[i]), "-p", str(pid)]  # fmt: skip
                nursery.start_soon(_run_quiet, argv)
            if rate > 0:
                step = await load_step(net, sampler, rate, _with_step(prof, seconds), wait_l1=False)
            else:  # idle: what a node does with no transactions
                step = await _idle_step(sampler, seconds)
        return {"step": step, "raw_files": [str(p) for p in raws], "nodes": net.n}

    return await with_network(root, nodes, prof, say, body)


def activity_table(doc: dict[str, Any]) -> dict[str, Any]:
    """The samples of every node's profile by activity, with shares and us/tx/node."""
    samples: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for path in doc["raw_files"]:
        text = Path(path).read_text()
        samples += categorize(text)
        leaves += innermost(text)
        own += innermost_own(text)
    idle = samples.pop(IDLE, 0)
    total = sum(samples.values()) or 1
    us_tx = doc["step"]["cpu_us_per_tx_per_node"] or 0.0
    table = [
        {
            "activity": name,
            "share": round(n / total, 3),
            "us_per_tx_per_node": round(us_tx * n / total),
        }
        for name, n in samples.most_common()
    ]
    busy = [(f, n) for f, n in leaves.most_common() if not any(i in f for i in IDLE_FRAMES)]
    top = [{"frame": f, "share": round(n / total, 4)} for f, n in busy[:40]]
    top_own = [{"frame": f, "share": round(n / total, 4)} for f, n in own.most_common(40)]
    return {"step": doc["step"], "nodes": doc["nodes"], "sampled": len(doc["raw_files"]),
            "samples": total, "idle_samples": idle, "activities": table,
            "top_frames": top, "top_own_frames": top_own}  # fmt: skip


async def _idle_step(sampler: Sampler, seconds: float) -> dict[str, Any]:
    t0 = time.time()
    await trio.sleep(seconds)
    cores = sampler.window(t0 + PROFILE_DELAY_S, time.time())["cores"]
    nodes = [v for k, v in cores.items() if k.startswith("node-")]
    return {"certified_tx_s": 0.0, "cpu_us_per_tx_per_node": None,
            "node_cores": round(sum(nodes), 4), "nodes": len(nodes)}  # fmt: skip


def _with_step(prof: Any, seconds: float) -> Any:
    import dataclasses

    return dataclasses.replace(prof, step_s=seconds)


async def _run_quiet(argv: list[str]) -> None:
    await trio.sleep(PROFILE_DELAY_S)  # past the load generator's start and signing
    await trio.run_process(argv, capture_stdout=True, capture_stderr=True, check=False)


def markdown(doc: dict[str, Any]) -> str:
    step = doc["step"]
    if doc["rate"] <= 0:
        return _idle_markdown(doc)
    lines = [
        f"Profile of {_nodes(doc)} under {doc['rate']:g} tx/s offered "
        f"({step['certified_tx_s']:.0f} certified tx/s, {step['cpu_us_per_tx_per_node']} us of "
        f"CPU per certified tx per node; py-spy, {doc['samples']:,} busy samples over "
        f"{doc['sampled']} nodes, {doc['idle_samples']:,} samples of waiting threads left out):",
        "",
        "| activity | us/tx/node | share |",
        "|---|---|---|",
    ]
    for a in doc["activities"]:
        lines.append(f"| {a['activity']} | {a['us_per_tx_per_node']} | {a['share'] * 100:.0f} % |")
    return "\n".join(lines) + "\n"


def _nodes(doc: dict[str, Any]) -> str:
    n, sampled = doc["nodes"], doc["sampled"]
    return f"the {n} nodes" if n == sampled else f"{n} nodes ({sampled} of them sampled)"


def _idle_markdown(doc: dict[str, Any]) -> str:
    cores, n = doc["step"]["node_cores"], doc["nodes"]
    lines = [
        f"Profile of {n} idle nodes ({cores / n * 100:.1f} % of a core each; py-spy, "
        f"{doc['samples']:,} busy samples, {doc['idle_samples']:,} of waiting threads left out):",
        "",
        "| activity | % of a core per node | share |",
        "|---|---|---|",
    ]
    for a in doc["activities"]:
        lines.append(f"| {a['activity']} | {cores / n * a['share'] * 100:.2f} | "
                     f"{a['share'] * 100:.0f} % |")  # fmt: skip
    return "\n".join(lines) + "\n"


def run(rate: float, seconds: float, out_dir: Path, say: Any, nodes: int = 4) -> dict[str, Any]:
    """Profile ``nodes`` nodes at ``rate`` (0: idle) and write ``profile[-idle][-N].{json,md}``
    (``-N`` only for another size than 4, so the 4-node profiles keep their names)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with work_dir("seqnet-profile-", say) as tmp:
        raw = trio.run(profile_nodes, tmp, rate, seconds, out_dir, say, nodes)
        doc = {"rate": rate, **activity_table(raw)}
    name = ("profile-idle" if rate <= 0 else "profile") + ("" if nodes == 4 else f"-{nodes}")
    (out_dir / f"{name}.json").write_text(json.dumps(doc, indent=1) + "\n")
    (out_dir / f"{name}.md").write_text(markdown(doc))
    return doc
