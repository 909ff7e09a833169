"""Shared helpers for the execution tests: deterministic keys and signed transfers."""

from __future__ import annotations

from sequencer_node.wire.crypto import SigningKey, sign_message
from sequencer_node.wire.messages import ForcedTransaction, Transaction

CHAIN_ID = 901
KEYS = [SigningKey.deterministic(f"exec-test-{i}") for i in range(8)]
PROPOSER = SigningKey.deterministic("exec-test-proposer")


def transfer(
    key: SigningKey,
    to: bytes,
    amount: int,
    nonce: int,
    fee: int = 1,
    chain_id: int = CHAIN_ID,
) -> Transaction:
    tx = Transaction(key.public_key, to, amount, nonce, fee, bytes(64))
    return sign_message(tx, key, chain_id)


def forced(index: int, l1_block: int, tx: Transaction) -> ForcedTransaction:
    return ForcedTransaction(index, l1_block, tx)
