"""``seqctl tx estimate``, ``tx send`` filling its fee from the estimate, ``seqctl fees show``
and the owner's ``seqctl fees set-model`` (issue 15)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from sequencer_node.core.fees import OP_ECOTONE, FeeParams, FeeState, L1FeeInfo, fee_params_of
from sequencer_node.core.ledger import FeeInput, Ledger, native_fee_view
from sequencer_node.shell.fee_views import fees_json
from sequencer_node.wire.crypto import SigningKey
from tests.cli.conftest import L1, Node, running_l1, seqctl
from tests.l1.helpers import OTHER, USER

Keystore = Callable[[SigningKey], Path]
ECOTONE = FeeParams(model=OP_ECOTONE, initial_base_fee=5_000, min_base_fee=10)
PROPOSER = SigningKey.deterministic("cli-fees-proposer")


def ecotone_doc() -> dict[str, object]:
    led = Ledger.genesis({USER.address: 10**18}, ECOTONE)
    led, _ = led.apply_block([], [], proposer=PROPOSER.public_key,
                             fee_input=FeeInput(3, (L1FeeInfo(3, 2 * 10**9, 7),)))  # fmt: skip
    return fees_json(led, 1, None)


def test_fees_view_prices_the_widest_transfer_and_names_the_vaults():
    doc = ecotone_doc()
    assert doc["model"] == "op-ecotone"
    assert doc["l1_origin"] == 3
    assert doc["l1_base_fee"] == str(2 * 10**9)
    state = Ledger.genesis({}, ECOTONE).fee_state()
    assert isinstance(state, FeeState)
    t = doc["native_transfer"]
    assert isinstance(t, dict)
    assert int(t["suggested_fee"]) > int(t["base_fee"]) + int(t["l1_data_fee"]) > 0
    assert doc["vaults"]["l1_fee_vault"]["address"] == "0x" + ECOTONE.l1_fee_vault.hex()  # type: ignore[index]
    flat = fees_json(Ledger.genesis({}), 0, None)
    assert flat["model"] == "flat"
    assert flat["native_transfer"]["suggested_fee"] == "1"
    # newer finalized L1 data prices the L1 part (the next blocks use it)
    newer = fees_json(Ledger.genesis({}, ECOTONE), 0, L1FeeInfo(9, 10**9, 10**6))
    assert newer["l1_blob_base_fee"] == str(10**6)


def test_estimate_and_send_use_the_node_estimate(
    fake_node: Node, keystore: Keystore, pwfile: Path
) -> None:
    fake = fake_node.fake
    fake.fees = ecotone_doc()
    fake.balances[USER.address] = 10**18
    user = keystore(USER)
    r = seqctl("tx", "estimate", "--from", str(user), "--to", "0x" + OTHER.address.hex(),
               "--amount", "25", "--node-url", fake_node.url, "--json")  # fmt: skip
    assert r.exit_code == 0, r.output
    est = json.loads(r.stdout)
    assert est["model"] == "op-ecotone"
    assert int(est["base_fee"]) == 21_000 * int(fake.fees["base_fee_per_gas"])  # type: ignore[call-overload]
    assert int(est["l1_data_fee"]) > 0
    base = ["--from", str(user), "--password-file", str(pwfile), "--node-url", fake_node.url]
    r = seqctl("tx", "send", *base, "--to", "0x" + OTHER.address.hex(), "--amount", "25",
               "--json")  # fmt: skip
    assert r.exit_code == 0, r.output
    sent = json.loads(r.stdout)
    assert sent["fee"] == int(est["suggested_fee"])
    tx = fake.txs[bytes.fromhex(sent["tx_hash"][2:])].tx
    # the fee covers what this very transaction needs (its L1 part was priced as the widest)
    doc = fake.fees
    need = 21_000 * int(doc["base_fee_per_gas"])  # type: ignore[call-overload]
    led = Ledger.genesis({}, ECOTONE)
    led, _ = led.apply_block([], [], proposer=PROPOSER.public_key,
                             fee_input=FeeInput(3, (L1FeeInfo(3, 2 * 10**9, 7),)))  # fmt: skip
    quote = led.fee_quote(native_fee_view(tx))
    assert not isinstance(quote, str)
    assert tx.fee >= need + quote.l1
    # --fee still wins, and a node without /v1/fees keeps the historical default of 1
    fake.fees = None
    r = seqctl("tx", "send", *base, "--to", "0x" + OTHER.address.hex(), "--amount", "1",
               "--json")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["fee"] == 1


def test_fees_show(fake_node: Node) -> None:
    fake_node.fake.fees = ecotone_doc()
    r = seqctl("fees", "show", "--node-url", fake_node.url)
    assert r.exit_code == 0, r.output
    assert "op-ecotone" in r.stdout
    assert "L1 data price per byte" in r.stdout


def test_set_model_by_the_owner_only(tmp_path: Path, keystore: Keystore, pwfile: Path) -> None:
    with running_l1(tmp_path / "l1", rollup_owner=USER.address) as l1:
        _set_model(l1, keystore, pwfile)


def _set_model(l1: L1, keystore: Keystore, pwfile: Path) -> None:
    common = ["--password-file", str(pwfile), "--l1-url", l1.url, "--model", "op-ecotone",
              "--param", "base_fee_scalar=2000", "--json"]  # fmt: skip
    r = seqctl("fees", "set-model", "--from", str(keystore(USER)), *common)
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["state"] == "included"
    record = l1.node.chain.fee_record(out["l1_block"])
    got = fee_params_of(record.fee_config)
    assert got is not None
    assert got.model == OP_ECOTONE
    assert got.base_fee_scalar == 2000
    r = seqctl("fees", "set-model", "--from", str(keystore(OTHER)), *common)
    assert r.exit_code == 1
    assert "only the rollup owner" in r.output
    r = seqctl("fees", "set-model", "--from", str(keystore(USER)), *common[:-1],
               "--param", "gas_targt=5")  # fmt: skip
    assert r.exit_code == 2
    assert "gas_targt" in r.output


def test_fees_batches_shows_the_l1_and_da_charges_beside_what_the_l2_collected(
    fake_node: Node,
) -> None:
    fake_node.fake.batches = [
        {"number": 3, "state": "accepted", "first_height": 1, "last_height": 9, "da": "extda",
         "fee_paid": "1000", "da_fee": "50", "da_fee_wei": "350", "total_cost": "1350",
         "l2_collected": {"base_fee": "10", "l1_data_fee": "2700", "priority_fee": "1"},
         "l1_fee_covered": 2.0},
        {"number": 4, "state": "posted", "first_height": 10, "last_height": 12, "da": "extda"},
    ]  # fmt: skip
    r = seqctl("fees", "batches", "--node-url", fake_node.url)
    assert r.exit_code == 0, r.output
    assert "DA fee" in r.stdout
    (line,) = [x for x in r.stdout.splitlines() if x.strip().startswith("3 ")]
    for cell in ("1-9", "extda", "1000", "50", "1350", "2700", "2.0"):
        assert cell in line.split()
    r = seqctl("fees", "batches", "--node-url", fake_node.url, "--json")
    assert [b["number"] for b in json.loads(r.stdout)] == [3]
