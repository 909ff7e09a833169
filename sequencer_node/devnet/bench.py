"""The network benchmark behind ``scripts/bench`` (issue 13): real processes, one run.

Everything is measured side by side in one run, on networks started with the devnet's own
code (:class:`~sequencer_node.devnet.runner.Devnet`: L1 mock, staking, genesis, the nodes)
in a temporary directory, with equal stakes so that any one node can fail:

1. **open-loop load stepped to saturation** on L1 + 4 nodes: ``seqctl load`` (a separate
   process: it signs before the timed part, sends batches over ``POST /v1/txs`` and reports its
   own CPU) at each offered rate, ``repeats`` times, medians kept; per step the steady-state
   certified tx/s, p50/p99 submit-to-certified and submit-to-L1, the CPU of each node and of
   the L1 in the steady window (``/proc``), per certified transaction, peak RSS of every
   process, and ``/health`` latency (event-loop stall). Stepping stops after the first
   saturated step (certified < 85 % of offered, or refusals, or skips);
2. **the limit**: Ed25519 verifications per second per core in the same run, the
   every-node-verifies ceiling for the cores the nodes got at saturation
   (``verifications/s/core x cores used by the nodes / nodes``) and the ratio;
3. **scaling**: for each network size, idle CPU per node, then one step below and one above
   the 4-node saturation: tx/s, latency, p2p messages and bytes per certified block;
4. **failover**: the round's leader is killed (SIGKILL) on an idle 4-node network; the time
   to the next certified block (and to the one after, which a new leader must have made).

Results: ``results.json`` (every figure, the machine, versions, load average before and
after), ``results.md`` and PNG plots (:mod:`~sequencer_node.devnet.bench_report`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import trio

from sequencer_node.clients.node import NodeClient, encode_tx_batch
from sequencer_node.devnet.accounts import LOAD_ACCOUNTS, eth_load_address, load_account_key
from sequencer_node.devnet.bench_probe import Sampler, cosign_cost, machine, verify_rate
from sequencer_node.devnet.config import DevnetConfig, DevnetError
from sequencer_node.devnet.ports import free_block
from sequencer_node.devnet.procs import spawn, stop
from sequencer_node.devnet.runner import Devnet, node_argv
from sequencer_node.wire.crypto import sign_message
from sequencer_node.wire.messages import Transaction

#: A step is saturated when the network certifies less than this share of the offered rate.
SATURATED_BELOW = 0.85
REPO = Path(__file__).resolve().parents[2]
#: What each extra load account is given by a devnet load account.
EXTRA_FUNDING = 10**18


@dataclass(frozen=True)
class Profile:
    name: str
    rates: tuple[int, ...]
    step_s: float
    repeats: int
    sizes: tuple[int, ...]
    failovers: int
    idle_s: float
    drain_s: float
    accounts: int
    #: After the sweep, one step at this multiple of the best step's offered rate (0: none):
    #: past saturation the certified rate must stay near it (the node sheds, issue 13).
    overload: float = 0.0
    block_time_ms: int = 250
    #: An idle leader proposes every second instead of every block time (0: off, as before).
    idle_block_ms: int = 1_000
    timeout_base_ms: int = 4_000
    #: Part 1b: the highest unsaturated rate again with ``seqctl load --request-interval-ms``
    #: of each of these (larger requests at the same rate), and the saturated rate at the
    #: largest of them (none: skipped). The sweep's step is the 0 ms point.
    request_intervals_ms: tuple[int, ...] = ()


PROFILES = {
    # (40 senders: 8 more than the devnet funds, so that the quick run pays them and their
    # Ethereum twins as the full one does)
    "quick": Profile("quick", rates=(100, 400), step_s=3.0, repeats=1, sizes=(4,), failovers=1,
                     idle_s=1.5, drain_s=25.0, accounts=40, request_intervals_ms=(250,)),
    # one 4-node sweep to saturation, for before/after comparisons of a change
    "sweep": Profile("sweep", rates=(200, 400, 700, 1000, 1400, 2000, 2800, 4000), step_s=6.0,
                     repeats=1, sizes=(4,), failovers=1, idle_s=2.0, drain_s=20.0,
                     accounts=256, overload=2.0, request_intervals_ms=(100, 400)),
    # two fixed rates, no failover: for A/B runs of two commits, alternated
    "ab": Profile("ab", rates=(150, 300), step_s=8.0, repeats=1, sizes=(4,), failovers=0,
                  idle_s=2.0, drain_s=20.0, accounts=256),
    # (fits the 30 min benchmark window with 16 nodes: drain 20 s, no 300 step)
    "full": Profile("full", rates=(100, 200, 400, 600, 800, 1200, 1600, 2400, 3200),
                    step_s=12.0, repeats=3, sizes=(4, 7, 10, 16), failovers=3, idle_s=5.0,
                    drain_s=20.0, accounts=256, overload=2.0, request_intervals_ms=(100, 200, 400)),
}  # fmt: skip


class BenchNet:
    """One network of ``n`` nodes in ``root`` (started with the devnet's code, equal stakes)."""

    def __init__(self, root: Path, n: int, prof: Profile, say: Callable[[str], None]) -> None:
        base = free_block(1 + 2 * n)
        self.cfg = DevnetConfig(
            directory=fresh_directory(root, f"net-{n}"), nodes=n, stakes=(10,) * n, load=False,
            block_time_ms=prof.block_time_ms, idle_block_ms=prof.idle_block_ms,
            timeout_base_ms=prof.timeout_base_ms,
            # 100 s epochs at 250 ms: a stake snapshot is finalized a few epochs ahead of its use
            # (the devnet refuses epochs too short for that, docs/protocol.md section 2)
            epoch_length=400,
            slot_time=1, l1_port=base, rpc_port=base + 1, p2p_port=base + 1 + n,
        )  # fmt: skip
        self.devnet = Devnet(self.cfg, say, detach=False)
        self.n = n

    async def start(self) -> None:
        await self.devnet.start()

    def stop(self) -> None:
        stop(self.devnet.children(), deadline_s=10.0)

    @property
    def urls(self) -> list[str]:
        return [self.cfg.rpc_url(i) for i in range(self.n)]

    def pids(self) -> dict[str, int]:
        out = {f"node-{i}": c.pid for i, c in enumerate(self.devnet.nodes)}
        if self.devnet.l1 is not None:
            out["l1"] = self.devnet.l1.pid
        return out

    def node_index(self, public_key_hex: str) -> int | None:
        for i, k in enumerate(self.devnet.keys):
            if k.public_key.hex() == public_key_hex.removeprefix("0x"):
                return i
        return None

    def kill(self, i: int) -> None:
        os.kill(self.devnet.nodes[i].pid, signal.SIGKILL)
        self.devnet.nodes[i].exit_code()  # reap

    def restart(self, i: int) -> None:
        cfg = self.cfg
        self.devnet.nodes[i] = spawn(cfg.name(i), node_argv(cfg, i), cfg.log_file(cfg.name(i)))


def fresh_directory(root: Path, name: str) -> Path:
    """``root/name``, or ``root/name-2``, ``-3`` ... if taken: every network of a run starts
    fresh. (The scaling part's 4-node network once started in the sweep's directory, and so
    resumed that network, journals and all, instead of measuring a new one.)"""
    d, k = root / name, 1
    while d.exists():
        k += 1
        d = root / f"{name}-{k}"
    return d


async def _status(http: httpx.AsyncClient, url: str) -> dict[str, Any] | None:
    try:
        r = await http.get(url + "/v1/status")
        doc = r.json()
    except (httpx.HTTPError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


async def _heights(http: httpx.AsyncClient, urls: list[str]) -> list[int]:
    out = []
    for u in urls:
        st = await _status(http, u)
        out.append(-1 if st is None else int(st["heads"]["certified"]["height"]))
    return out


async def _p2p_totals(http: httpx.AsyncClient, urls: list[str]) -> tuple[int, int, int]:
    """(messages out, bytes out) summed over the nodes, and the highest certified height."""
    msgs = size = top = 0
    for u in urls:
        st = await _status(http, u)
        if st is None:
            continue
        msgs += int(st.get("p2p", {}).get("messages_out", 0))
        size += int(st.get("p2p", {}).get("bytes_out", 0))
        top = max(top, int(st["heads"]["certified"]["height"]))
    return msgs, size, top


async def wait_until(what: str, check: Callable[[], Awaitable[bool]], limit_s: float) -> None:
    """Poll ``check`` (a remote state: nothing to wait on locally) until true or the limit."""
    deadline = trio.current_time() + limit_s
    while not await check():
        if trio.current_time() > deadline:
            raise RuntimeError(f"timed out after {limit_s:.0f} s waiting for {what}")
        await trio.sleep(0.1)


async def fund_extra_accounts(url: str, total: int) -> None:
    """Load accounts ``LOAD_ACCOUNTS .. total-1`` and their Ethereum twins (``seqctl load
    --kind eth`` sends from those) paid by the funded ones (the devnet funds only the first
    ``LOAD_ACCOUNTS`` and their twins; more senders keep nonces within the pool's gap at high
    rates, and the Ethereum step must have as many as the native ones to compare the two
    paths, not the gap); returns once every one has a balance. A loaded node may answer some
    items TIMEOUT or OVERLOADED: the unfunded ones are sent again (fresh nonces), a few
    times."""
    if total <= LOAD_ACCOUNTS:
        return
    async with NodeClient(url, timeout=30.0) as node:
        chain_id = int((await node.status())["chain_id"])
        # (the funding account, an address it pays): each extra account and its twin
        unpaid = [(i % LOAD_ACCOUNTS, a) for i in range(LOAD_ACCOUNTS, total)
                  for a in _funded_addresses(i)]  # fmt: skip
        unpaid = await _still_unpaid(node, unpaid)  # paid by an earlier call: not twice
        for _ in range(5):
            await _pay(node, chain_id, unpaid)
            for _ in range(60):  # up to ~30 s for them to be certified
                unpaid = await _still_unpaid(node, unpaid)
                if not unpaid:
                    return
                await trio.sleep(0.5)
        raise RuntimeError(f"{len(unpaid)} extra load addresses could not be funded")


def _funded_addresses(i: int) -> tuple[bytes, bytes]:
    """Load account ``i``'s address and its Ethereum twin's."""
    key = load_account_key(i)
    return key.address, eth_load_address(key)


async def _still_unpaid(
    node: NodeClient, unpaid: list[tuple[int, bytes]]
) -> list[tuple[int, bytes]]:
    return [(f, a) for f, a in unpaid if int((await node.account(a))["balance"]) == 0]


async def _pay(node: NodeClient, chain_id: int, unpaid: list[tuple[int, bytes]]) -> None:
    nonces: dict[int, int] = {}
    txs = []
    for f, to in unpaid:
        key = load_account_key(f)
        if f not in nonces:
            acct = await node.account(key.address)
            nonces[f] = int(acct.get("pending_nonce", acct["nonce"]))
        tx = Transaction(key.public_key, to, EXTRA_FUNDING, nonces[f], 1, bytes(64))
        txs.append(sign_message(tx, key, chain_id))
        nonces[f] += 1
    for k in range(0, len(txs), 256):
        await node.send_txs(encode_tx_batch(txs[k : k + 256]))  # refusals: retried above


async def run_load(
    urls: list[str], rate: float, prof: Profile, wait_l1: bool, kind: str = "transfer",
    interval_ms: int = 0,
) -> dict[str, Any]:  # fmt: skip
    """One ``seqctl load`` process; its JSON summary. ``kind`` ``eth``: Ethereum transfers
    from the Ethereum twins of the same load accounts (:func:`fund_extra_accounts`);
    ``interval_ms``: its ``--request-interval-ms``."""
    seqctl = Path(sys.executable).parent / "seqctl"
    argv = [str(seqctl), "load", "--node-url", ",".join(urls), "--rate", f"{rate:g}",
            "--duration", f"{prof.step_s:g}", "--accounts", str(prof.accounts), "--kind", kind,
            "--drain", f"{prof.drain_s:g}", "--request-interval-ms", str(interval_ms),
            "--json", "--quiet"]  # fmt: skip
    if wait_l1:
        argv.append("--wait-l1")
    proc = await trio.run_process(argv, capture_stdout=True, capture_stderr=True, check=False)
    if proc.returncode != 0:
        err = proc.stderr.decode()[-2000:]
        raise RuntimeError(f"seqctl load failed ({proc.returncode}): {err}")
    doc: dict[str, Any] = json.loads(proc.stdout)
    return doc


async def load_step(
    net: BenchNet,
    sampler: Sampler,
    rate: float,
    prof: Profile,
    *,
    wait_l1: bool = True,
    kind: str = "transfer",
    interval_ms: int = 0,
) -> dict[str, Any]:
    """One load step and what the processes did during its steady window."""
    async with httpx.AsyncClient(timeout=5.0) as http:
        m0, b0, h0 = await _p2p_totals(http, net.urls)
        load = await run_load(net.urls, rate, prof, wait_l1, kind, interval_ms)
        m1, b1, h1 = await _p2p_totals(http, net.urls)
    start, dur = float(load["started_at_unix"]), float(load["duration_s"])
    win = sampler.window(start + dur * 0.25, start + dur)
    certified = float(load["certified_rate_steady"])
    nodes = {k: v for k, v in win["cores"].items() if k.startswith("node-")}
    node_cores = sum(nodes.values())  # each node with its batch worker processes
    worker_cores = sum(v for k, v in win["child_cores"].items() if k.startswith("node-"))
    per_tx = 1e6 / max(1, len(nodes)) / certified if certified > 0 else None
    blocks = max(1, h1 - h0)
    return {
        "kind": load.get("kind", kind),
        "offered": rate,
        "certified_tx_s": certified,
        "accepted": load["accepted"],
        "rejected": load["rejected_total"],
        "rejected_by": load["rejected"],
        "skipped": load["skipped_max_in_flight"],
        "latency_s": {"p50": load["latency_s"]["p50"], "p99": load["latency_s"]["p99"]},
        "l1_latency_s": {k: load["l1_latency_s"][k] for k in ("p50", "p99")},
        "node_cores": round(node_cores, 3),
        "worker_cores": round(worker_cores, 3),
        "l1_cores": round(win["cores"].get("l1", 0.0), 3),
        "cpu_us_per_tx_per_node": None if per_tx is None else round(node_cores * per_tx, 1),
        "worker_cpu_us_per_tx_per_node": None
        if per_tx is None
        else round(worker_cores * per_tx, 1),
        "rss_mb_max": {k: round(v, 1) for k, v in win["rss_mb"].items()},
        "worker_rss_mb_max": {k: round(v, 1) for k, v in win["child_rss_mb"].items() if v},
        "health_ms": win["health_ms"],
        "client_cpu_us_per_tx": load["client"]["cpu_us_per_tx"],
        "client_cores": round(load["client"]["cpu_s"] / max(dur, 1e-9), 3),
        "client_requests": load["client"].get("requests"),
        "txs_per_request": load["client"].get("txs_per_request"),
        "request_interval_ms": interval_ms,
        "p2p_messages_per_block": round((m1 - m0) / blocks, 1),
        "p2p_bytes_per_block": round((b1 - b0) / blocks),
        "blocks": h1 - h0,
    }


def median_of(docs: list[dict[str, Any]], *, top: bool = True) -> dict[str, Any]:
    """Field-wise median of ``docs`` (numbers; nested dicts recursively; others: the first);
    ``repeats`` says how many were merged (top level only)."""
    out: dict[str, Any] = {}
    for k, v in docs[0].items():
        vals = [d.get(k) for d in docs]
        if isinstance(v, dict):
            out[k] = median_of([x for x in vals if isinstance(x, dict)], top=False)
        elif all(isinstance(x, int | float) and not isinstance(x, bool) for x in vals):
            out[k] = statistics.median(vals)  # type: ignore[type-var]
        else:
            out[k] = v
    if top and len(docs) > 1:
        out["repeats"] = len(docs)
    return out


def saturated(step: dict[str, Any]) -> bool:
    return bool(
        step["certified_tx_s"] < SATURATED_BELOW * step["offered"]
        or step["rejected"] > 0.01 * max(1, step["accepted"])
        or step["skipped"] > 0
    )


async def sweep(net: BenchNet, sampler: Sampler, prof: Profile, say: Callable[[str], None]
                ) -> list[dict[str, Any]]:  # fmt: skip
    """Step the offered rate up to the first saturated step (medians of the repeats)."""
    steps = []
    for rate in prof.rates:
        runs = [await load_step(net, sampler, rate, prof) for _ in range(prof.repeats)]
        step = median_of(runs)
        steps.append(step)
        say(f"  offered {rate:>5} tx/s: certified {step['certified_tx_s']:.0f} tx/s, "
            f"p50 {step['latency_s']['p50']} s, {step['cpu_us_per_tx_per_node']} us/tx/node, "
            f"health p99 {step['health_ms']['p99']} ms, refused {step['rejected_by']}, "
            f"skipped {step['skipped']}")  # fmt: skip
        if saturated(step) and prof.name != "ab":
            break
    return steps


async def request_sizes(
    net: BenchNet, sampler: Sampler, prof: Profile, steps: list[dict[str, Any]],
    say: Callable[[str], None],
) -> dict[str, Any] | None:  # fmt: skip
    """Part 1b: the same offered rate in larger requests. The highest unsaturated rate of the
    sweep again with each of ``prof.request_intervals_ms`` (the sweep's step is the 0 ms
    point), then the first saturated rate with the largest interval: how much of a node's
    CPU is per request rather than per transaction, and whether the sweep's saturation is
    the network's most or the most at the request sizes the load made there."""
    fine = [s for s in steps if not saturated(s)]
    if not prof.request_intervals_ms or not fine:
        return None
    rate = max(fine, key=lambda s: s["offered"])["offered"]
    rows = [max(fine, key=lambda s: s["offered"])]
    for ms in prof.request_intervals_ms:
        runs = [await load_step(net, sampler, rate, prof, wait_l1=False, interval_ms=ms)
                for _ in range(prof.repeats)]  # fmt: skip
        rows.append(median_of(runs))
        say(f"  {rate:>5} tx/s in requests at most every {ms} ms: "
            f"{rows[-1]['txs_per_request']} tx/request, certified "
            f"{rows[-1]['certified_tx_s']:.0f} tx/s, p50 {rows[-1]['latency_s']['p50']} s, "
            f"{rows[-1]['cpu_us_per_tx_per_node']} us/tx/node")  # fmt: skip
    out: dict[str, Any] = {"offered": rate, "steps": rows, "at_saturation": None}
    over = [s for s in steps if saturated(s)]
    if over:
        ms = max(prof.request_intervals_ms)
        big = await load_step(net, sampler, over[0]["offered"], prof, wait_l1=False,
                              interval_ms=ms)  # fmt: skip
        big["sweep_certified_tx_s"] = over[0]["certified_tx_s"]
        big["sweep_txs_per_request"] = over[0].get("txs_per_request")
        out["at_saturation"] = big
        say(f"  saturated rate {over[0]['offered']} tx/s in requests at most every {ms} ms: "
            f"certified {big['certified_tx_s']:.0f} tx/s (the sweep: "
            f"{over[0]['certified_tx_s']:.0f}), refused {big['rejected_by']}")  # fmt: skip
    return out


def request_fit(rows: list[dict[str, Any]], n: int, one_verify_us: float) -> dict[str, Any] | None:
    """Least squares of CPU per certified transaction per node against requests per
    transaction, over steps at one offered rate: the intercept is what a transaction costs a
    node when requests are free (its own work and its share of the blocks at that rate), the
    slope times ``n`` what one client request costs the network (its HTTP exchange, journal
    commit and the gossip frames it makes). None with fewer than two request sizes."""
    pts = [(1.0 / r["txs_per_request"], float(r["cpu_us_per_tx_per_node"])) for r in rows
           if r.get("txs_per_request") and r.get("cpu_us_per_tx_per_node")]  # fmt: skip
    xs, ys = [x for x, _ in pts], [y for _, y in pts]
    if len(set(xs)) < 2:
        return None
    slope, intercept = statistics.linear_regression(xs, ys)
    r2 = statistics.correlation(xs, ys) ** 2 if len(set(ys)) > 1 else 0.0
    return {
        "points": len(pts),
        "per_tx_us": round(intercept, 1),
        "per_tx_in_verifications": round(intercept / one_verify_us, 2),
        "per_request_us": round(slope * n, 1),
        "r2": round(r2, 3),
    }


async def eth_step(
    net: BenchNet,
    sampler: Sampler,
    prof: Profile,
    steps: list[dict[str, Any]],
    say: Callable[[str], None],
) -> dict[str, Any]:
    """The same offered rate as the best native step, with Ethereum (EIP-1559) transfers
    sent over the Ethereum JSON-RPC: what secp256k1 recovery and JSON-RPC cost against
    native Ed25519 transfers."""
    rate = max(steps, key=lambda s: s["certified_tx_s"])["offered"]
    step = await load_step(net, sampler, rate, prof, kind="eth")
    say(f"  eth transfers at {rate:>5} tx/s: certified {step['certified_tx_s']:.0f} tx/s, "
        f"p50 {step['latency_s']['p50']} s, {step['cpu_us_per_tx_per_node']} us/tx/node, "
        f"refused {step['rejected_by']}")  # fmt: skip
    return step


async def overload_step(
    net: BenchNet, sampler: Sampler, prof: Profile, steps: list[dict[str, Any]],
    say: Callable[[str], None],
) -> dict[str, Any] | None:  # fmt: skip
    """One step at ``prof.overload`` times the best step's offered rate: open-loop load past
    saturation (the share of the saturation certified there is what the report shows)."""
    if not prof.overload:
        return None
    best = max(steps, key=lambda s: s["certified_tx_s"])
    rate = round(best["offered"] * prof.overload)
    step = await load_step(net, sampler, rate, prof)
    step["of_saturation"] = round(step["certified_tx_s"] / max(best["certified_tx_s"], 1e-9), 3)
    say(f"  overload {rate:>5} tx/s: certified {step['certified_tx_s']:.0f} tx/s "
        f"({step['of_saturation']:.0%} of saturation), p50 {step['latency_s']['p50']} s, "
        f"refused {step['rejected_by']}")  # fmt: skip
    return step


async def settle_workers(sampler: Sampler, limit_s: float = 30.0, quiet_s: float = 1.0) -> float:
    """Wait until no node's batch workers used CPU for ``quiet_s`` (at most ``limit_s``);
    returns the seconds waited. A fresh node spawns its worker, which loads the KZG trusted
    setup (~0.7 s of CPU each): start-up, not what an idle node costs. On 2 cores it can run
    past a 7-16-node network's first block (the full run of b9ee245 counted it as 7-15 % of a
    core per node of idle CPU)."""
    start = time.monotonic()
    while time.monotonic() - start < limit_s:
        t0 = time.time()
        await trio.sleep(quiet_s)
        workers = sampler.window(t0, time.time())["child_cores"]
        if all(v < 0.01 for k, v in workers.items() if k.startswith("node-")):
            break
    return time.monotonic() - start


async def idle_cpu(net: BenchNet, sampler: Sampler, seconds: float) -> dict[str, float]:
    await settle_workers(sampler)
    t0 = time.time()
    await trio.sleep(seconds)
    win = sampler.window(t0, time.time())
    cores = win["cores"]
    nodes = [v for k, v in cores.items() if k.startswith("node-")]
    workers = [v for k, v in win["child_cores"].items() if k.startswith("node-")]
    return {
        "node_cores_mean": round(statistics.mean(nodes), 4) if nodes else 0.0,
        "worker_cores_mean": round(statistics.mean(workers), 4) if workers else 0.0,
        "l1_cores": round(cores.get("l1", 0.0), 4),
    }


async def failover(net: BenchNet, repeats: int) -> dict[str, Any]:
    """Kill the round's leader; seconds to the next certified block and to the one after,
    seen by the survivors; the node is restarted and caught up between repeats."""
    runs: list[dict[str, float]] = []
    async with httpx.AsyncClient(timeout=2.0) as http:
        for _ in range(repeats):
            leader = await _leader(http, net)
            others = [u for i, u in enumerate(net.urls) if i != leader]
            h0 = max(await _heights(http, others))
            t0 = time.perf_counter()
            net.kill(leader)
            firsts: list[float] = []
            with trio.move_on_after(60.0):
                while len(firsts) < 2:
                    top = max(await _heights(http, others))
                    while len(firsts) < min(2, top - h0):
                        firsts.append(time.perf_counter() - t0)
                    await trio.sleep(0.02)
            run = {
                "next_block_s": round(firsts[0], 3) if firsts else -1.0,
                "second_block_s": round(firsts[1], 3) if len(firsts) > 1 else -1.0,
            }
            net.restart(leader)
            run["restart_caught_up_s"] = await _caught_up(http, net, leader)
            runs.append(run)
            if run["restart_caught_up_s"] < 0:
                break  # the next repeat needs every node: stop here, with what was measured
    return {"runs": runs, **median_of(runs)}


async def _leader(http: httpx.AsyncClient, net: BenchNet) -> int:
    for _ in range(100):
        st = await _status(http, net.urls[0])
        if st is not None and st.get("leader"):
            i = net.node_index(str(st["leader"]))
            if i is not None:
                return i
        await trio.sleep(0.05)
    raise RuntimeError("no leader reported by node-0")


async def _caught_up(http: httpx.AsyncClient, net: BenchNet, i: int) -> float:
    """Seconds until restarted node ``i`` reaches the height the others had at its restart
    (-1 if not within two minutes)."""
    others = [u for j, u in enumerate(net.urls) if j != i]
    target = max(await _heights(http, others))
    t0 = time.perf_counter()

    async def ok() -> bool:
        return (await _heights(http, [net.urls[i]]))[0] >= target

    try:
        await wait_until(f"node-{i} to catch up after its restart", ok, 120.0)
    except RuntimeError:
        return -1.0
    return round(time.perf_counter() - t0, 2)


async def with_network(
    root: Path, n: int, prof: Profile, say: Callable[[str], None],
    body: Callable[[BenchNet, Sampler], Awaitable[dict[str, Any]]],
) -> dict[str, Any]:  # fmt: skip
    """Start an ``n``-node network, sample it while ``body`` runs, stop it."""
    net = BenchNet(root, n, prof, say)
    t0 = time.perf_counter()
    try:
        await net.start()
        started = time.perf_counter() - t0
        await fund_extra_accounts(net.urls[0], prof.accounts)
        sampler = Sampler(net.pids(), {f"node-{i}": u for i, u in enumerate(net.urls)})
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sampler.run)
            out = await body(net, sampler)
            nursery.cancel_scope.cancel()
        return {"nodes": n, "start_s": round(started, 1), **out}
    finally:
        net.stop()


async def bench(prof: Profile, root: Path, say: Callable[[str], None]) -> dict[str, Any]:
    """The whole run (see the module docstring); the results document."""
    doc: dict[str, Any] = {
        "profile": dataclasses.asdict(prof),
        "machine": machine(REPO),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    doc["verify"] = verify_rate()
    v = doc["verify"]
    say(f"Ed25519 ({v['library']}): {v['per_s_per_core']}/s/core, OpenSSL "
        f"{v['openssl_per_s_per_core']}/s/core")  # fmt: skip
    quick = prof.name == "quick"
    doc["cosign"] = cosign_cost(blocks=4 if quick else 40, txs_per_block=100 if quick else 250,
                                repeats=1 if quick else 3)  # fmt: skip
    c = doc["cosign"]
    say(f"co-signing {c['blobs']} blobs: compute {c['compute_ms_per_blob']} ms/blob, check "
        f"{c['check_ms_per_blob']} ms/blob")  # fmt: skip

    async def main4(net: BenchNet, sampler: Sampler) -> dict[str, Any]:
        idle = await idle_cpu(net, sampler, prof.idle_s)
        steps = await sweep(net, sampler, prof, say)
        sizes = await request_sizes(net, sampler, prof, steps, say)
        over = await overload_step(net, sampler, prof, steps, say)
        eth = await eth_step(net, sampler, prof, steps, say)
        out = {"idle": idle, "steps": steps, "requests": sizes, "overload": over, "eth": eth,
               "failover": None}  # fmt: skip
        if not prof.failovers:
            return out
        try:
            out["failover"] = fo = await failover(net, prof.failovers)
        except (RuntimeError, OSError) as e:
            say(f"  failover failed: {e}")
            return out
        say(f"  failover: next certified block {fo['next_block_s']} s after the leader died")
        return out

    say("4 nodes: load stepped to saturation")
    doc["load"] = await with_network(root, 4, prof, say, main4)
    doc["limit"] = limit(doc["load"]["steps"], doc["verify"]["per_s_per_core"], 4)
    if sizes := doc["load"]["requests"]:
        sizes["fit"] = request_fit(sizes["steps"], 4, doc["limit"]["one_verify_us"])
    doc["scaling"] = await scaling(root, prof, doc, say)
    doc["machine"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    return doc


def limit(steps: list[dict[str, Any]], verify_per_s: float, n: int) -> dict[str, Any]:
    """The every-node-verifies ceiling for the cores the nodes got at the best step."""
    best = max(steps, key=lambda s: s["certified_tx_s"])
    cores = best["node_cores"]
    ceiling = verify_per_s * cores / n
    one_verify_us = 1e6 / verify_per_s
    per_tx = best["cpu_us_per_tx_per_node"]
    return {
        "saturation_tx_s": best["certified_tx_s"],
        "at_offered": best["offered"],
        "node_cores": cores,
        "ceiling_tx_s": round(ceiling, 1),
        "ratio": round(best["certified_tx_s"] / ceiling, 3) if ceiling else None,
        "machine_ceiling_tx_s": round(verify_per_s * (os.cpu_count() or 1) / n, 1),
        "one_verify_us": round(one_verify_us, 1),
        "cpu_per_tx_in_verifications": None if per_tx is None else round(per_tx / one_verify_us, 2),
    }


async def scaling(root: Path, prof: Profile, doc: dict[str, Any], say: Callable[[str], None]
                  ) -> list[dict[str, Any]]:  # fmt: skip
    """Each size: idle CPU, a step at half the 4-node saturation (latency) and one at 1.5x
    (throughput)."""
    sat = doc["limit"]["saturation_tx_s"]
    low, high = max(20, round(sat * 0.5)), max(40, round(sat * 1.5))
    out = []
    for n in prof.sizes:
        say(f"{n} nodes: idle, then {low} and {high} tx/s")

        async def body(net: BenchNet, sampler: Sampler) -> dict[str, Any]:
            idle = await idle_cpu(net, sampler, prof.idle_s)
            below = median_of([await load_step(net, sampler, low, prof, wait_l1=False)
                               for _ in range(prof.repeats)])  # fmt: skip
            above = median_of([await load_step(net, sampler, high, prof, wait_l1=False)
                               for _ in range(prof.repeats)])  # fmt: skip
            return {"idle": idle, "below": below, "above": above}

        if n == 4 and prof.sizes == (4,):
            body_doc = body_from_load(doc, low)
        else:
            try:
                body_doc = await with_network(root, n, prof, say, body)
            except (RuntimeError, DevnetError, OSError) as e:  # a size that failed is reported
                say(f"  {n} nodes failed: {e}")
                body_doc = {"nodes": n, "error": str(e)[:500]}
        out.append(body_doc)
    return out


def body_from_load(doc: dict[str, Any], low: int) -> dict[str, Any]:
    """The quick profile's one size: the 4-node figures of the load sweep (no second start)."""
    steps = doc["load"]["steps"]
    below = min(steps, key=lambda s: abs(s["offered"] - low))
    above = max(steps, key=lambda s: s["certified_tx_s"])
    return {"nodes": 4, "start_s": doc["load"]["start_s"], "idle": doc["load"]["idle"],
            "below": below, "above": above}  # fmt: skip


@contextlib.contextmanager
def work_dir(prefix: str, say: Callable[[str], None]) -> Iterator[Path]:
    """A temporary directory for the networks of a run: removed when the run succeeds, kept
    (and named) when it fails, so the logs of every process are there to read."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield tmp
    except BaseException:
        say(f"the run failed; the data and logs of its processes are kept in {tmp}")
        raise
    shutil.rmtree(tmp, ignore_errors=True)


def run(prof: Profile, out_dir: Path, say: Callable[[str], None], plots: bool = True) -> Path:
    """Run the benchmark and write ``results.json``, ``results.md`` and plots to ``out_dir``."""
    from sequencer_node.devnet import bench_report

    with work_dir("seqnet-bench-", say) as tmp:
        doc = trio.run(bench, prof, tmp, say)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(doc, indent=1) + "\n")
    (out_dir / "results.md").write_text(bench_report.markdown(doc))
    if plots:
        bench_report.plots(doc, out_dir)
    return out_dir
