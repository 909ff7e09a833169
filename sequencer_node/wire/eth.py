"""Ethereum transactions on the L2: the wire message that carries a signed raw transaction,
and its strict decoding into the fields the ledger and the RPC use.

Wallets and web3 libraries sign Ethereum transactions with secp256k1 keys. The L2 accepts two
kinds, value transfers only (no calldata, no contract creation, no access list):

* EIP-1559 *type 2*: ``0x02 || rlp([chain_id, nonce, max_priority_fee_per_gas,
  max_fee_per_gas, gas_limit, to, value, data, access_list, y_parity, r, s])``, signed over
  ``keccak256(0x02 || rlp(the first nine fields))``;
* EIP-155 *legacy*: ``rlp([nonce, gas_price, gas_limit, to, value, data, v, r, s])`` with
  ``v = chain_id * 2 + 35 + y_parity``, signed over ``keccak256(rlp([nonce, gas_price,
  gas_limit, to, value, data, chain_id, 0, 0]))``. Pre-EIP-155 signatures (``v`` of 27 or 28)
  name no chain and could be replayed from any chain: they are refused.

:class:`EthTransaction` holds only the raw signed bytes (size-bounded): the transaction hash
Ethereum clients know is ``keccak256(raw)``, and any re-encoding would change it.
:func:`decode_eth` decodes strictly (canonical RLP, minimal integers, low-s signatures as
EIP-2 requires) and recovers the sender once; the result is remembered in a bounded cache,
because a transaction is decoded by the RPC, the pool, every peer that relays it and the
block execution. The decoder is a direct one for the two transaction shapes (the ``rlp``
library's general decoder and re-encoding of the signed fields cost most of a decode), the
signed payload is cut from the raw bytes instead of re-encoded, and the sender is recovered
with libsecp256k1 through coincurve (what eth-keys calls, without its wrappers): the property
tests in ``tests/eth/test_eth_decoder.py`` hold it to the ``rlp`` library and eth-keys.
Checks that depend on the chain (its id, the account's nonce and balance) are the ledger's:
see :func:`static_refusal` for the ones that depend on nothing else.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Annotated, Any

import rlp  # type: ignore[import-untyped]
from coincurve import PublicKey
from eth_hash.auto import keccak
from eth_keys.datatypes import PrivateKey

from sequencer_node.wire.codec import Bytes, wire_message

#: Largest raw transaction accepted. A value transfer is about 110 bytes; the bound leaves room
#: for large integers and keeps a pooled or gossiped transaction small.
MAX_ETH_TX_BYTES = 512
#: Gas of a plain value transfer (the intrinsic gas of a transaction without data).
TRANSFER_GAS = 21_000
#: Highest gas limit accepted (Ethereum's own block gas limit is far below).
MAX_GAS_LIMIT = (1 << 64) - 1
TYPE_LEGACY = 0
TYPE_DYNAMIC_FEE = 2
#: Order of the secp256k1 group: r and s lie in [1, N - 1], and s <= N // 2 (EIP-2).
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
#: Decoded transactions remembered (by raw bytes); the oldest are forgotten first.
DECODE_CACHE_SIZE = 65_536
_U256 = 1 << 256


@wire_message(15)
@dataclass(frozen=True, slots=True)
class EthTransaction:
    """A signed Ethereum transaction (type 2 or EIP-155 legacy), as its sender's wallet made it."""

    raw: Annotated[bytes, Bytes(1, MAX_ETH_TX_BYTES)]


class EthTxError(ValueError):
    """Bytes that are not a well-formed, signed Ethereum value transfer; the message says why."""


@dataclass(frozen=True, slots=True)
class EthTx:
    """A decoded Ethereum transaction with its recovered sender.

    A legacy transaction's ``gas_price`` is both its ``max_fee_per_gas`` and its
    ``max_priority_fee_per_gas`` (EIP-1559's own reading of legacy transactions).
    """

    hash: bytes
    type: int
    chain_id: int
    nonce: int
    max_priority_fee_per_gas: int
    max_fee_per_gas: int
    gas_limit: int
    to: bytes | None
    value: int
    data: bytes
    access_list_items: int
    sender: bytes
    #: The signature as the JSON-RPC shows it: ``v`` is the y parity for type 2, the EIP-155
    #: value for legacy.
    v: int
    r: int
    s: int
    raw: bytes

    @property
    def max_cost(self) -> int:
        """What the sender's balance must cover: value + gas limit * max fee per gas."""
        return self.value + self.gas_limit * self.max_fee_per_gas

    def effective_gas_price(self, base_fee: int) -> int:
        """Price per gas paid at ``base_fee``: ``min(max_fee, base_fee + max_priority_fee)``."""
        return min(self.max_fee_per_gas, base_fee + self.max_priority_fee_per_gas)


def eth_tx_hash(tx: EthTransaction) -> bytes:
    """The Ethereum transaction hash: ``keccak256(raw)`` (the decoded one's, when cached: a
    node asks it of every transaction it pools, answers and indexes)."""
    hit = _CACHE.get(tx.raw)
    return hit.hash if hit is not None else bytes(keccak(tx.raw))


# --- decoding --------------------------------------------------------------------------------


def _uint(item: Any, name: str, bits: int = 256) -> int:
    """An RLP integer: big endian, minimal (no leading zero byte), below ``2**bits``."""
    if not isinstance(item, bytes):
        raise EthTxError(f"{name}: expected an integer, got a list")
    if item[:1] == b"\x00":
        raise EthTxError(f"{name}: integer with a leading zero byte (not canonical RLP)")
    value = int.from_bytes(item, "big")
    if value >= 1 << bits:
        raise EthTxError(f"{name}: {value} does not fit in {bits} bits")
    return value


def _bytes(item: Any, name: str) -> bytes:
    if not isinstance(item, bytes):
        raise EthTxError(f"{name}: expected a byte string, got a list")
    return item


def _to(item: Any) -> bytes | None:
    to = _bytes(item, "to")
    if to == b"":
        return None
    if len(to) != 20:
        raise EthTxError(f"to: an address has 20 bytes, got {len(to)}")
    return to


class _RlpError(Exception):
    """Not canonical RLP (the message says where); turned into an :class:`EthTxError`."""


def _length(data: bytes, pos: int, end: int) -> tuple[bool, int, int]:
    """The item whose prefix starts at ``pos``: (is a list, payload start, payload end).

    Canonical RLP only, as ``rlp.decode(strict=True)`` reads it: a single byte below 0x80 is
    encoded as itself, long forms only for payloads of 56 bytes or more, lengths without
    leading zero bytes, and the payload within ``end``.
    """
    if pos >= end:
        raise _RlpError("RLP string too short")
    b0 = data[pos]
    if b0 < 0x80:
        return False, pos, pos + 1
    if b0 < 0xB8:
        start, stop = pos + 1, pos + 1 + b0 - 0x80
        if b0 == 0x81 and (start >= end or data[start] < 0x80):
            raise _RlpError("a single byte below 0x80 encoded as a string")
        is_list = False
    elif b0 < 0xC0 or b0 >= 0xF8:
        ll = b0 - (0xB7 if b0 < 0xC0 else 0xF7)
        start = pos + 1 + ll
        if start > end:
            raise _RlpError("RLP string too short")
        if data[pos + 1] == 0:
            raise _RlpError("length starts with a zero byte")
        n = int.from_bytes(data[pos + 1 : start], "big")
        if n < 56:
            raise _RlpError("long form used for a payload under 56 bytes")
        stop, is_list = start + n, b0 >= 0xF8
    else:
        start, stop, is_list = pos + 1, pos + 1 + b0 - 0xC0, True
    if stop > end:
        raise _RlpError("payload runs past its end")
    return is_list, start, stop


def _rlp_item(data: bytes, pos: int, end: int) -> tuple[Any, int]:
    """The item at ``pos`` (bytes, or a list of items) and where the next one starts."""
    is_list, start, stop = _length(data, pos, end)
    if not is_list:
        return data[start:stop], stop
    items = []
    while start < stop:
        item, start = _rlp_item(data, start, stop)
        items.append(item)
    return items, stop


def _rlp_fields(data: bytes, fields: int, what: str) -> tuple[list[Any], list[int]]:
    """The items of a top-level RLP list that is all of ``data``, and where each starts.

    A direct decoder: ``rlp.decode`` with its general machinery cost 5-10x more per
    transaction (``scripts/bench_eth_path.py``); the property tests hold the two to the same
    answers on valid and mutated inputs.
    """
    try:
        is_list, pos, stop = _length(data, 0, len(data))
        if stop != len(data):
            raise _RlpError(f"RLP string ends with {len(data) - stop} superfluous bytes")
        if not is_list:
            raise EthTxError(f"{what}: expected a list of {fields} fields, got a byte string")
        items: list[Any] = []
        starts: list[int] = []
        while pos < stop:
            starts.append(pos)
            item, pos = _rlp_item(data, pos, stop)
            items.append(item)
    except _RlpError as e:
        raise EthTxError(f"{what}: not canonical RLP ({e})") from None
    if len(items) != fields:
        raise EthTxError(f"{what}: expected a list of {fields} fields, got {len(items)}")
    starts.append(stop)
    return items, starts


def _list_prefix(length: int) -> bytes:
    """The RLP prefix of a list whose items' encodings take ``length`` bytes."""
    if length < 56:
        return bytes((0xC0 + length,))
    n = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes((0xF7 + len(n),)) + n


#: Recovered public key (64 bytes) -> address, for senders that send again (bounded).
_ADDRESSES: dict[bytes, bytes] = {}
ADDRESS_CACHE_SIZE = 16_384


def _recover(msg_hash: bytes, y_parity: int, r: int, s: int) -> bytes:
    """The address that signed ``msg_hash`` (libsecp256k1 through coincurve, as eth-keys'
    coincurve backend does, without its per-call validation objects)."""
    if not (1 <= r < SECP256K1_N and 1 <= s <= SECP256K1_N // 2):
        raise EthTxError("signature: r or s out of range (s must be in the lower half, EIP-2)")
    signature = r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes((y_parity,))
    try:
        public = PublicKey.from_signature_and_message(signature, msg_hash, hasher=None)
    except ValueError as e:
        raise EthTxError(f"signature: no public key recovers from it ({e})") from None
    point = public.format(compressed=False)[1:]
    address = _ADDRESSES.get(point)
    if address is None:
        if len(_ADDRESSES) >= ADDRESS_CACHE_SIZE:
            _ADDRESSES.clear()
        address = _ADDRESSES[point] = bytes(keccak(point))[12:]
    return address


def _decode_dynamic_fee(raw: bytes) -> EthTx:
    body = raw[1:]
    items, starts = _rlp_fields(body, 12, "type-2 transaction")
    chain_id = _uint(items[0], "chainId", 64)
    y_parity = _uint(items[9], "yParity", 8)
    if y_parity > 1:
        raise EthTxError(f"yParity: must be 0 or 1, got {y_parity}")
    access_list = items[8]
    if not isinstance(access_list, list):
        raise EthTxError("accessList: expected a list")
    r, s = _uint(items[10], "r"), _uint(items[11], "s")
    # The signed payload is 0x02 || rlp(the first nine fields): their canonical encodings are
    # the bytes between the list prefix and the signature, under a new list prefix.
    signed = body[starts[0] : starts[9]]
    msg_hash = bytes(keccak(b"\x02" + _list_prefix(len(signed)) + signed))
    return EthTx(
        hash=bytes(keccak(raw)),
        type=TYPE_DYNAMIC_FEE,
        chain_id=chain_id,
        nonce=_uint(items[1], "nonce", 64),
        max_priority_fee_per_gas=_uint(items[2], "maxPriorityFeePerGas"),
        max_fee_per_gas=_uint(items[3], "maxFeePerGas"),
        gas_limit=_uint(items[4], "gas", 64),
        to=_to(items[5]),
        value=_uint(items[6], "value"),
        data=_bytes(items[7], "data"),
        access_list_items=len(access_list),
        sender=_recover(msg_hash, y_parity, r, s),
        v=y_parity,
        r=r,
        s=s,
        raw=raw,
    )


def _decode_legacy(raw: bytes) -> EthTx:
    items, starts = _rlp_fields(raw, 9, "legacy transaction")
    v, r, s = _uint(items[6], "v"), _uint(items[7], "r"), _uint(items[8], "s")
    if v in (27, 28):
        raise EthTxError(
            "legacy transaction without a chain id (pre-EIP-155 signature, replayable on any "
            "chain): sign it with the chain id"
        )
    if v < 37:
        raise EthTxError(f"v: {v} is not an EIP-155 value (chain_id * 2 + 35 or + 36)")
    chain_id, y_parity = (v - 35) // 2, (v - 35) % 2
    if chain_id >= 1 << 64:
        raise EthTxError("v: the chain id it names does not fit in 64 bits")
    gas_price = _uint(items[1], "gasPrice")
    # Signed: rlp([the first six fields, chain_id, 0, 0]) (EIP-155).
    signed = raw[starts[0] : starts[6]] + _uint_rlp(chain_id) + b"\x80\x80"
    msg_hash = bytes(keccak(_list_prefix(len(signed)) + signed))
    return EthTx(
        hash=bytes(keccak(raw)),
        type=TYPE_LEGACY,
        chain_id=chain_id,
        nonce=_uint(items[0], "nonce", 64),
        max_priority_fee_per_gas=gas_price,
        max_fee_per_gas=gas_price,
        gas_limit=_uint(items[2], "gas", 64),
        to=_to(items[3]),
        value=_uint(items[4], "value"),
        data=_bytes(items[5], "data"),
        access_list_items=0,
        sender=_recover(msg_hash, y_parity, r, s),
        v=v,
        r=r,
        s=s,
        raw=raw,
    )


def _uint_rlp(n: int) -> bytes:
    """The canonical RLP of an integer below 2**64 (as a string of its minimal bytes)."""
    if 0 < n < 0x80:
        return bytes((n,))
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 + len(b),)) + b


_CACHE: OrderedDict[bytes, EthTx] = OrderedDict()


def decode_eth(raw: bytes) -> EthTx:
    """Decode a raw signed transaction and recover its sender (cached by the raw bytes).

    Raises:
        EthTxError: not a canonical, signed type-2 or EIP-155 legacy transaction.
    """
    hit = _CACHE.get(raw)
    if hit is not None:
        _CACHE.move_to_end(raw)
        return hit
    if not raw:
        raise EthTxError("empty transaction")
    if len(raw) > MAX_ETH_TX_BYTES:
        raise EthTxError(f"transaction of {len(raw)} bytes, at most {MAX_ETH_TX_BYTES}")
    first = raw[0]
    if first == TYPE_DYNAMIC_FEE:
        tx = _decode_dynamic_fee(raw)
    elif first >= 0xC0:
        tx = _decode_legacy(raw)
    elif first <= 0x7F:
        raise EthTxError(
            f"transaction type {first} is not supported (only type 2, EIP-1559, and "
            f"EIP-155 legacy transactions)"
        )
    else:
        raise EthTxError("not a transaction: neither a typed envelope nor an RLP list")
    _CACHE[raw] = tx
    if len(_CACHE) > DECODE_CACHE_SIZE:
        _CACHE.popitem(last=False)
    return tx


def static_refusal(tx: EthTx, chain_id: int) -> str | None:
    """Why ``tx`` can never run on chain ``chain_id``, whatever the state (or None).

    The L2 runs value transfers only: a transaction with calldata, an access list or no
    recipient (a contract creation) is refused with the reason.
    """
    if tx.chain_id != chain_id:
        return (
            f"invalid chain id: the transaction is signed for chain {tx.chain_id}, "
            f"this chain is {chain_id}"
        )
    if tx.to is None:
        return "contract creation is not supported: this L2 runs value transfers only"
    if tx.data:
        return "transactions with data are not supported: this L2 runs value transfers only"
    if tx.access_list_items:
        return "access lists are not supported: this L2 runs value transfers only"
    if tx.gas_limit < TRANSFER_GAS:
        return f"intrinsic gas too low: gas limit {tx.gas_limit}, a transfer needs {TRANSFER_GAS}"
    if tx.max_priority_fee_per_gas > tx.max_fee_per_gas:
        return "max priority fee per gas higher than max fee per gas"
    if tx.max_cost >= _U256:
        return "value + gas limit * max fee per gas overflows 256 bits"
    return None


def decode_checked(tx: EthTransaction, chain_id: int) -> EthTx | str:
    """The decoded transaction, or why it is refused (malformed, or never valid here)."""
    try:
        etx = decode_eth(tx.raw)
    except EthTxError as e:
        return str(e)
    return static_refusal(etx, chain_id) or etx


# --- signing (clients: the load generator, tests) ------------------------------------------------


def _int_bytes(n: int) -> bytes:
    return n.to_bytes((n.bit_length() + 7) // 8, "big")


def sign_dynamic_fee(
    private_key: bytes,
    *,
    chain_id: int,
    nonce: int,
    to: bytes,
    value: int,
    max_priority_fee_per_gas: int,
    max_fee_per_gas: int,
    gas_limit: int = TRANSFER_GAS,
) -> bytes:
    """The raw bytes of a signed EIP-1559 value transfer (what a wallet sends), made with
    eth-keys directly: the load generator signs thousands a second, eth-account's general
    path costs about 1.5 ms each."""
    fields: list[Any] = [
        _int_bytes(chain_id), _int_bytes(nonce), _int_bytes(max_priority_fee_per_gas),
        _int_bytes(max_fee_per_gas), _int_bytes(gas_limit), to, _int_bytes(value), b"", [],
    ]  # fmt: skip
    msg_hash = bytes(keccak(b"\x02" + rlp.encode(fields)))
    sig = PrivateKey(private_key).sign_msg_hash(msg_hash)
    return b"\x02" + bytes(rlp.encode([*fields, _int_bytes(sig.v), _int_bytes(sig.r),
                                         _int_bytes(sig.s)]))  # fmt: skip


__all__ = [
    "MAX_ETH_TX_BYTES",
    "TRANSFER_GAS",
    "TYPE_DYNAMIC_FEE",
    "TYPE_LEGACY",
    "EthTransaction",
    "EthTx",
    "EthTxError",
    "decode_checked",
    "decode_eth",
    "eth_tx_hash",
    "sign_dynamic_fee",
    "static_refusal",
]
