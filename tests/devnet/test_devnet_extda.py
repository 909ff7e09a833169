"""``seqctl devnet up --da extda`` with real processes: batches go to the DA mock; ``kill -9`` of
the DA process mid-run sends them to blobs after the failover time; the DA process started again
brings them back to extda; a follower reading only L1 + DA derives every batch, in order."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sequencer_node.devnet import extda
from sequencer_node.devnet.config import DevnetConfig
from sequencer_node.wire.codec import decode
from sequencer_node.wire.hexstr import from_hex
from sequencer_node.wire.messages import DA_KINDS, BatchHeader
from tests.devnet.helpers import (
    ROOT,
    free_bases,
    kill_mentioning,
    seqctl,
    status_json,
    wait_for,
)

pytestmark = pytest.mark.slow

FAILOVER_S = 4


@pytest.fixture
def devnet_dir(tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / "devnet"
    yield d
    kill_mentioning(str(d))


def _follow(d: Path, l1_url: str, da_url: str) -> dict[str, Any]:
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "sequencer_node",
            "follow",
            "--once",
            "--json",
            "--l1-url",
            l1_url,
            "--da-url",
            da_url,
            "--genesis",
            str(d / "genesis.json"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    out: dict[str, Any] = json.loads(r.stdout)
    return out


def _kinds(l1_url: str) -> list[str]:
    """The DA kind of every batch the L1 inbox accepted, in order."""
    body = {"jsonrpc": "2.0", "id": 1, "method": "inbox_getBatches", "params": [0, 1000]}
    rows = httpx.post(l1_url, json=body, timeout=10).json()["result"]
    return [DA_KINDS[decode(from_hex(r["header"]), BatchHeader).da_kind] for r in rows]


def test_extda_devnet_fails_over_to_blobs_when_the_da_process_dies_and_back(
    devnet_dir: Path,
) -> None:
    l1, rpc, p2p = free_bases(4)
    da_port = l1 + 90
    env = {**os.environ, "SEQ_DA_FAILOVER": str(FAILOVER_S)}  # the nodes inherit it
    ports = ["--l1-port", str(l1), "--rpc-port", str(rpc), "--p2p-port", str(p2p)]
    up = subprocess.run(
        [
            *seqctl(),
            *("devnet", "up", "--detach", "--da", "extda", "--dir", str(devnet_dir)),
            *("--slot-time", "1", "--load-rate", "3", "--da-port", str(da_port), *ports),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
        env=env,
    )
    assert up.returncode == 0, up.stdout + up.stderr
    cfg = DevnetConfig.read(devnet_dir)
    l1_url, da_url = cfg.l1_url, cfg.da_url
    state = json.loads((devnet_dir / "devnet.json").read_text())
    assert state["da"]["url"] == da_url
    wait_for("an extda batch", lambda: "extda" in _kinds(l1_url), 120, 2)

    st = status_json(devnet_dir)
    assert st is not None
    certified_before_kill = st["nodes"][0]["heads"]["certified"]["height"]
    os.kill(int(state["da"]["pid"]), signal.SIGKILL)  # the DA process dies mid-run
    before = len(_kinds(l1_url))
    wait_for(
        "a blob batch after the DA died",
        lambda: "blobs" in _kinds(l1_url)[before:],
        120,
        2,
    )
    again = subprocess.Popen(  # the operator starts it again, on its data directory
        extda.da_argv(cfg),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        n_failover = len(_kinds(l1_url))
        wait_for(
            "extda batches again once the DA is back",
            lambda: "extda" in _kinds(l1_url)[n_failover:],
            120,
            2,
        )
        final = _follow(devnet_dir, l1_url, da_url)
        assert final["ok"], final.get("error")
        derived = final["derived"]
        # every batch, in order, no gap: each starts where the previous ended
        assert [b["first_height"] for b in derived] == [
            1,
            *(b["last_height"] + 1 for b in derived[:-1]),
        ]
        # every block certified before the DA died is in the derived chain
        assert derived[-1]["last_height"] >= certified_before_kill
        kinds = [b["da"] for b in derived]
        first_blob = kinds.index("blobs")
        assert "extda" in kinds[:first_blob]
        assert "extda" in kinds[first_blob:]
    finally:
        again.kill()
        again.wait()
        subprocess.run(
            [*seqctl(), "devnet", "down", "--dir", str(devnet_dir)], timeout=120, check=False
        )
