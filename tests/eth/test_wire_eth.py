"""Decoding of raw Ethereum transactions: what is accepted, what is refused and why."""

from __future__ import annotations

from typing import Any

import pytest
import rlp  # type: ignore[import-untyped]
from eth_hash.auto import keccak

from sequencer_node.wire import eth as weth
from sequencer_node.wire.codec import CodecError, decode, encode
from sequencer_node.wire.eth import (
    MAX_ETH_TX_BYTES,
    TYPE_DYNAMIC_FEE,
    TYPE_LEGACY,
    EthTransaction,
    EthTxError,
    decode_checked,
    decode_eth,
    static_refusal,
)

from .helpers import ADDR_0, ADDR_1, CHAIN_ID, GWEI, KEY_1, RECIPIENT, legacy, type2


def test_type2_decodes_with_the_wallets_hash_and_sender():
    raw = type2(KEY_1, nonce=7, value=5, gas=30_000, max_fee=3 * GWEI, tip=GWEI)
    tx = decode_eth(raw)
    assert tx.type == TYPE_DYNAMIC_FEE
    assert tx.hash == keccak(raw)
    assert tx.sender == ADDR_1
    assert (tx.chain_id, tx.nonce, tx.value, tx.gas_limit) == (CHAIN_ID, 7, 5, 30_000)
    assert (tx.max_fee_per_gas, tx.max_priority_fee_per_gas) == (3 * GWEI, GWEI)
    assert tx.to == RECIPIENT
    assert tx.max_cost == 5 + 30_000 * 3 * GWEI
    assert tx.effective_gas_price(0) == GWEI
    assert tx.effective_gas_price(int(2.5 * GWEI)) == 3 * GWEI  # capped by the max fee
    assert static_refusal(tx, CHAIN_ID) is None


def test_eip155_legacy_decodes_with_its_chain_id():
    raw = legacy(nonce=3, gas_price=5 * GWEI)
    tx = decode_eth(raw)
    assert tx.type == TYPE_LEGACY
    assert tx.sender == ADDR_0
    assert tx.chain_id == CHAIN_ID
    assert tx.v == CHAIN_ID * 2 + 35 or tx.v == CHAIN_ID * 2 + 36
    assert tx.max_fee_per_gas == tx.max_priority_fee_per_gas == 5 * GWEI
    assert tx.effective_gas_price(GWEI) == 5 * GWEI
    assert static_refusal(tx, CHAIN_ID) is None


def test_pre_eip155_legacy_is_refused_as_replayable():
    with pytest.raises(EthTxError, match="EIP-155"):
        decode_eth(legacy(chain_id=None))


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (b"", "empty"),
        (b"\x01" + rlp.encode([1, 2, 3]), "type 1 is not supported"),
        (b"\x03" + rlp.encode([1, 2, 3]), "type 3 is not supported"),
        (b"\x02" + rlp.encode([1, 2, 3]), "12 fields"),
        (b"\x02\xff", "not canonical RLP"),
        (rlp.encode([1, 2]), "9 fields"),
        (b"\x80", "neither a typed envelope"),
        (bytes(MAX_ETH_TX_BYTES + 1), "at most"),
    ],
)
def test_malformed_bytes_are_refused_with_a_reason(raw, needle):
    with pytest.raises(EthTxError, match=needle):
        decode_eth(raw)


def _resigned_fields(raw: bytes) -> list[Any]:
    fields: list[Any] = rlp.decode(raw[1:])
    return fields


def test_trailing_bytes_and_non_minimal_integers_are_refused():
    raw = type2()
    with pytest.raises(EthTxError, match="not canonical"):
        decode_eth(raw + b"\x00")
    fields = _resigned_fields(raw)
    fields[1] = b"\x00"  # nonce 0 written as a zero byte instead of the empty string
    with pytest.raises(EthTxError, match="leading zero"):
        decode_eth(b"\x02" + rlp.encode(fields))


def test_high_s_and_zero_r_signatures_are_refused():
    fields = _resigned_fields(type2())
    s = int.from_bytes(fields[11], "big")
    high = list(fields)
    high[11] = (weth.SECP256K1_N - s).to_bytes(32, "big")  # the malleated twin (EIP-2)
    high[9] = b"" if fields[9] == b"\x01" else b"\x01"
    with pytest.raises(EthTxError, match="lower half"):
        decode_eth(b"\x02" + rlp.encode(high))
    zero = list(fields)
    zero[10] = b""
    with pytest.raises(EthTxError, match="out of range"):
        decode_eth(b"\x02" + rlp.encode(zero))


def test_a_changed_field_changes_the_recovered_sender():
    fields = _resigned_fields(type2(value=1))
    fields[6] = b"\x02"  # value 1 -> 2 under the same signature
    tampered = decode_eth(b"\x02" + rlp.encode(fields))
    assert tampered.sender != ADDR_0  # somebody else's (unfunded) account, never the signer's


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (type2(chain_id=CHAIN_ID + 1), "invalid chain id"),
        (legacy(chain_id=1), "invalid chain id"),
        (type2(to=None, data=b"\x60\x00"), "contract creation is not supported"),
        (type2(data=b"\x01"), "data are not supported"),
        (
            type2(accessList=[{"address": "0x" + "11" * 20, "storageKeys": []}]),
            "access lists are not supported",
        ),
        (type2(gas=20_999), "intrinsic gas too low"),
        (type2(max_fee=GWEI, tip=2 * GWEI), "priority fee per gas higher"),
    ],
)
def test_static_refusals_name_the_reason(raw, needle):
    result = decode_checked(EthTransaction(raw), CHAIN_ID)
    assert isinstance(result, str)
    assert needle in result


def test_the_wire_message_is_bounded_and_round_trips():
    msg = EthTransaction(type2())
    assert decode(encode(msg), EthTransaction) == msg
    with pytest.raises(CodecError, match="outside"):
        decode(
            b"\x93\x0f\x01\x91\xc5" + (MAX_ETH_TX_BYTES + 1).to_bytes(2, "big")
            + bytes(MAX_ETH_TX_BYTES + 1),
            EthTransaction,
        )  # fmt: skip


def test_decoding_is_cached_and_the_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(weth, "DECODE_CACHE_SIZE", 3)
    weth._CACHE.clear()
    raws = [type2(nonce=n) for n in range(5)]
    first = decode_eth(raws[0])
    assert decode_eth(raws[0]) is first  # the second decode is the cached object
    for raw in raws:
        decode_eth(raw)
    assert len(weth._CACHE) == 3
    assert raws[0] not in weth._CACHE


def test_the_load_generators_signer_makes_the_bytes_eth_account_makes():
    raw = weth.sign_dynamic_fee(
        bytes.fromhex(KEY_1[2:]), chain_id=CHAIN_ID, nonce=7, to=RECIPIENT, value=5,
        max_priority_fee_per_gas=GWEI, max_fee_per_gas=3 * GWEI, gas_limit=30_000,
    )  # fmt: skip
    assert raw == type2(KEY_1, nonce=7, value=5, gas=30_000, max_fee=3 * GWEI, tip=GWEI)
    assert decode_eth(raw).sender == ADDR_1


def test_a_decoded_transaction_costs_two_keccaks_and_its_hash_none(monkeypatch):
    """Issue 13: a node hashed each Ethereum transaction four times (the signed payload, the
    raw bytes, the recovered key, and the raw bytes again for its hash index)."""
    calls: list[bytes] = []
    real = keccak

    def counting(data: bytes) -> bytes:
        calls.append(bytes(data))
        return real(data)

    decode_eth(type2(nonce=40))  # the sender's key is now known
    weth._CACHE.clear()
    monkeypatch.setattr(weth, "keccak", counting)
    raw = type2(nonce=41)
    tx = decode_eth(raw)
    assert len(calls) == 2  # the signed payload and the transaction hash
    assert weth.eth_tx_hash(EthTransaction(raw)) == tx.hash == keccak(raw)
    assert len(calls) == 2  # the hash of a decoded transaction is the cached one
