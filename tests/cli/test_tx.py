"""``seqctl tx send|status`` against the fake node RPC, with its refusals and error paths."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from sequencer_node.system.commandline import EXIT_FAILED, EXIT_KEYSTORE, EXIT_UNREACHABLE
from sequencer_node.wire.crypto import SigningKey, verify_message
from tests.cli.conftest import Node, seqctl
from tests.cli.fakenode import CHAIN_ID
from tests.l1.helpers import OTHER, USER

Keystore = Callable[[SigningKey], Path]


def test_send_wait_and_status(fake_node: Node, keystore: Keystore, pwfile: Path) -> None:
    fake = fake_node.fake
    fake.balances[USER.address] = 1000
    fake.nonces[USER.address] = 7
    user = keystore(USER)
    base = ["--from", str(user), "--password-file", str(pwfile), "--node-url", fake_node.url]
    r = seqctl("tx", "send", *base, "--to", "0x" + OTHER.address.hex(), "--amount", "25",
               "--fee", "2", "--json")  # fmt: skip
    assert r.exit_code == 0, r.output
    sent = json.loads(r.stdout)
    assert sent["nonce"] == 7  # from /v1/account
    assert sent["chain_id"] == CHAIN_ID
    h = bytes.fromhex(sent["tx_hash"][2:])
    tx = fake.txs[h].tx
    assert (tx.amount, tx.fee, tx.to) == (25, 2, OTHER.address)
    assert verify_message(tx, USER.public_key, CHAIN_ID)

    r = seqctl("tx", "status", sent["tx_hash"], "--node-url", fake_node.url, "--wait",
               "batched", "--json")  # fmt: skip
    assert r.exit_code == 0, r.output
    st = json.loads(r.stdout)
    assert st["status"] == "batched"
    assert st["height"] is not None
    assert st["l1_block"] is not None

    # --wait follows the next transfer (to a keystore file) until it is certified
    other = keystore(OTHER)
    r = seqctl("tx", "send", *base, "--to", str(other), "--amount", "1", "--wait")
    assert r.exit_code == 0, r.output
    assert r.stdout.strip().startswith("0x")
    assert "certified at height" in r.stderr or "batched at height" in r.stderr
    assert fake.nonces[USER.address] == 9

    human = seqctl("tx", "status", sent["tx_hash"], "--node-url", fake_node.url)
    assert human.exit_code == 0
    assert "status" in human.stdout
    assert "batched" in human.stdout


def test_two_sends_in_a_row_use_the_pending_nonce(
    fake_node: Node, keystore: Keystore, pwfile: Path
) -> None:
    # issue 14, friction 3: the second send took the certified nonce and got NONCE_TOO_LOW
    fake = fake_node.fake
    fake.balances[USER.address] = 1000
    fake.nonces[USER.address] = 7
    fake.block_time = 3600.0  # nothing gets certified between the two sends
    to = "0x" + OTHER.address.hex()
    base = ["--from", str(keystore(USER)), "--password-file", str(pwfile), "--node-url",
            fake_node.url, "--to", to, "--amount", "1", "--json"]  # fmt: skip
    nonces = []
    for _ in range(2):
        r = seqctl("tx", "send", *base)
        assert r.exit_code == 0, r.output
        nonces.append(json.loads(r.stdout)["nonce"])
    assert nonces == [7, 8]


def test_refusals_and_errors(fake_node: Node, keystore: Keystore, pwfile: Path,
                             tmp_path: Path) -> None:  # fmt: skip
    fake = fake_node.fake
    fake.balances[USER.address] = 10
    fake.nonces[USER.address] = 3
    user = keystore(USER)
    base = ["--from", str(user), "--password-file", str(pwfile), "--node-url", fake_node.url,
            "--to", "0x" + OTHER.address.hex()]  # fmt: skip
    r = seqctl("tx", "send", *base, "--amount", "1", "--nonce", "1")
    assert r.exit_code == EXIT_FAILED
    assert "NONCE_TOO_LOW" in r.stderr
    assert "omit --nonce" in r.stderr
    r = seqctl("tx", "send", *base, "--amount", "100")
    assert r.exit_code == EXIT_FAILED
    assert "INSUFFICIENT_BALANCE" in r.stderr
    # a signature for another chain is refused by the node
    r = seqctl("tx", "send", *base, "--amount", "1", "--chain-id", "5")
    assert r.exit_code == EXIT_FAILED
    assert "BAD_SIGNATURE" in r.stderr
    assert not fake.txs

    fake.overload_every = 1
    r = seqctl("tx", "send", *base, "--amount", "1")
    assert r.exit_code == EXIT_FAILED
    assert "OVERLOADED" in r.stderr
    assert "retry in a moment" in r.stderr
    fake.overload_every = 0

    bad = tmp_path / "bad.txt"
    bad.write_text("wrong\n")
    r = seqctl("tx", "send", *base[:2], "--password-file", str(bad), *base[4:], "--amount", "1")
    assert r.exit_code == EXIT_KEYSTORE
    assert "wrong password" in r.stderr

    r = seqctl("tx", "send", *base[:4], "--node-url", "http://127.0.0.1:9", "--to",
               "0x" + OTHER.address.hex(), "--amount", "1")  # fmt: skip
    assert r.exit_code == EXIT_UNREACHABLE
    assert "--node-url" in r.stderr

    r = seqctl("tx", "send", *base[:6], "--to", "0x1234", "--amount", "1")
    assert r.exit_code == EXIT_FAILED
    assert "40 hex digits" in r.stderr

    unknown = "0x" + "42" * 32
    r = seqctl("tx", "status", unknown, "--node-url", fake_node.url, "--json")
    assert r.exit_code == EXIT_FAILED
    assert json.loads(r.stdout)["status"] == "unknown"
    assert "does not know transaction" in r.stderr
    r = seqctl("tx", "status", "0xnothex", "--node-url", fake_node.url)
    assert r.exit_code == EXIT_FAILED
    assert "not a transaction hash" in r.stderr
    r = seqctl("tx", "status", unknown, "--node-url", "http://127.0.0.1:9")
    assert r.exit_code == EXIT_UNREACHABLE


def test_account_shows_balance_and_nonces(fake_node: Node, keystore: Keystore) -> None:
    # issue 14, friction 6: no CLI command for an L2 balance or nonce
    fake = fake_node.fake
    fake.balances[USER.address] = 1234
    fake.nonces[USER.address] = 5
    r = seqctl("account", "0x" + USER.address.hex(), "--node-url", fake_node.url, "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert (data["balance"], data["nonce"], data["pending_nonce"]) == ("1234", 5, 5)
    r = seqctl("account", str(keystore(USER)), "--node-url", fake_node.url)
    assert r.exit_code == 0, r.output
    assert "1234" in r.stdout
    assert "next nonce" in r.stdout
    r = seqctl("account", "0x12", "--node-url", fake_node.url)
    assert r.exit_code == EXIT_FAILED


def test_a_refusal_does_not_repeat_its_code() -> None:
    # issue 14, friction 6: "INSUFFICIENT_BALANCE: insufficient_balance"
    from sequencer_node.clients.node import NodeRejected

    assert str(NodeRejected(422, "INSUFFICIENT_BALANCE", "insufficient_balance")) == (
        "INSUFFICIENT_BALANCE"
    )
    e = NodeRejected(422, "INSUFFICIENT_BALANCE", "insufficient_balance: balance 1 < 2")
    assert str(e) == "INSUFFICIENT_BALANCE: balance 1 < 2"
    assert str(NodeRejected(422, "NONCE_GAP", "nonce 9 > next 3")) == "NONCE_GAP: nonce 9 > next 3"


def test_the_node_client_checks_the_fields_it_relies_on() -> None:
    from sequencer_node.clients.node import NodeUnavailable, _shaped

    _shaped({"balance": "5", "nonce": 1}, {"balance": str, "nonce": int}, "http://n", "/v1/x")
    for bad in ({"balance": "5"}, {"balance": 5, "nonce": 1}, {"balance": "5", "nonce": True}):
        with pytest.raises(NodeUnavailable, match="is that URL a seqnet node's RPC"):
            _shaped(bad, {"balance": str, "nonce": int}, "http://n", "/v1/x")
