"""``scripts/bench --quick`` run for real (L1 mock + 4 nodes + ``seqctl load``), and the pure
parts of the benchmark (medians of repeats, the saturation rule, the limit, the request-size
fit, a fresh directory per network).

Budget: about 45-60 s for the smoke test on 2 loaded cores (marked slow).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sequencer_node.devnet.bench import (
    fresh_directory,
    limit,
    median_of,
    request_fit,
    saturated,
    work_dir,
)
from tests.devnet.helpers import ROOT


def _step(offered: float, certified: float, **kw: float) -> dict[str, object]:
    return {"offered": offered, "certified_tx_s": certified, "accepted": 100, "rejected": 0,
            "skipped": 0, "node_cores": 1.0, "cpu_us_per_tx_per_node": 500.0, **kw}  # fmt: skip


def test_medians_of_repeats_are_field_wise() -> None:
    runs = [
        {"a": 1.0, "b": {"p50": 3, "p99": 9}, "name": "x"},
        {"a": 5.0, "b": {"p50": 1, "p99": 7}, "name": "y"},
        {"a": 2.0, "b": {"p50": 2, "p99": 8}, "name": "z"},
    ]
    assert median_of(runs) == {"a": 2.0, "b": {"p50": 2, "p99": 8}, "name": "x", "repeats": 3}


def test_a_runs_directory_is_removed_on_success_and_kept_with_its_logs_on_failure() -> None:
    said: list[str] = []
    with work_dir("seqnet-test-", said.append) as ok:
        (ok / "node-0.log").write_text("fine")
    assert not ok.exists()
    assert said == []

    kept: list[Path] = []

    def failing_run() -> None:
        with work_dir("seqnet-test-", said.append) as bad:
            kept.append(bad)
            (bad / "node-0.log").write_text("what went wrong")
            raise RuntimeError("a node did not answer")

    with pytest.raises(RuntimeError):
        failing_run()
    try:
        assert (kept[0] / "node-0.log").read_text() == "what went wrong"
        assert said == [f"the run failed; the data and logs of its processes are kept in {kept[0]}"]
    finally:
        shutil.rmtree(kept[0])


def test_saturation_and_the_limit() -> None:
    assert not saturated(_step(400, 390))
    assert saturated(_step(400, 300))  # under 85 % of the offered rate
    assert saturated(_step(400, 400, skipped=1))
    assert saturated(_step(400, 400, rejected=5))
    steps = [_step(400, 390), _step(800, 600, node_cores=1.5, cpu_us_per_tx_per_node=625.0)]
    lim = limit(steps, 10_000.0, 4)
    assert lim["saturation_tx_s"] == 600
    assert lim["ceiling_tx_s"] == 3750.0  # 10k/s/core x 1.5 cores / 4 nodes
    assert lim["ratio"] == 0.16
    assert lim["cpu_per_tx_in_verifications"] == 6.25  # 625 us / 100 us


def test_the_request_size_fit_separates_per_request_from_per_transaction_cost() -> None:
    # 4 nodes; a request costs the network 2,000 us, a transaction 150 us per node:
    # cpu/tx/node = 150 + (2000 / 4) / txs_per_request
    rows = [{"txs_per_request": k, "cpu_us_per_tx_per_node": 150 + 500 / k} for k in (5, 10, 40)]
    fit = request_fit(rows, 4, 100.0)
    assert fit is not None
    assert fit["per_tx_us"] == 150.0
    assert fit["per_tx_in_verifications"] == 1.5
    assert fit["per_request_us"] == 2000.0
    assert fit["r2"] == 1.0
    assert fit["points"] == 3
    # one request size (or none measured) says nothing about the split
    assert request_fit([rows[0], dict(rows[0])], 4, 100.0) is None
    assert request_fit([{"txs_per_request": None, "cpu_us_per_tx_per_node": 1.0}], 4, 1.0) is None


def test_the_scaling_goal_in_per_node_cost() -> None:
    from sequencer_node.devnet.bench_report import markdown, scale_out

    def net(nodes: int, cores: float, cpu_us: float) -> dict[str, object]:
        # certified = cores / (nodes x CPU per tx per node): consistent figures
        tx_s = cores * 1e6 / (nodes * cpu_us)
        return {"nodes": nodes, "above": {"certified_tx_s": tx_s, "cpu_us_per_tx_per_node":
                                          cpu_us, "node_cores": cores}}  # fmt: skip

    small, large = net(4, 1.6, 300.0), net(16, 1.6, 480.0)
    x = scale_out(small, large)
    assert x is not None
    assert x["measured"] == pytest.approx(x["identity"]) == pytest.approx(0.25 * 300 / 480)
    assert x["per_node_cost"] == pytest.approx(1.6)
    assert x["needed_per_node_cost"] == pytest.approx(0.5)  # equal cores: half the cost
    assert x["own_machines_estimate"] == pytest.approx(300 / 480)
    assert scale_out(small, {"nodes": 16, "error": "did not start"}) is None
    no_cpu = {"nodes": 16, "above": {"certified_tx_s": 200.0, "node_cores": 1.6}}
    assert scale_out(small, no_cpu) is None  # no figure, no claim
    # The results page says it under the scaling table.
    doc = json.loads((ROOT / "docs" / "bench" / "results.json").read_text())
    md = markdown(doc)
    assert "times the CPU per transaction of a node of 4" in md.split("## 3. Scaling")[1]


def test_every_network_of_a_run_gets_a_fresh_directory(tmp_path: Path) -> None:
    # The scaling part's 4-node network once started in the sweep's directory and resumed it.
    first = fresh_directory(tmp_path, "net-4")
    assert first == tmp_path / "net-4"
    first.mkdir()
    second = fresh_directory(tmp_path, "net-4")
    assert second == tmp_path / "net-4-2"
    second.mkdir()
    assert fresh_directory(tmp_path, "net-4") == tmp_path / "net-4-3"
    assert fresh_directory(tmp_path, "net-7") == tmp_path / "net-7"


@pytest.mark.slow
def test_quick_bench_measures_every_figure(tmp_path: Path) -> None:
    plots = importlib.util.find_spec("matplotlib") is not None
    argv = [sys.executable, str(ROOT / "scripts" / "bench_network.py"), "--quick", "--out",
            str(tmp_path), *([] if plots else ["--no-plots"])]  # fmt: skip
    r = subprocess.run(argv, capture_output=True, text=True, timeout=240, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["machine"]["cores"] >= 1
    assert doc["machine"]["load_average_after"]
    assert doc["verify"]["per_s_per_core"] > 100
    steps = doc["load"]["steps"]
    assert [s["offered"] for s in steps][:1] == [100]
    first = steps[0]
    # 100 tx/s offered: certified in the steady window (a loaded CI box may certify less)
    assert first["certified_tx_s"] > 10
    assert 0 < first["latency_s"]["p50"] <= first["latency_s"]["p99"]
    assert first["l1_latency_s"]["p50"] is not None
    assert first["l1_latency_s"]["p50"] >= first["latency_s"]["p50"]
    assert first["cpu_us_per_tx_per_node"] > 0
    assert 0 <= first["worker_cpu_us_per_tx_per_node"] < first["cpu_us_per_tx_per_node"]
    assert first["rss_mb_max"]["node-0"] > 10
    assert first["rss_mb_max"]["l1"] > 10
    assert first["health_ms"]["samples"] > 0
    assert first["client_cpu_us_per_tx"] > 0
    assert first["p2p_messages_per_block"] > 0
    assert first["p2p_bytes_per_block"] > 0
    sizes = doc["load"]["requests"]  # the highest unsaturated rate again, in larger requests
    if sizes is not None:  # None only if the quick sweep's first step already saturated
        assert sizes["offered"] in [s["offered"] for s in steps]
        assert [s["request_interval_ms"] for s in sizes["steps"]] == [0, 250]
        assert sizes["steps"][1]["txs_per_request"] > 0
        assert sizes["steps"][1]["cpu_us_per_tx_per_node"] > 0
    assert doc["limit"]["ceiling_tx_s"] > 0
    assert doc["limit"]["ratio"] > 0
    eth = doc["load"]["eth"]  # Ethereum transfers at the best native step's rate
    assert eth["kind"] == "eth"
    assert eth["offered"] in [s["offered"] for s in steps]
    assert eth["certified_tx_s"] > 0
    assert eth["rejected"] == 0
    assert doc["load"]["failover"]["next_block_s"] > 0
    assert doc["scaling"][0]["nodes"] == 4
    md = (tmp_path / "results.md").read_text()
    assert "Ethereum (EIP-1559) transfers" in md
    if sizes is not None:
        assert "### 1b. Request size" in md
    for heading in ("## 1. Open-loop load", "## 2. The limit", "## 3. Scaling", "## 4. Failover"):
        assert heading in md
    if plots:
        assert (tmp_path / "load.png").stat().st_size > 10_000
        assert (tmp_path / "scaling.png").stat().st_size > 5_000


def test_profile_samples_go_to_the_innermost_activity() -> None:
    from sequencer_node.devnet.bench_profile import OTHER, WORKER, categorize

    raw = "\n".join([
        "run (trio/_core/_run.py:1);_handle (sequencer_node/shell/node_service.py:2);"
        "add (sequencer_node/core/mempool.py:3);"
        "verify_uncached (sequencer_node/wire/crypto.py:4) 7",
        "run (trio/_core/_run.py:1);_handle (sequencer_node/shell/node_service.py:2);"
        "add (sequencer_node/core/mempool.py:3) 2",
        "run (trio/_core/_run.py:1);receive (sequencer_node/shell/transport.py:5);"
        "decode (sequencer_node/wire/codec.py:6) 3",
        "run (trio/_core/_run.py:1) 4",
        "mystery (somewhere.py:1) 1",
        "run (threading.py:1);WorkerThread._work (trio/_core/_thread_cache.py:211) 50",
        "run (trio/_core/_run.py:1);EpollIOManager.get_events (trio/_core/_io_epoll.py:243) 9",
        "serve (x.py:1);_PollLikeSelector.select (selectors.py:415) 1",
        # a batch worker process (py-spy --subprocesses): one row whatever it runs
        "_process_worker (concurrent/futures/process.py:1);check (sequencer_node/batcher/"
        "kzg_worker.py:2);decode (sequencer_node/wire/codec.py:6) 5",
        "_process_worker (concurrent/futures/process.py:1);Connection._recv "
        "(multiprocessing/connection.py:395) 20",  # ... waiting for its next job
        "main (multiprocessing/resource_tracker.py:227) 30",
        "garbage line",
    ])  # fmt: skip
    got = categorize(raw)
    assert got[WORKER] == 5
    assert got["signature verification (libsodium / OpenSSL)"] == 7
    assert got["core: consensus, mempool, execution"] == 2
    assert got["msgpack encode and strict decode (wire codec)"] == 3
    assert got["Trio scheduling, channels, cancel scopes, I/O wait"] == 4
    assert got[OTHER] == 1
    assert got["idle (a waiting thread)"] == 110
    assert sum(got.values()) == 132


def test_a_process_cpu_counts_its_descendants() -> None:
    """A node's batch workers are its child processes: the sampler adds their CPU to the
    node's and reports it apart (a grandchild of the test that burns CPU shows in
    ``child_cores``; its parent, which only waits, keeps its own small share)."""
    from sequencer_node.devnet.bench_probe import Sampler, proc_descendants

    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 5: pass\n"
    parent = subprocess.Popen(  # a parent that only waits on a child that burns CPU
        [sys.executable, "-c", "import subprocess, sys; subprocess.run([sys.executable, '-c', "
         f"{burn!r}])"]
    )  # fmt: skip
    try:
        sampler = Sampler({"node-0": parent.pid}, {})
        deadline = time.monotonic() + 30
        while not proc_descendants(parent.pid):
            assert time.monotonic() < deadline, "the child never started"
            time.sleep(0.01)
        t0 = time.time()
        sampler.sample_now()
        first = sampler.samples[-1]
        while sampler.samples[-1].child_cpu_s["node-0"] - first.child_cpu_s["node-0"] < 0.3:
            assert time.monotonic() < deadline, "the child's CPU time was never seen"
            time.sleep(0.05)
            sampler.sample_now()
        last = sampler.samples[-1]
        win = sampler.window(t0, last.at)
        assert win["child_cores"]["node-0"] > 0
        assert win["cores"]["node-0"] > win["child_cores"]["node-0"] * 0.999
        own = last.cpu_s["node-0"] - first.cpu_s["node-0"]
        assert own < 0.2  # the burner's CPU is not the parent's own
        assert win["child_rss_mb"]["node-0"] > 1
    finally:
        for pid in proc_descendants(parent.pid):
            os.kill(pid, signal.SIGKILL)
        parent.kill()
        parent.wait()


def test_idle_is_measured_after_the_workers_started() -> None:
    """A fresh node's batch worker loads the KZG trusted setup: the idle window waits until
    no worker uses CPU (at most a limit), so that start-up is not counted as idle cost."""
    import trio

    from sequencer_node.devnet.bench import settle_workers

    class Busy:
        def __init__(self, busy_windows: int) -> None:
            self.calls, self.busy_windows = 0, busy_windows

        def window(self, t0: float, t1: float) -> dict[str, dict[str, float]]:
            self.calls += 1
            busy = self.calls <= self.busy_windows
            return {"child_cores": {"node-0": 0.0, "node-1": 0.3 if busy else 0.0, "l1": 0.5}}

    starting = Busy(3)
    trio.run(settle_workers, starting, 5.0, 0.01)  # type: ignore[arg-type]
    assert starting.calls == 4  # three busy windows, then a quiet one
    forever = Busy(10**9)
    waited = trio.run(settle_workers, forever, 0.1, 0.01)  # type: ignore[arg-type]
    assert 0.1 <= waited < 2.0  # bounded
