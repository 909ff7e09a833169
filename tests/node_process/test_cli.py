"""``sequencer-node run``: --check-config, exit codes and messages for bad configuration,
JSON logs. In-process (click's CliRunner); budget ~5 s."""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from sequencer_node.cli.sequencer_node_command import main
from sequencer_node.genesis import write_genesis
from sequencer_node.keystore import save_keystore
from sequencer_node.shell.logging import JsonFormatter
from tests.node_process.helpers import KEYS, PASSWORD
from tests.node_process.test_runner import GENESIS


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    key = tmp_path / "key.json"
    save_keystore(key, KEYS[0], PASSWORD, scrypt_n=1 << 10)
    pw = tmp_path / "pw.txt"
    pw.write_text(PASSWORD + "\n")
    bad_pw = tmp_path / "bad.txt"
    bad_pw.write_text("nope\n")
    genesis = tmp_path / "genesis.json"
    write_genesis(genesis, GENESIS)
    return {"key": key, "pw": pw, "bad_pw": bad_pw, "genesis": genesis, "dir": tmp_path / "data"}


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["run", *args], env={"SEQ_PASSWORD": ""})
    return result.exit_code, result.output


def base(f: dict[str, Path], **over: str) -> list[str]:
    opts = {"--data-dir": str(f["dir"]), "--key": str(f["key"]), "--password-file": str(f["pw"]),
            "--genesis": str(f["genesis"])}  # fmt: skip
    opts.update(over)
    return [x for kv in opts.items() for x in kv]


def test_check_config_prints_a_summary_and_exits_0(files: dict[str, Path]) -> None:
    code, out = run(*base(files), "--check-config")
    assert code == 0, out
    doc = json.loads(out[out.index("{") :])
    assert doc["ok"] is True
    assert doc["node_id"] == "0x" + KEYS[0].public_key.hex()
    assert doc["chain_id"] == GENESIS.chain_id


def test_the_catch_up_bound_is_an_option(files: dict[str, Path]) -> None:
    code, out = run(*base(files), "--check-config")
    assert json.loads(out[out.index("{") :])["catch_up_blocks"] == 8
    code, out = run(*base(files), "--catch-up-blocks", "0", "--check-config")
    assert code == 0, out
    assert json.loads(out[out.index("{") :])["catch_up_blocks"] == 0
    code, out = run(*base(files), "--catch-up-blocks", "-1", "--check-config")
    assert code == 2
    assert "--catch-up-blocks" in out


def test_the_signature_threads_are_an_option(files: dict[str, Path]) -> None:
    code, out = run(*base(files), "--check-config")
    assert json.loads(out[out.index("{") :])["signature_threads"] == 0  # off by default
    code, out = run(*base(files), "--signature-threads", "3", "--check-config")
    assert code == 0, out
    assert json.loads(out[out.index("{") :])["signature_threads"] == 3
    code, out = run(*base(files), "--signature-threads", "-1", "--check-config")
    assert code == 2
    assert "--signature-threads" in out


def test_wrong_password_exits_4(files: dict[str, Path]) -> None:
    code, out = run(*base(files, **{"--password-file": str(files["bad_pw"])}), "--check-config")
    assert code == 4
    assert "wrong password" in out


def test_missing_key_file_exits_4(files: dict[str, Path]) -> None:
    code, out = run(*base(files, **{"--key": str(files["dir"] / "nope.json")}), "--check-config")
    assert code == 4
    assert "does not exist" in out


def test_bad_genesis_exits_2_and_names_the_field(files: dict[str, Path]) -> None:
    doc = json.loads(files["genesis"].read_text())
    doc["validators"][0]["stake"] = "lots"
    files["genesis"].write_text(json.dumps(doc))
    code, out = run(*base(files), "--check-config")
    assert code == 2
    assert "validators[0].stake" in out


def test_bad_listen_address_exits_2(files: dict[str, Path]) -> None:
    code, out = run(*base(files), "--rpc-listen", "localhost", "--check-config")
    assert code == 2
    assert "--rpc-listen" in out


def test_unreachable_l1_exits_3_naming_the_url(files: dict[str, Path]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, out = run(*base(files), "--l1-url", f"http://127.0.0.1:{port}",
                    "--l1-start-timeout", "0.3", "--rpc-listen", "127.0.0.1:0",
                    "--p2p-listen", "127.0.0.1:0")  # fmt: skip
    assert code == 3, out
    assert f"http://127.0.0.1:{port} is unreachable: tried for" in out


def test_json_log_lines_carry_fields() -> None:
    record = logging.LogRecord("x", logging.INFO, "f", 1, "hello %s", ("there",), None)
    record.fields = {"height": 7}
    doc = json.loads(JsonFormatter().format(record))
    assert doc["msg"] == "hello there"
    assert doc["height"] == 7
    assert doc["level"] == "INFO"
