"""``seqctl stake ...`` and ``seqctl sequencers`` against a real L1 mock, with the error paths."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from sequencer_node.cli.common import TOKEN_WEI, format_tokens, parse_amount
from sequencer_node.system.commandline import EXIT_FAILED, EXIT_KEYSTORE, EXIT_UNREACHABLE
from sequencer_node.wire.crypto import SigningKey
from tests.cli.conftest import L1, seqctl
from tests.l1.helpers import OTHER, OWNERS, SEQ_KEYS, USER

Keystore = Callable[[SigningKey], Path]


def test_amounts_parse_in_tokens_and_units() -> None:
    assert parse_amount("20000") == 20_000 * TOKEN_WEI
    assert parse_amount("1.5tokens") == 3 * TOKEN_WEI // 2
    assert parse_amount("300 gwei") == 300 * 10**9
    assert parse_amount("7wei") == 7
    assert parse_amount("20_000") == 20_000 * TOKEN_WEI
    for bad in ("abc", "1.5kg", "-3", "1e-30"):
        try:
            parse_amount(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} was accepted")
    assert format_tokens(761 * 10**12) == "0.000761"
    assert format_tokens(20_000 * TOKEN_WEI) == "20000"


def test_register_lock_unlock_withdraw_claim(l1: L1, keystore: Keystore, pwfile: Path) -> None:
    user = keystore(USER)
    new = SigningKey.deterministic("cli-new-seq")
    common = ["--from", str(user), "--password-file", str(pwfile), "--l1-url", l1.url]
    r = seqctl(
        "stake", "register", *common, "--sequencer", new.public_key.hex(), "--stake", "20000",
        "--p2p-address", "127.0.0.1:9100", "--json",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["state"] == "included"
    assert out["after"]["stake"] == "20000"
    assert out["after"]["status"] == "active"
    assert l1.node.chain.sequencers[new.public_key].stake == 20_000 * TOKEN_WEI

    r = seqctl(
        "stake", "register", *common, "--sequencer", new.public_key.hex(), "--stake", "20000",
        "--p2p-address", "localhost",
    )  # fmt: skip
    assert r.exit_code == EXIT_FAILED
    assert "is not HOST:PORT" in r.stderr
    # registering twice is refused before anything is signed
    r = seqctl(
        "stake", "register", *common, "--sequencer", new.public_key.hex(), "--stake", "20000",
        "--p2p-address", "127.0.0.1:9100",
    )  # fmt: skip
    assert r.exit_code == EXIT_FAILED
    assert "already registered" in r.stderr

    seq = ["--sequencer", "0x" + new.public_key.hex()]
    r = seqctl("stake", "lock", *common, *seq, "--amount", "5000.5")
    assert r.exit_code == 0, r.output
    assert "20000.5" not in r.stdout
    assert "25000.5" in r.stdout
    r = seqctl("stake", "unlock", *common, *seq, "--amount", "5000.5", "--json")
    assert r.exit_code == 0, r.output
    after = json.loads(r.stdout)["after"]
    assert after["stake"] == "20000"
    assert [u["amount"] for u in after["unbonding"]] == ["5000.5"]
    # the unbonding period (4 epochs in the test genesis) has not passed: the L1 says so
    r = seqctl("stake", "withdraw", *common, *seq)
    assert r.exit_code == EXIT_FAILED
    assert "the L1 refused the withdraw" in r.stderr
    r = seqctl("stake", "claim", *common, *seq)
    assert r.exit_code == EXIT_FAILED
    assert "no rewards to claim" in r.stderr
    r = seqctl("stake", "unjail", *common, *seq)
    assert r.exit_code == EXIT_FAILED
    assert "the L1 refused the unjail" in r.stderr
    # once the unbonding period passed, withdraw returns the stake to the balance
    l1.mine(5 * 32)
    before = l1.node.chain.balance(USER.address)
    r = seqctl("stake", "withdraw", *common, *seq, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["after"]["unbonding"] == []
    assert l1.node.chain.balance(USER.address) > before
    r = seqctl("stake", "lock", *common, *seq, "--amount", "1", "--no-wait", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["state"] == "submitted"


def test_sequencers_table_by_epoch(l1: L1) -> None:
    r = seqctl("sequencers", "--l1-url", l1.url, "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["epoch"] == 0
    assert data["finalized"]
    rows = {row["signing_key"]: row for row in data["sequencers"]}
    first = rows["0x" + SEQ_KEYS[0].public_key.hex()]
    assert (first["epoch_stake"], first["status"], first["rewards"]) == ("40000", "active", "0")
    assert abs(sum(row["share"] for row in rows.values()) - 1) < 1e-5
    human = seqctl("sequencers", "--l1-url", l1.url)
    assert human.exit_code == 0
    assert "epoch 0 (current 0, finalized), total stake 110000 tokens" in human.stdout
    assert SEQ_KEYS[1].public_key.hex() in human.stdout
    r = seqctl("sequencers", "--l1-url", l1.url, "--epoch", "5")
    assert r.exit_code == EXIT_FAILED
    assert "epoch 5 has not started" in r.stderr


def test_rewards_by_owner_and_unknown_sequencer(l1: L1) -> None:
    r = seqctl("stake", "rewards", "--l1-url", l1.url, "--owner", "0x" + OWNERS[1].address.hex(),
               "--json")  # fmt: skip
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert [s["signing_key"] for s in data["sequencers"]] == ["0x" + SEQ_KEYS[1].public_key.hex()]
    assert data["total"] == "0"
    ghost = SigningKey.deterministic("ghost").public_key.hex()
    r = seqctl("stake", "rewards", "--l1-url", l1.url, "--sequencer", ghost)
    assert r.exit_code == EXIT_FAILED
    assert f"unknown sequencer 0x{ghost}" in r.stderr


def test_error_paths(l1: L1, keystore: Keystore, pwfile: Path, tmp_path: Path) -> None:
    other = keystore(OTHER)
    seq0 = SEQ_KEYS[0].public_key.hex()
    # unauthorised unlock: another account's stake -> exit 1 with the L1's reason
    r = seqctl("stake", "unlock", "--from", str(other), "--password-file", str(pwfile),
               "--sequencer", seq0, "--l1-url", l1.url)  # fmt: skip
    assert r.exit_code == EXIT_FAILED
    assert "the L1 refused the unlock" in r.stderr
    assert "belongs to account" in r.stderr
    assert seqctl("sequencers", "--l1-url", l1.url, "--json").exit_code == 0
    assert l1.node.chain.sequencers[SEQ_KEYS[0].public_key].stake == 40_000 * TOKEN_WEI

    # unknown sequencer
    ghost = SigningKey.deterministic("ghost").public_key.hex()
    r = seqctl("stake", "lock", "--from", str(other), "--password-file", str(pwfile),
               "--sequencer", ghost, "--amount", "1", "--l1-url", l1.url)  # fmt: skip
    assert r.exit_code == EXIT_FAILED
    assert f"unknown sequencer 0x{ghost}" in r.stderr
    assert "seqctl sequencers" in r.stderr

    # wrong password
    bad = tmp_path / "bad.txt"
    bad.write_text("nope\n")
    r = seqctl("stake", "claim", "--from", str(other), "--password-file", str(bad),
               "--sequencer", seq0, "--l1-url", l1.url)  # fmt: skip
    assert r.exit_code == EXIT_KEYSTORE
    assert "wrong password" in r.stderr

    # unreachable L1
    r = seqctl("stake", "claim", "--from", str(other), "--password-file", str(pwfile),
               "--l1-url", "http://127.0.0.1:9")  # fmt: skip
    assert r.exit_code == EXIT_UNREACHABLE
    assert "unreachable" in r.stderr
    assert "--l1-url" in r.stderr
    r = seqctl("sequencers", "--l1-url", "http://127.0.0.1:9")
    assert r.exit_code == EXIT_UNREACHABLE

    # amounts that the L1 cannot carry, and a bad key argument
    r = seqctl("stake", "lock", "--from", str(other), "--password-file", str(pwfile),
               "--sequencer", seq0, "--amount", "1wei", "--l1-url", l1.url)  # fmt: skip
    assert r.exit_code == EXIT_FAILED
    assert "whole number of gwei" in r.stderr
    r = seqctl("stake", "lock", "--from", str(other), "--sequencer", seq0, "--amount", "lots",
               "--l1-url", l1.url)  # fmt: skip
    assert r.exit_code == 2
    r = seqctl("stake", "claim", "--from", str(other), "--password-file", str(pwfile),
               "--sequencer", "zz", "--l1-url", l1.url)  # fmt: skip
    assert r.exit_code == EXIT_FAILED
    assert "neither a public key" in r.stderr
