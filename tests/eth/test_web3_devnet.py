"""web3.py and eth-account as real clients of a devnet node's Ethereum JSON-RPC (``POST /``).

One single-node devnet (a real L1 mock and sequencer process) serves the module: a wallet's
type-2 and legacy transfers, their receipts, balances and nonces, the refusals a wallet must
understand (replay, wrong chain, data), and the JSON-RPC error codes for bad input.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from web3 import Web3
from web3.exceptions import Web3RPCError

from sequencer_node.devnet.accounts import ETH_DEV_FUNDING, eth_dev_accounts
from tests.devnet.helpers import free_bases, kill_mentioning, seqctl

pytestmark = pytest.mark.slow

RECEIPT_TIMEOUT_S = 60
DEV = eth_dev_accounts()


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A running one-node devnet; yields node-0's RPC URL."""
    d: Path = tmp_path_factory.mktemp("ethnet") / "devnet"
    l1, rpc, p2p = free_bases(1)
    up = subprocess.run(
        [*seqctl(), "devnet", "up", "--detach", "--no-load", "--nodes", "1", "--stakes", "100",
         "--slot-time", "1", "--dir", str(d), "--l1-port", str(l1), "--rpc-port", str(rpc),
         "--p2p-port", str(p2p)],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        # printed at start-up as anvil prints them
        printed = up.stdout + up.stderr
        assert f"(0) {DEV[0].address}" in printed
        assert f"(9) {DEV[9].private_key}" in printed
        yield f"http://127.0.0.1:{rpc}"
    finally:
        subprocess.run([*seqctl(), "devnet", "down", "--dir", str(d)], capture_output=True,
                       timeout=90)  # fmt: skip
        kill_mentioning(str(d))


@pytest.fixture(scope="module")
def w3(devnet: str) -> Any:
    return Web3(Web3.HTTPProvider(devnet, request_kwargs={"timeout": 30}))


def _rpc(url: str, body: Any) -> Any:
    r = httpx.post(url, json=body, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def _code(exc: pytest.ExceptionInfo[Web3RPCError]) -> int:
    response: Any = exc.value.rpc_response
    return int(response["error"]["code"])


def test_chain_identity_and_funded_dev_accounts(w3: Any) -> None:
    assert w3.eth.chain_id == 901
    assert w3.net.version == "901"
    assert w3.client_version.startswith("seqnet/")
    assert w3.eth.block_number >= 1
    for acct in DEV:
        assert w3.eth.get_balance(acct.address) == ETH_DEV_FUNDING
    assert DEV[0].address == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"


def test_type2_transfer_receipt_balance_and_nonce(w3: Any, devnet: str) -> None:
    sender = Account.from_key(DEV[1].private_key)
    to = "0x000000000000000000000000000000000000dEaD"
    before = w3.eth.get_balance(sender.address)
    tx = {
        "type": 2, "chainId": w3.eth.chain_id, "to": to, "value": 10**15,
        "nonce": w3.eth.get_transaction_count(sender.address, "pending"),
        "gas": w3.eth.estimate_gas({"from": sender.address, "to": to, "value": 10**15}),
        "maxPriorityFeePerGas": w3.eth.max_priority_fee,
        "maxFeePerGas": 2 * w3.eth.get_block("latest")["baseFeePerGas"] + w3.eth.max_priority_fee,
    }  # fmt: skip
    assert tx["gas"] == 21_000
    signed = sender.sign_transaction(tx)
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    assert tx_hash == signed.hash
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=RECEIPT_TIMEOUT_S,
                                                  poll_latency=0.2)  # fmt: skip
    assert receipt["status"] == 1
    assert receipt["gasUsed"] == 21_000
    assert receipt["from"] == sender.address
    fee = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert w3.eth.get_balance(to) == 10**15
    assert w3.eth.get_balance(sender.address) == before - 10**15 - fee
    assert w3.eth.get_transaction_count(sender.address) == 1
    got = w3.eth.get_transaction(tx_hash)
    assert got["blockNumber"] == receipt["blockNumber"]
    assert got["value"] == 10**15
    block = w3.eth.get_block(receipt["blockNumber"], full_transactions=True)
    assert block["hash"] == receipt["blockHash"]
    assert block["transactions"][receipt["transactionIndex"]]["hash"] == tx_hash
    assert w3.eth.get_block(block["hash"])["number"] == block["number"]
    # the node's own views know it by its Ethereum hash too
    status = httpx.get(f"{devnet}/v1/tx/{tx_hash.to_0x_hex()}", timeout=30).json()
    assert status["status"] in ("certified", "batched", "finalized")
    assert status["height"] == receipt["blockNumber"]
    listed = httpx.get(f"{devnet}/v1/blocks/{receipt['blockNumber']}", timeout=30).json()
    assert tx_hash.to_0x_hex() in [t["hash"] for t in listed["eth_transactions"]]
    account = httpx.get(f"{devnet}/v1/account/{sender.address}", timeout=30).json()
    assert account["nonce"] == 1


def test_legacy_eip155_transfer(w3: Any) -> None:
    sender = Account.from_key(DEV[2].private_key)
    to = "0x000000000000000000000000000000000000bEEF"
    signed = sender.sign_transaction({
        "chainId": 901, "nonce": 0, "to": to, "value": 77, "gas": 21_000,
        "gasPrice": w3.eth.gas_price,
    })  # fmt: skip
    receipt = w3.eth.wait_for_transaction_receipt(
        w3.eth.send_raw_transaction(signed.raw_transaction), timeout=RECEIPT_TIMEOUT_S,
        poll_latency=0.2,
    )  # fmt: skip
    assert receipt["status"] == 1
    assert receipt["type"] == 0
    assert w3.eth.get_balance(to) == 77


def test_pending_nonce_counts_the_pool_and_a_replay_is_refused(w3: Any) -> None:
    sender = Account.from_key(DEV[3].private_key)
    to = "0x0000000000000000000000000000000000000a11"
    signed = [
        sender.sign_transaction(
            {
                "type": 2,
                "chainId": 901,
                "nonce": n,
                "to": to,
                "value": 1,
                "gas": 21_000,
                "maxFeePerGas": 2 * 10**9,
                "maxPriorityFeePerGas": 10**9,
            }
        )
        for n in range(2)
    ]
    hashes = [w3.eth.send_raw_transaction(s.raw_transaction) for s in signed]
    assert w3.eth.get_transaction_count(sender.address, "pending") >= 2
    for h in hashes:
        w3.eth.wait_for_transaction_receipt(h, timeout=RECEIPT_TIMEOUT_S, poll_latency=0.2)
    assert w3.eth.get_transaction_count(sender.address, "latest") == 2
    with pytest.raises(Web3RPCError, match="nonce too low") as exc:
        w3.eth.send_raw_transaction(signed[0].raw_transaction)
    assert _code(exc) == -32000


def test_wrong_chain_and_value_transfers_only(w3: Any) -> None:
    sender = Account.from_key(DEV[4].private_key)
    base = {"type": 2, "nonce": 0, "to": "0x0000000000000000000000000000000000000B0b",
            "value": 1, "gas": 50_000, "maxFeePerGas": 2 * 10**9,
            "maxPriorityFeePerGas": 10**9}  # fmt: skip
    wrong = sender.sign_transaction({**base, "chainId": 1})
    with pytest.raises(Web3RPCError, match="invalid chain id") as exc:
        w3.eth.send_raw_transaction(wrong.raw_transaction)
    assert _code(exc) == -32000
    with_data = sender.sign_transaction({**base, "chainId": 901, "data": "0x01"})
    with pytest.raises(Web3RPCError, match="value transfers only") as exc:
        w3.eth.send_raw_transaction(with_data.raw_transaction)
    assert _code(exc) == -32003
    assert w3.eth.get_transaction_count(sender.address, "pending") == 0


def test_block_tags(w3: Any) -> None:
    latest = w3.eth.get_block("latest")["number"]
    safe = w3.eth.get_block("safe")["number"]
    finalized = w3.eth.get_block("finalized")["number"]
    assert finalized <= safe
    assert safe >= latest
    assert w3.eth.get_block("earliest")["number"] == 0
    history = w3.eth.fee_history(4, "latest", [50])
    assert len(history["baseFeePerGas"]) == len(history["gasUsedRatio"]) + 1
    assert w3.eth.gas_price >= w3.eth.max_priority_fee


def test_json_rpc_errors_and_batches(devnet: str) -> None:
    bad = [
        ({"jsonrpc": "2.0", "id": 1, "method": "eth_getBalance", "params": ["0x12", "latest"]},
         -32602),
        ({"jsonrpc": "2.0", "id": 2, "method": "eth_getBalance",
          "params": [DEV[0].address, "soon"]}, -32602),
        ({"jsonrpc": "2.0", "id": 3, "method": "eth_getTransactionReceipt", "params": ["zz"]},
         -32602),
        ({"jsonrpc": "2.0", "id": 4, "method": "eth_sendRawTransaction", "params": ["0x02c0"]},
         -32602),
        ({"jsonrpc": "2.0", "id": 5, "method": "eth_blockNumber", "params": [1]}, -32602),
        ({"jsonrpc": "2.0", "id": 6, "method": "eth_mine"}, -32601),
        ({"id": 7, "method": "eth_chainId"}, -32600),
    ]  # fmt: skip
    for body, code in bad:
        assert _rpc(devnet, body)["error"]["code"] == code, body
    r = httpx.post(devnet, content=b"{not json", timeout=30)
    assert r.json()["error"]["code"] == -32700
    assert r.json()["id"] is None
    answers = _rpc(devnet, [
        {"jsonrpc": "2.0", "id": "a", "method": "eth_chainId"},
        {"jsonrpc": "2.0", "method": "eth_chainId"},  # a notification: no answer
        {"jsonrpc": "2.0", "id": "b", "method": "nope"},
    ])  # fmt: skip
    assert [a["id"] for a in answers] == ["a", "b"]
    assert answers[0]["result"] == hex(901)
    assert _rpc(devnet, [])["error"]["code"] == -32600
    too_many = [{"jsonrpc": "2.0", "id": i, "method": "eth_chainId"} for i in range(101)]
    assert _rpc(devnet, too_many)["error"]["code"] == -32600
    assert (
        httpx.post(devnet, content=b"[" * 20 + b"]" * 20, timeout=30).json()["error"]["code"]
        == -32700
    )
    assert httpx.post(devnet, content=b"x" * (65 * 1024), timeout=30).status_code == 413


def test_load_generator_sends_ethereum_transfers(devnet: str) -> None:
    r = subprocess.run(
        [*seqctl(), "load", "--node-url", devnet, "--kind", "eth", "--rate", "20",
         "--duration", "3s", "--accounts", "4", "--drain", "60", "--json", "--quiet"],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    summary = json.loads(r.stdout)
    assert summary["kind"] == "eth"
    assert summary["accepted"] >= 50
    assert summary["rejected_total"] == 0
    assert summary["certified"] == summary["accepted"]
