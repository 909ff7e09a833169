"""The README's devnet command, run for real: L1 mock + 4 sequencer processes + load.

Budget: about 2 minutes for the module (two devnets of ~40 s each: start, wait for a batch on
L1, stop). Every process started for a test is found by its directory in /proc and killed in
teardown, even when the test fails.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.devnet.helpers import (
    ROOT,
    certified_and_batched,
    devnet_command,
    env_for_scripts,
    free_bases,
    kill_mentioning,
    processes_mentioning,
    seqctl,
    status_json,
    wait_for,
)

pytestmark = pytest.mark.slow

#: From start to a batch on L1: keys, L1, staking, nodes, first block, first batch.
BATCH_DEADLINE_S = 150


def _port_args(nodes: int = 4) -> list[str]:
    l1, rpc, p2p = free_bases(nodes)
    return ["--l1-port", str(l1), "--rpc-port", str(rpc), "--p2p-port", str(p2p)]


@pytest.fixture
def devnet_dir(tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / "devnet"
    yield d
    kill_mentioning(str(d))


def test_devnet_up_reaches_batches_and_stops_cleanly_on_ctrl_c(devnet_dir: Path) -> None:
    cmd = [*devnet_command(), "--dir", str(devnet_dir), "--slot-time", "1", *_port_args()]
    log = devnet_dir.parent / "up.out"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env_for_scripts(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        st = wait_for(
            "certified blocks and a batch on L1",
            lambda: proc.poll() is None and certified_and_batched(devnet_dir),
            BATCH_DEADLINE_S,
        )
        assert len(st["nodes"]) == 4
        assert all(n["running"] for n in st["nodes"]), st
        assert st["l1"]["running"]
        assert (devnet_dir / "keys" / "password.txt").stat().st_mode & 0o777 == 0o600
        assert json.loads((devnet_dir / "genesis.json").read_text())["chain_id"] == 901
        # load accounts are moving: some transfers were accepted by the nodes
        assert (devnet_dir / "logs" / "load.log").exists()

        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    output = log.read_text()
    assert code == 0, output
    assert "stopped: " in output, output
    assert "batches on L1:" in output, output
    assert processes_mentioning(str(devnet_dir)) == [], output
    state = json.loads((devnet_dir / "devnet.json").read_text())
    assert state["stopped_at"] >= state["started_at"]


def test_devnet_detach_status_down_and_refusals(devnet_dir: Path) -> None:
    ports = _port_args()
    up = subprocess.run(
        [*seqctl(), "devnet", "up", "--detach", "--no-load", "--dir", str(devnet_dir), *ports],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert up.returncode == 0, up.stdout + up.stderr
    st = status_json(devnet_dir)
    assert st is not None
    assert st["l1"]["url"].startswith("http://127.0.0.1:")
    assert st["l1"]["running"]
    assert isinstance(st["l1"]["pid"], int)
    assert [n["name"] for n in st["nodes"]] == ["node-0", "node-1", "node-2", "node-3"]
    for n in st["nodes"]:
        assert n["running"]
        assert isinstance(n["pid"], int)
        assert n["rpc_url"].startswith("http://127.0.0.1:")
        assert n["heads"]["certified"]["height"] >= 1

    # a second `up` on the running directory refuses and says what to do
    again = subprocess.run(
        [*seqctl(), "devnet", "up", "--dir", str(devnet_dir), *ports],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 1
    assert "already running" in again.stderr
    assert "devnet down" in again.stderr

    logs = subprocess.run(
        [*seqctl(), "devnet", "logs", "--dir", str(devnet_dir), "node-0", "-n", "5"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert logs.returncode == 0
    assert logs.stdout.strip()

    down = subprocess.run(
        [*seqctl(), "devnet", "down", "--dir", str(devnet_dir), "--json"],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert down.returncode == 0, down.stderr
    outcome = json.loads(down.stdout)
    assert set(outcome) == {"l1", "node-0", "node-1", "node-2", "node-3"}
    assert processes_mentioning(str(devnet_dir)) == []
    st = status_json(devnet_dir)
    assert st is not None
    assert not st["l1"]["running"]
    assert not any(n["running"] for n in st["nodes"])


def test_devnet_errors_are_clear(tmp_path: Path) -> None:
    foreign = tmp_path / "not-a-devnet"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("keep me")
    r = subprocess.run(
        [*seqctl(), "devnet", "up", "--dir", str(foreign)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1
    assert "not a devnet directory" in r.stderr
    assert (foreign / "precious.txt").read_text() == "keep me"

    r = subprocess.run(
        [*seqctl(), "devnet", "up", "--dir", str(tmp_path / "x"), "--stakes", "90,10,10,10"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1
    assert "5:1" in r.stderr

    r = subprocess.run(
        [*seqctl(), "devnet", "status", "--dir", str(tmp_path / "nothing")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1
    assert "devnet up" in r.stderr
