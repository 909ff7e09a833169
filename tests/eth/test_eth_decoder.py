"""The direct decoder of :mod:`sequencer_node.wire.eth` against the libraries it replaced.

Property tests: every RLP input (encodings of generated structures, and mutations of them)
decodes to what ``rlp.decode(strict=True)`` gives or is refused where it refuses; every signed
transaction (generated fields, type 2 and EIP-155 legacy, and single-byte mutations of them)
decodes to what the reference decoder (the previous one: ``rlp`` + eth-keys, kept here) gives,
or is refused with the same error (the message up to its parenthesised detail).
"""

from __future__ import annotations

from typing import Any

import pytest
import rlp  # type: ignore[import-untyped]
from eth_hash.auto import keccak
from eth_keys.datatypes import PrivateKey, Signature
from eth_keys.exceptions import BadSignature
from eth_utils.exceptions import ValidationError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sequencer_node.wire import eth as weth
from sequencer_node.wire.eth import EthTx, EthTxError, decode_eth

KEYS = [PrivateKey(keccak(b"decoder-key-%d" % i)) for i in range(3)]

# --- the reference: the previous decoder (rlp.decode + rlp.encode + eth-keys) -------------


def _ref_fields(data: bytes, fields: int, what: str) -> list[Any]:
    try:
        items = rlp.decode(data, strict=True)
    except rlp.exceptions.DecodingError as e:
        raise EthTxError(f"{what}: not canonical RLP ({e})") from None
    if not isinstance(items, list) or len(items) != fields:
        got = len(items) if isinstance(items, list) else "a byte string"
        raise EthTxError(f"{what}: expected a list of {fields} fields, got {got}")
    return items


def _ref_recover(msg_hash: bytes, y_parity: int, r: int, s: int) -> bytes:
    if not (1 <= r < weth.SECP256K1_N and 1 <= s <= weth.SECP256K1_N // 2):
        raise EthTxError("signature: r or s out of range (s must be in the lower half, EIP-2)")
    try:
        public = Signature(vrs=(y_parity, r, s)).recover_public_key_from_msg_hash(msg_hash)
    except (BadSignature, ValidationError) as e:
        raise EthTxError(f"signature: no public key recovers from it ({e})") from None
    return bytes(public.to_canonical_address())


def _ref_type2(raw: bytes) -> EthTx:
    items = _ref_fields(raw[1:], 12, "type-2 transaction")
    u = weth._uint
    chain_id = u(items[0], "chainId", 64)
    y_parity = u(items[9], "yParity", 8)
    if y_parity > 1:
        raise EthTxError(f"yParity: must be 0 or 1, got {y_parity}")
    if not isinstance(items[8], list):
        raise EthTxError("accessList: expected a list")
    r, s = u(items[10], "r"), u(items[11], "s")
    msg_hash = bytes(keccak(b"\x02" + rlp.encode(items[:9])))
    return EthTx(
        bytes(keccak(raw)), weth.TYPE_DYNAMIC_FEE, chain_id, u(items[1], "nonce", 64),
        u(items[2], "maxPriorityFeePerGas"), u(items[3], "maxFeePerGas"), u(items[4], "gas", 64),
        weth._to(items[5]), u(items[6], "value"), weth._bytes(items[7], "data"), len(items[8]),
        _ref_recover(msg_hash, y_parity, r, s), y_parity, r, s, raw,
    )  # fmt: skip


def _ref_legacy(raw: bytes) -> EthTx:
    items = _ref_fields(raw, 9, "legacy transaction")
    u = weth._uint
    v, r, s = u(items[6], "v"), u(items[7], "r"), u(items[8], "s")
    if v in (27, 28):
        raise EthTxError("legacy transaction without a chain id (pre-EIP-155 signature, "
                         "replayable on any chain): sign it with the chain id")  # fmt: skip
    if v < 37:
        raise EthTxError(f"v: {v} is not an EIP-155 value (chain_id * 2 + 35 or + 36)")
    chain_id, y_parity = (v - 35) // 2, (v - 35) % 2
    if chain_id >= 1 << 64:
        raise EthTxError("v: the chain id it names does not fit in 64 bits")
    unsigned = [*items[:6], chain_id.to_bytes((chain_id.bit_length() + 7) // 8, "big"), b"", b""]
    price = u(items[1], "gasPrice")
    return EthTx(
        bytes(keccak(raw)), weth.TYPE_LEGACY, chain_id, u(items[0], "nonce", 64), price, price,
        u(items[2], "gas", 64), weth._to(items[3]), u(items[4], "value"),
        weth._bytes(items[5], "data"), 0,
        _ref_recover(bytes(keccak(rlp.encode(unsigned))), y_parity, r, s), v, r, s, raw,
    )  # fmt: skip


def reference_decode(raw: bytes) -> EthTx:
    if not raw:
        raise EthTxError("empty transaction")
    if len(raw) > weth.MAX_ETH_TX_BYTES:
        raise EthTxError(f"transaction of {len(raw)} bytes, at most {weth.MAX_ETH_TX_BYTES}")
    if raw[0] == 2:
        return _ref_type2(raw)
    if raw[0] >= 0xC0:
        return _ref_legacy(raw)
    if raw[0] <= 0x7F:
        raise EthTxError(f"transaction type {raw[0]} is not supported (only type 2, EIP-1559, "
                         "and EIP-155 legacy transactions)")  # fmt: skip
    raise EthTxError("not a transaction: neither a typed envelope nor an RLP list")


def _outcome(decoder: Any, raw: bytes) -> EthTx | str:
    """The decoded transaction, or the refusal's message up to its detail in parentheses."""
    weth._CACHE.clear()
    try:
        return decoder(raw)  # type: ignore[no-any-return]
    except EthTxError as e:
        return str(e).split(" (")[0]


def assert_same(raw: bytes) -> EthTx | str:
    ours, ref = _outcome(decode_eth, raw), _outcome(reference_decode, raw)
    assert ours == ref, raw.hex()
    return ours


# --- generated inputs ------------------------------------------------------------------------

_rlp_tree = st.recursive(
    st.binary(max_size=70), lambda children: st.lists(children, max_size=5), max_leaves=12
)


def _int(n: int) -> bytes:
    return n.to_bytes((n.bit_length() + 7) // 8, "big")


@st.composite
def signed_txs(draw: st.DrawFn) -> bytes:
    key = draw(st.sampled_from(KEYS))
    u64, u256 = st.integers(0, (1 << 64) - 1), st.integers(0, (1 << 256) - 1)
    small = st.integers(0, 10**6)
    nonce, gas = draw(st.one_of(small, u64)), draw(st.one_of(small, u64))
    value = draw(st.one_of(small, u256))
    to = draw(st.one_of(st.just(b""), st.binary(min_size=20, max_size=20),
                        st.binary(max_size=24)))  # fmt: skip
    data = draw(st.one_of(st.just(b""), st.binary(max_size=40)))
    if draw(st.booleans()):
        chain_id = draw(st.one_of(st.just(901), st.integers(1, (1 << 64) - 1)))
        tip, fee = draw(st.one_of(small, u256)), draw(st.one_of(small, u256))
        access = draw(st.one_of(st.just([]), st.lists(
            st.tuples(st.binary(min_size=20, max_size=20),
                      st.lists(st.binary(min_size=32, max_size=32), max_size=2)).map(list),
            max_size=2)))  # fmt: skip
        fields = [_int(chain_id), _int(nonce), _int(tip), _int(fee), _int(gas), to, _int(value),
                  data, access]  # fmt: skip
        sig = key.sign_msg_hash(keccak(b"\x02" + rlp.encode(fields)))
        return b"\x02" + bytes(rlp.encode([*fields, _int(sig.v), _int(sig.r), _int(sig.s)]))
    chain_id = draw(st.one_of(st.just(901), st.integers(1, (1 << 62) - 1)))
    price = draw(st.one_of(small, u256))
    fields = [_int(nonce), _int(price), _int(gas), to, _int(value), data]
    sig = key.sign_msg_hash(keccak(rlp.encode([*fields, _int(chain_id), b"", b""])))
    v = chain_id * 2 + 35 + sig.v
    return bytes(rlp.encode([*fields, _int(v), _int(sig.r), _int(sig.s)]))


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[bytes]) -> bytes:
    raw = bytearray(draw(base))
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "append"]))
        i = draw(st.integers(0, max(0, len(raw) - 1)))
        if op == "flip" and raw:
            raw[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and raw:
            raw[i] = draw(st.sampled_from([0x00, 0x7F, 0x80, 0x81, 0xB7, 0xB8, 0xB9, 0xBF, 0xC0,
                                           0xF7, 0xF8, 0xF9, 0xFF]))  # fmt: skip
        elif op == "insert":
            raw.insert(i, draw(st.integers(0, 255)))
        elif op == "delete" and raw:
            del raw[i]
        elif op == "truncate":
            del raw[i:]
        else:
            raw += draw(st.binary(min_size=1, max_size=3))
    return bytes(raw)


def _ours_rlp(data: bytes) -> Any:
    item, end = weth._rlp_item(data, 0, len(data))
    if end != len(data):
        raise weth._RlpError("superfluous bytes")
    return item


def _both_rlp(data: bytes) -> None:
    try:
        expected: Any = rlp.decode(data, strict=True)
    except rlp.exceptions.DecodingError:
        with pytest.raises(weth._RlpError):
            _ours_rlp(data)
        return
    assert _ours_rlp(data) == expected


# --- the properties ----------------------------------------------------------------------------

FAST = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(_rlp_tree)
def test_rlp_encodings_decode_as_the_rlp_library_decodes_them(tree: Any) -> None:
    _both_rlp(bytes(rlp.encode(tree)))


@FAST
@given(mutated(_rlp_tree.map(lambda t: bytes(rlp.encode(t)))))
def test_mutated_rlp_is_refused_where_the_rlp_library_refuses_it(data: bytes) -> None:
    _both_rlp(data)


@FAST
@given(st.binary(max_size=80))
def test_arbitrary_bytes_are_read_as_the_rlp_library_reads_them(data: bytes) -> None:
    _both_rlp(data)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(signed_txs())
def test_signed_transactions_decode_as_the_reference_decodes_them(raw: bytes) -> None:
    out = assert_same(raw)
    if isinstance(out, str):  # a field out of range (on purpose), never the encoding
        assert "canonical" not in out, out
        assert not out.startswith("signature"), out


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(signed_txs()))
def test_mutated_transactions_get_the_references_answer(raw: bytes) -> None:
    assert_same(raw)


def test_examples_of_each_refusal_class_match_the_reference() -> None:
    raw = weth.sign_dynamic_fee(KEYS[0].to_bytes(), chain_id=901, nonce=1, to=b"\x11" * 20,
                                value=1, max_priority_fee_per_gas=1, max_fee_per_gas=2)  # fmt: skip
    body = rlp.decode(raw[1:])
    cases = [
        raw,
        raw + b"\x00",
        raw[:-1],
        b"\x02\xc0",
        b"\x02\x80",
        b"\xc0",
        b"\x81\x05",
        b"\x02" + rlp.encode([*body[:9], b"\x02", *body[10:]]),  # yParity 2
        b"\x02" + rlp.encode([*body[:10], b"", body[11]]),  # r = 0
        b"\x02" + rlp.encode([*body[:8], b"x", *body[9:]]),  # accessList a string
        b"\x02" + rlp.encode([*body[:1], b"\x00", *body[2:]]),  # non-minimal nonce
        b"\x02\xf8\x05" + raw[3:],  # long form for a short payload
        b"\x02" + rlp.encode([*body[:10], b"\xff" * 32, body[11]]),  # r not on the curve?
    ]
    outcomes = [assert_same(c) for c in cases]
    assert isinstance(outcomes[0], EthTx)
    assert all(isinstance(o, str) for o in outcomes[1:])


@pytest.mark.parametrize(
    "data",
    [
        b"\xb9\x00\x40" + bytes(64),  # a long string's length with a leading zero byte
        b"\xf9\x00\x40" + b"\x80" * 64,  # the same for a list
        b"\xb8\x37" + bytes(55),  # long form for 55 bytes
        b"\xf8\x37" + b"\x80" * 55,
        b"\xb8\x38" + bytes(56),  # the shortest long string: valid
        b"\x81\x00",  # a single byte below 0x80 as a string
        b"\x81\x80",  # valid
        b"\x81",  # truncated prefix
        b"\xc2\x83ab",  # an item running past its list
        b"\xc3\x80\x80",  # a list shorter than its prefix says
        b"\xc1\x80\x80",  # superfluous bytes after the top item
        b"\xb9\x01",  # truncated length
        b"",
    ],
)
def test_rlp_corner_cases_as_the_rlp_library(data: bytes) -> None:
    _both_rlp(data)
