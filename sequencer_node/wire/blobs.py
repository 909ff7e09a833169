"""EIP-4844 constants and pure blob helpers shared by the L1 mock and the node's batcher.

Every value comes from ``docs/research/eip4844.md`` (EIP-4844, EIP-7691, EIP-7892, EIP-7918 and
go-ethereum's blob schedule). Nothing here touches KZG: see :mod:`sequencer_node.wire.kzg`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

BYTES_PER_FIELD_ELEMENT = 32
FIELD_ELEMENTS_PER_BLOB = 4096
BYTES_PER_BLOB = BYTES_PER_FIELD_ELEMENT * FIELD_ELEMENTS_PER_BLOB  # 131072
BYTES_PER_COMMITMENT = 48
BYTES_PER_PROOF = 48
BLS_MODULUS = 52435875175126190479447740508185965837690552500527637822603658699938581184513
VERSIONED_HASH_VERSION_KZG = 0x01
GAS_PER_BLOB = 1 << 17
MIN_BASE_FEE_PER_BLOB_GAS = 1
#: EIP-7918 reserve price constant (Osaka on).
BLOB_BASE_COST = 1 << 13
#: Consensus-layer retention minimum (MIN_EPOCHS_FOR_BLOB_SIDECARS_REQUESTS).
MIN_EPOCHS_FOR_BLOB_SIDECARS_REQUESTS = 4096
SLOTS_PER_EPOCH = 32


@dataclass(frozen=True, slots=True)
class BlobParams:
    """One entry of the blob schedule: what a fork allows per block and per transaction."""

    fork: str
    target: int
    max: int
    update_fraction: int
    max_per_tx: int
    #: EIP-7918 reserve price in ``calc_excess_blob_gas`` (Osaka and later).
    reserve_price: bool
    #: EIP-7623 calldata floor (Prague and later).
    calldata_floor: bool

    @property
    def target_blob_gas(self) -> int:
        return self.target * GAS_PER_BLOB

    @property
    def max_blob_gas(self) -> int:
        return self.max * GAS_PER_BLOB


#: Mainnet blob schedule by fork name, oldest first. Osaka keeps Prague's numbers (geth falls
#: back to the Prague entry) but caps a transaction at 6 blobs (EIP-7594) and adds EIP-7918.
BLOB_SCHEDULE: dict[str, BlobParams] = {
    "cancun": BlobParams("cancun", 3, 6, 3338477, 6, False, False),
    "prague": BlobParams("prague", 6, 9, 5007716, 9, False, True),
    "osaka": BlobParams("osaka", 6, 9, 5007716, 6, True, True),
    "bpo1": BlobParams("bpo1", 10, 15, 8346193, 6, True, True),
    "bpo2": BlobParams("bpo2", 14, 21, 11684671, 6, True, True),
}
FORKS = tuple(BLOB_SCHEDULE)
LATEST_FORK = FORKS[-1]


def kzg_to_versioned_hash(commitment: bytes) -> bytes:
    """``0x01 || sha256(commitment)[1:]``, as Ethereum derives a blob's versioned hash."""
    if len(commitment) != BYTES_PER_COMMITMENT:
        raise ValueError(f"a KZG commitment has 48 bytes, got {len(commitment)}")
    return bytes([VERSIONED_HASH_VERSION_KZG]) + hashlib.sha256(commitment).digest()[1:]


def first_invalid_field_element(blob: bytes) -> int | None:
    """Index of the first 32-byte big-endian element >= BLS_MODULUS, or None if all are valid."""
    # An element whose top byte is below 0x73 is below the modulus (0x73ed...): check all
    # top bytes at once, and compare the full integer only for the rest.
    tops = blob[::BYTES_PER_FIELD_ELEMENT]
    if max(tops, default=0) < 0x73:
        return None
    for i, top in enumerate(tops):
        off = i * BYTES_PER_FIELD_ELEMENT
        if top >= 0x73 and (
            int.from_bytes(blob[off : off + BYTES_PER_FIELD_ELEMENT], "big") >= BLS_MODULUS
        ):
            return i
    return None


def check_blob_shape(blob: bytes) -> str | None:
    """Why ``blob`` is not a well-formed blob (size, field elements), or None if it is."""
    if len(blob) != BYTES_PER_BLOB:
        return f"a blob has {BYTES_PER_BLOB} bytes, got {len(blob)}"
    bad = first_invalid_field_element(blob)
    if bad is not None:
        return f"field element {bad} is not below the BLS modulus"
    return None


__all__ = [
    "BLOB_BASE_COST",
    "BLOB_SCHEDULE",
    "BLS_MODULUS",
    "BYTES_PER_BLOB",
    "BYTES_PER_COMMITMENT",
    "BYTES_PER_FIELD_ELEMENT",
    "BYTES_PER_PROOF",
    "FIELD_ELEMENTS_PER_BLOB",
    "FORKS",
    "GAS_PER_BLOB",
    "LATEST_FORK",
    "MIN_BASE_FEE_PER_BLOB_GAS",
    "MIN_EPOCHS_FOR_BLOB_SIDECARS_REQUESTS",
    "SLOTS_PER_EPOCH",
    "VERSIONED_HASH_VERSION_KZG",
    "BlobParams",
    "check_blob_shape",
    "first_invalid_field_element",
    "kzg_to_versioned_hash",
]
