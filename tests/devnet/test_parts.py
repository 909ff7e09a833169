"""Fast tests of the devnet's parts: stakes, layout, genesis contents, process stopping."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sequencer_node.clients.l1 import L1StakeEntry, L1StakeSnapshot
from sequencer_node.devnet.accounts import load_account_key
from sequencer_node.devnet.config import DevnetConfig, DevnetError, stake_tokens
from sequencer_node.devnet.procs import (
    Child,
    adopt,
    check_ports_free,
    is_running,
    process_start_time,
    spawn,
    stop,
)
from sequencer_node.devnet.setup import (
    EXPECTED_MINED_BLOCKS,
    l1_genesis_json,
    l2_genesis_json,
    prepare_files,
)


def test_default_stakes_are_40_30_20_10_percent_within_the_l1_bounds() -> None:
    assert stake_tokens((40, 30, 20, 10)) == (80_000, 60_000, 40_000, 20_000)
    assert stake_tokens((25, 25, 25, 25)) == (20_000,) * 4
    with pytest.raises(DevnetError, match="5:1"):
        stake_tokens((60, 10))
    with pytest.raises(DevnetError, match="positive"):
        stake_tokens((10, 0))


def test_config_checks_flags_and_lays_out_ports(tmp_path: Path) -> None:
    with pytest.raises(DevnetError, match="one percentage per node"):
        DevnetConfig(tmp_path, nodes=3)
    cfg = DevnetConfig(tmp_path, l1_port=100, rpc_port=200, p2p_port=300)
    assert [cfg.rpc_url(i) for i in range(2)] == ["http://127.0.0.1:200", "http://127.0.0.1:201"]
    assert cfg.p2p_address(3) == "127.0.0.1:303"
    assert len({p for _, p in cfg.ports()}) == 1 + 2 * 4
    compose = DevnetConfig(tmp_path, advertise_host="node-{i}", same_ports=True)
    assert compose.p2p_address(2) == "node-2:9000"
    assert compose.advertised_rpc(2) == "http://node-2:8600"
    assert compose.rpc_listen(2) == "0.0.0.0:8600"
    assert DevnetConfig.from_json(json.loads(json.dumps(cfg.to_json()))) == cfg


def test_files_are_private_and_genesis_funds_every_account(tmp_path: Path) -> None:
    cfg = DevnetConfig(tmp_path / "d")
    keys = prepare_files(cfg)
    assert len(keys) == 4
    assert cfg.password_file.stat().st_mode & 0o777 == 0o600
    assert cfg.keys_dir.stat().st_mode & 0o777 == 0o700
    for i in range(4):
        assert cfg.key_file(i).stat().st_mode & 0o777 == 0o600
    # idempotent: the same keys come back
    assert [k.public_key for k in prepare_files(cfg)] == [k.public_key for k in keys]

    g = l1_genesis_json(cfg, keys, now=1_000_000.0)
    funded = set(g["balances"])
    assert {"0x" + k.address.hex() for k in keys} <= funded
    assert "0x" + load_account_key(31).address.hex() in funded
    assert g["sequencers"] == []  # they register through the staking calls
    assert g["config"]["genesis_time"] <= 1_000_000 - EXPECTED_MINED_BLOCKS * cfg.slot_time
    assert g["config"]["l2_chain_id"] == cfg.l2_chain_id

    snap = L1StakeSnapshot(
        3,
        b"\x07" * 32,
        True,
        tuple(L1StakeEntry(k.public_key, k.address, "", "", 5) for k in keys),
    )
    l2 = l2_genesis_json(cfg, keys, snap, now_ms=42)
    assert l2["stake_epoch"] == 3
    assert l2["seed"] == "0x" + "07" * 32
    assert [v["public_key"] for v in l2["validators"]] == ["0x" + k.public_key.hex() for k in keys]
    assert "0x" + load_account_key(0).address.hex() in l2["balances"]
    assert l2["params"]["sequencing_window"] == g["config"]["sequencing_window"]


def test_the_devnet_writes_a_funded_user_keystore_and_says_how_to_use_it(tmp_path: Path) -> None:
    # issue 14, friction 2: no documented way to get a funded L2 account for `seqctl tx send`
    from sequencer_node.devnet.setup import user_account_lines
    from sequencer_node.keystore import load_keystore

    cfg = DevnetConfig(tmp_path / "d")
    keys = prepare_files(cfg)
    password = cfg.password_file.read_text().splitlines()[0]
    user = load_keystore(cfg.user_key_file, password)
    assert cfg.user_key_file.stat().st_mode & 0o777 == 0o600
    snap = L1StakeSnapshot(
        0, bytes(32), True, tuple(L1StakeEntry(k.public_key, k.address, "", "", 5) for k in keys)
    )
    l2 = l2_genesis_json(cfg, keys, snap, now_ms=0)
    assert int(l2["balances"]["0x" + user.address.hex()]) > 0, "funded on L2"
    text = "\n".join(user_account_lines(cfg))
    assert str(cfg.user_key_file) in text
    assert str(cfg.password_file) in text
    assert "0x" + user.address.hex() in text
    assert "seqctl tx send --from" in text


def test_stop_escalates_to_sigkill_and_reaps(tmp_path: Path) -> None:
    # the marker is computed so that the log's "starting: <argv>" header does not contain it
    stubborn = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('rea' + 'dy-marker', flush=True); time.sleep(60)"
    )
    child = spawn("stubborn", [sys.executable, "-c", stubborn], tmp_path / "s.log")
    polite = spawn(
        "polite", [sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "p.log"
    )
    deadline = time.monotonic() + 10
    while b"ready-marker" not in (tmp_path / "s.log").read_bytes():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    outcome = stop([child, polite], deadline_s=1.0)
    assert outcome["stubborn"].startswith("killed")
    assert outcome["polite"] == "ended by SIGTERM"
    assert not child.alive()
    assert not polite.alive()


def test_a_recorded_pid_is_trusted_only_with_its_start_time() -> None:
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        st = process_start_time(p.pid)
        assert st is not None
        assert is_running(p.pid, st)
        assert not is_running(p.pid, st + 1)  # a recycled pid: another process
        recorded: Child = adopt("x", {"pid": p.pid, "start_time": st, "log": "/dev/null"})
        assert recorded.alive()
    finally:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
    assert not is_running(p.pid, st)


def test_busy_ports_are_named() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(DevnetError, match=f"{port} \\(L1\\)"):
            check_ports_free("127.0.0.1", [("L1", port)])


def test_resume_takes_new_ports_and_names_the_network_flags_it_ignores(tmp_path: Path) -> None:
    # issue 14, friction 1: `up --l1-port ...` on a stopped devnet used the stored ports
    from sequencer_node.devnet.runner import prepare_directory

    d = tmp_path / "dn"
    d.mkdir()
    DevnetConfig(directory=d).save()
    said: list[str] = []
    moved = DevnetConfig(
        directory=d, nodes=3, stakes=(34, 33, 33), l1_port=28545, rpc_port=28600, p2p_port=29000
    )
    given = frozenset({"nodes", "stakes", "l1_port", "rpc_port", "p2p_port"})
    got = prepare_directory(moved, False, said.append, given)
    assert (got.l1_port, got.rpc_port, got.p2p_port) == (28545, 28600, 29000)
    assert got.nodes == 4, "the network's shape is kept"
    assert DevnetConfig.read(d).l1_port == 28545, "the new ports are stored for status/down"
    text = "\n".join(said)
    assert "--nodes 3 (this devnet: 4)" in text
    assert "--fresh" in text
    assert "ports now: L1 28545" in text
    # flags not given keep the stored values (here: the moved ports)
    said.clear()
    again = prepare_directory(DevnetConfig(directory=d), False, said.append, frozenset())
    assert (again.l1_port, again.p2p_port) == (28545, 29000)
    assert not any("ignored" in line for line in said)
