"""Ethereum test accounts and signed transactions (eth-account, as a wallet signs them)."""

from __future__ import annotations

from typing import Any

from eth_account import Account
from eth_utils.address import to_checksum_address

from sequencer_node.wire.eth import EthTransaction

CHAIN_ID = 901
#: anvil's first dev keys (public test keys).
KEY_0 = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
KEY_1 = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
ADDR_0 = bytes.fromhex("f39fd6e51aad88f6f4ce6ab8827279cfffb92266")
ADDR_1 = bytes.fromhex("70997970c51812dc3a010c7d01b50e0d17dc79c8")
RECIPIENT = bytes.fromhex("00000000000000000000000000000000000000aa")
GWEI = 10**9


def type2(
    key: str = KEY_0, *, nonce: int = 0, to: bytes | None = RECIPIENT, value: int = 1_000,
    gas: int = 21_000, max_fee: int = 2 * GWEI, tip: int = GWEI, chain_id: int = CHAIN_ID,
    data: bytes = b"", **extra: Any,
) -> bytes:  # fmt: skip
    """A signed EIP-1559 transaction's raw bytes."""
    tx: dict[str, Any] = {
        "type": 2, "chainId": chain_id, "nonce": nonce, "value": value, "gas": gas,
        "maxFeePerGas": max_fee, "maxPriorityFeePerGas": tip, "data": data, **extra,
    }  # fmt: skip
    if to is not None:
        tx["to"] = to_checksum_address(to)
    return bytes(Account.sign_transaction(tx, key).raw_transaction)


def legacy(
    key: str = KEY_0, *, nonce: int = 0, to: bytes = RECIPIENT, value: int = 1_000,
    gas: int = 21_000, gas_price: int = GWEI, chain_id: int | None = CHAIN_ID,
) -> bytes:  # fmt: skip
    """A signed legacy transaction's raw bytes (EIP-155 unless ``chain_id`` is None)."""
    tx: dict[str, Any] = {"nonce": nonce, "to": to_checksum_address(to), "value": value, "gas": gas,
                          "gasPrice": gas_price}  # fmt: skip
    if chain_id is not None:
        tx["chainId"] = chain_id
    return bytes(Account.sign_transaction(tx, key).raw_transaction)


def eth(raw: bytes) -> EthTransaction:
    return EthTransaction(raw)
