"""``da-mock``: help texts, the dev genesis, and the real process on loopback."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trio
from click.testing import CliRunner

from l1_mock.da import genesis as genesis_mod
from l1_mock.da.chain import PayForBlob
from l1_mock.da.cli import main
from sequencer_node.wire.crypto import SigningKey
from sequencer_node.wire.da.shares import user_namespace
from tests.da.test_server import pfb_json


def test_every_run_option_is_a_flag_and_an_env_var_with_help() -> None:
    out = CliRunner().invoke(main, ["run", "--help"], terminal_width=200).output
    for flag in (
        "--host", "--port", "--data-dir", "--genesis", "--chain-id", "--slot-time",
        "--retention", "--auto-produce", "--dev-endpoints", "--attestation-window",
        "--committee-key-file", "--log-level", "--max-block-shares", "--block-gas-limit",
        "--initial-base-fee", "--min-base-fee",
    ):  # fmt: skip
        assert flag in out
        env = "SEQ_DA_" + flag[2:].upper().replace("-", "_")
        assert env in out, env


def test_dev_genesis_round_trips_and_checks_input(tmp_path: Path) -> None:
    out = tmp_path / "g.json"
    key = SigningKey.deterministic("x")
    r = CliRunner().invoke(
        main,
        ["dev-genesis", "--out", str(out), "--fund", f"0x{key.address.hex()},5",
         "--committee", f"0x{key.public_key.hex()},7"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    g = genesis_mod.load(out)
    assert (key.address, 5 * 10**18) in g.balances
    assert g.committee == ((key.public_key, 7),)
    bad = CliRunner().invoke(main, ["dev-genesis", "--out", str(out), "--committee", "0x12,7"])
    assert bad.exit_code != 0
    assert "committee" in bad.output
    small = CliRunner().invoke(main, ["dev-genesis", "--out", str(out), "--block-gas-limit", "5"])
    assert small.exit_code != 0
    assert "block_gas_limit must hold a blob" in small.output
    r = CliRunner().invoke(
        main, ["dev-genesis", "--out", str(out)], env={"SEQ_DA_INITIAL_BASE_FEE": "77"}
    )
    assert r.exit_code == 0, r.output
    assert genesis_mod.load(out).config.initial_base_fee == 77
    broken = json.loads(out.read_text())
    broken["config"]["slot_time"] = "2"
    out.write_text(json.dumps(broken))
    with pytest.raises(ValueError, match="non-negative integers"):
        genesis_mod.load(out)


async def _listening_url(proc: trio.Process) -> str:
    """Read the process's stderr until it logs the URL it listens on."""
    assert proc.stderr is not None
    buf = b""
    with trio.fail_after(30):
        while True:
            chunk = await proc.stderr.receive_some(4096)
            assert chunk, "the process exited before listening: " + buf.decode(errors="replace")
            buf += chunk
            m = re.search(rb"listening on (http://\S+)", buf)
            if m:
                return m.group(1).decode()


@pytest.mark.slow
async def test_the_process_serves_survives_kill_9_and_stops_on_sigterm(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "l1_mock.da", "run", "--no-auto-produce", "--dev-endpoints"]
    env = {**os.environ, "SEQ_DA_PORT": "0", "SEQ_DA_DATA_DIR": str(tmp_path / "d")}
    user = SigningKey.deterministic("dev-0")  # funded by the dev genesis
    proc = await trio.lowlevel.open_process(cmd, env=env, stderr=subprocess.PIPE)
    try:
        async with httpx.AsyncClient(base_url=await _listening_url(proc)) as http:
            assert (await http.get("/health")).json()["ok"] is True
            p = PayForBlob(user.public_key, 0, user_namespace(b"rollup-one"), b"data", 10**4)
            p = dataclasses.replace(p, signature=user.sign(p.signing_bytes(7000)))
            r = await http.post("/v1/blobs", json=pfb_json(p))
            assert r.status_code == 200, r.text
        proc.kill()  # SIGKILL: an accepted blob must survive
        with trio.fail_after(10):
            await proc.wait()
        proc = await trio.lowlevel.open_process(cmd, env=env, stderr=subprocess.PIPE)
        async with httpx.AsyncClient(base_url=await _listening_url(proc)) as http:
            assert (await http.get("/v1/status")).json()["pool"] == 1
            assert (await http.post("/v1/dev/produce")).json()["head"] == 1
            blobs = (await http.get("/v1/blocks/1/blobs")).json()["blobs"]
            assert blobs[0]["txHash"] == "0x" + r.json()["txHash"][2:]
        proc.send_signal(signal.SIGTERM)
        with trio.fail_after(15):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            with trio.fail_after(10):
                await proc.wait()
