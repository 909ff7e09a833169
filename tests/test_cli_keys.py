"""``seqctl keys``: create, show, import, export, and the error paths with their exit codes."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from sequencer_node.cli.seqctl import main
from sequencer_node.keystore import load_keystore
from sequencer_node.system.commandline import EXIT_FAILED, EXIT_KEYSTORE
from sequencer_node.wire.crypto import SigningKey, format_address

FAST = ["--scrypt-n", "1024"]


@pytest.fixture
def pwfile(tmp_path: Path) -> Path:
    p = tmp_path / "pw.txt"
    p.write_text("s3cret\n")
    return p


def run(*args: str, env: dict[str, str] | None = None, input: str | None = None):
    return CliRunner().invoke(main, list(args), env=env or {}, input=input)


def test_new_show_and_password_check(tmp_path: Path, pwfile: Path) -> None:
    out = tmp_path / "k" / "node.json"
    r = run("keys", "new", "--out", str(out), "--password-file", str(pwfile), "--json", *FAST)
    assert r.exit_code == 0, r.output
    info = json.loads(r.output)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    key = load_keystore(out, "s3cret")
    assert info["address"] == format_address(key.address)

    r = run("keys", "show", str(out), "--json")
    assert json.loads(r.output)["public_key"] == "0x" + key.public_key.hex()

    r = run("keys", "show", str(out), "--check-password", "--password-file", str(pwfile))
    assert r.exit_code == 0
    assert "password" in r.output
    assert "ok" in r.output


def test_wrong_password_exits_4_with_advice(tmp_path: Path, pwfile: Path) -> None:
    out = tmp_path / "node.json"
    assert (
        run("keys", "new", "--out", str(out), "--password-file", str(pwfile), *FAST).exit_code == 0
    )
    r = run("keys", "show", str(out), "--check-password", env={"SEQ_PASSWORD": "nope"})
    assert r.exit_code == EXIT_KEYSTORE
    assert "wrong password" in r.output


def test_refuses_to_overwrite(tmp_path: Path, pwfile: Path) -> None:
    out = tmp_path / "node.json"
    args = ["keys", "new", "--out", str(out), "--password-file", str(pwfile), *FAST]
    assert run(*args).exit_code == 0
    before = out.read_bytes()
    r = run(*args)
    assert r.exit_code == EXIT_FAILED
    assert "already exists" in r.output
    assert out.read_bytes() == before
    assert run(*args, "--force").exit_code == 0
    assert out.read_bytes() != before


def test_import_and_export_round_trip(tmp_path: Path, pwfile: Path) -> None:
    key = SigningKey.generate()
    seed = tmp_path / "seed.hex"
    seed.write_text(key.seed().hex())
    out = tmp_path / "imported.json"
    r = run(
        "keys",
        "import",
        "--seed-file",
        str(seed),
        "--out",
        str(out),
        "--password-file",
        str(pwfile),
        *FAST,
    )
    assert r.exit_code == 0, r.output
    assert load_keystore(out, "s3cret").public_key == key.public_key

    exported = tmp_path / "exported.hex"
    r = run("keys", "export", str(out), "--out", str(exported), "--password-file", str(pwfile))
    assert r.exit_code == 0, r.output
    assert exported.read_text().strip() == key.seed().hex()
    assert stat.S_IMODE(exported.stat().st_mode) == 0o600

    r = run("keys", "export", str(out), "--password-file", str(pwfile))
    assert r.exit_code == EXIT_FAILED
    assert "exactly one of --out FILE or --stdout" in r.output


def test_import_rejects_bad_seed(tmp_path: Path, pwfile: Path) -> None:
    seed = tmp_path / "seed.hex"
    seed.write_text("abcd")
    r = run(
        "keys",
        "import",
        "--seed-file",
        str(seed),
        "--out",
        str(tmp_path / "x.json"),
        "--password-file",
        str(pwfile),
        *FAST,
    )
    assert r.exit_code == EXIT_FAILED
    assert "has 2 bytes" in r.output
    assert not (tmp_path / "x.json").exists()


def test_no_password_source_without_terminal(tmp_path: Path) -> None:
    r = run("keys", "new", "--out", str(tmp_path / "x.json"), *FAST)
    assert r.exit_code == EXIT_KEYSTORE
    assert "--password-file" in r.output
    assert not (tmp_path / "x.json").exists()


def test_damaged_keystore(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    r = run("keys", "show", str(bad))
    assert r.exit_code == EXIT_KEYSTORE
    assert "not a readable keystore" in r.output


def test_import_dev_account_writes_the_devnet_funded_key(tmp_path: Path, pwfile: Path) -> None:
    # issue 14, friction 2: `seqctl keys import --dev N`
    from sequencer_node.devnet.accounts import dev_key

    out = tmp_path / "dev3.json"
    r = run("keys", "import", "--dev", "3", "--out", str(out), "--password-file", str(pwfile),
            "--json", *FAST)  # fmt: skip
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["address"] == format_address(dev_key(3).address)
    assert load_keystore(out, "s3cret").public_key == dev_key(3).public_key
    r = run("keys", "show", str(out))
    assert "0x" + dev_key(3).public_key.hex() in r.output


@pytest.mark.parametrize("flags", [[], ["--dev", "0", "--seed-file", "-"]])
def test_import_wants_exactly_one_source(tmp_path: Path, pwfile: Path, flags: list[str]) -> None:
    r = run("keys", "import", *flags, "--out", str(tmp_path / "k.json"),
            "--password-file", str(pwfile), *FAST)  # fmt: skip
    assert r.exit_code == EXIT_FAILED
    assert "exactly one of --seed-file FILE or --dev N" in r.output
