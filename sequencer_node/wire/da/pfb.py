"""A pay-for-blob: the signed submission of one blob to the DA chain. Pure.

Shared by the DA mock (which checks it) and the node's DA client (which signs it). The
signature is Ed25519 over ``seqnet/da/v1/pfb || 0x00 || da_chain_id || signer || nonce ||
max_fee_per_gas || namespace || len(data) || sha256(data)``; the gas is
``PFB_BASE_GAS + GAS_PER_BLOB_BYTE * 512 * shares`` (whole shares, as on Celestia).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sequencer_node.wire.crypto import SigningKey, address_of
from sequencer_node.wire.da.shares import SHARE_BYTES, shares_needed

PFB_DOMAIN = b"seqnet/da/v1/pfb\x00"
PFB_BASE_GAS = 65_000
GAS_PER_BLOB_BYTE = 8


def pfb_gas(data_len: int) -> int:
    return share_gas(shares_needed(data_len))


def share_gas(shares: int) -> int:
    """The gas of a pay-for-blob whose blob takes ``shares`` shares."""
    return PFB_BASE_GAS + GAS_PER_BLOB_BYTE * SHARE_BYTES * shares


def blob_fee(shares: int, base_fee: int) -> int:
    """What the DA chain charges (and burns) for a blob of ``shares`` shares in a block whose
    base fee per gas is ``base_fee``: the fee a DA pointer's blob paid."""
    return share_gas(shares) * base_fee


@dataclass(frozen=True, slots=True)
class PayForBlob:
    signer: bytes  # Ed25519 public key
    nonce: int
    namespace: bytes
    data: bytes
    max_fee_per_gas: int
    signature: bytes = b""

    def signing_bytes(self, chain_id: int) -> bytes:
        return (
            PFB_DOMAIN
            + chain_id.to_bytes(8, "big")
            + self.signer
            + self.nonce.to_bytes(8, "big")
            + self.max_fee_per_gas.to_bytes(16, "big")
            + self.namespace
            + len(self.data).to_bytes(4, "big")
            + hashlib.sha256(self.data).digest()
        )

    def tx_hash(self, chain_id: int) -> bytes:
        return hashlib.sha256(self.signing_bytes(chain_id) + self.signature).digest()

    @property
    def gas(self) -> int:
        return pfb_gas(len(self.data))

    @property
    def sender(self) -> bytes:
        return address_of(self.signer)


def signed_pfb(
    key: SigningKey, nonce: int, namespace: bytes, data: bytes, max_fee: int, chain_id: int
) -> PayForBlob:
    """A pay-for-blob signed by ``key`` for DA chain ``chain_id``."""
    p = PayForBlob(key.public_key, nonce, namespace, data, max_fee)
    sig = key.sign(p.signing_bytes(chain_id))
    return PayForBlob(p.signer, nonce, namespace, data, max_fee, sig)


def pfb_to_json(p: PayForBlob) -> dict[str, object]:
    """The ``POST /v1/blobs`` body."""
    return {
        "signer": "0x" + p.signer.hex(),
        "nonce": p.nonce,
        "namespace": "0x" + p.namespace.hex(),
        "data": "0x" + p.data.hex(),
        "maxFeePerGas": str(p.max_fee_per_gas),
        "signature": "0x" + p.signature.hex(),
    }
