"""Ed25519 keys for sequencer identities, votes, L1 calls and L2 user accounts.

An address is the last 20 bytes of ``sha256(b"seqnet/address" || public_key)``: 20 bytes so
that it reads like an Ethereum address in JSON-RPC tools, derived with a domain tag so that it
can never collide with any other hash in the protocol.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from typing import TypeVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sequencer_node.wire.codec import signing_bytes

PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
ADDRESS_BYTES = 20

M = TypeVar("M")


def address_of(public_key: bytes) -> bytes:
    """The 20-byte account address of an Ed25519 public key."""
    if len(public_key) != PUBLIC_KEY_BYTES:
        raise ValueError(f"an Ed25519 public key has 32 bytes, got {len(public_key)}")
    return hashlib.sha256(b"seqnet/address" + public_key).digest()[-ADDRESS_BYTES:]


def format_address(address: bytes) -> str:
    return "0x" + address.hex()


def parse_address(text: str) -> bytes:
    """Parse ``0x`` + 40 hex digits, with an error that says what was expected."""
    body = text[2:] if text.startswith(("0x", "0X")) else text
    try:
        raw = bytes.fromhex(body)
    except ValueError:
        raise ValueError(
            f"{text!r} is not hex; an address is 0x followed by 40 hex digits"
        ) from None
    if len(raw) != ADDRESS_BYTES:
        raise ValueError(f"{text!r} has {len(raw)} bytes; an address has 20 (40 hex digits)")
    return raw


class SigningKey:
    """An Ed25519 private key. The seed never leaves this object except through export."""

    __slots__ = ("_key", "public_key")

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.public_key: bytes = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.from_private_bytes(os.urandom(32)))

    @classmethod
    def from_seed(cls, seed: bytes) -> SigningKey:
        if len(seed) != 32:
            raise ValueError(f"an Ed25519 seed has 32 bytes, got {len(seed)}")
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    @classmethod
    def deterministic(cls, label: str) -> SigningKey:
        """A key derived from a label: for tests and the devnet only, never for real stake."""
        return cls.from_seed(hashlib.sha256(b"seqnet/dev-key/" + label.encode()).digest())

    def seed(self) -> bytes:
        return self._key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )

    @property
    def address(self) -> bytes:
        return address_of(self.public_key)

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)

    def __repr__(self) -> str:
        return f"SigningKey(public_key={self.public_key.hex()[:16]}...)"


def verify(public_key: bytes, signature: bytes, data: bytes) -> bool:
    """True iff ``signature`` is a valid Ed25519 signature of ``data`` by ``public_key``."""
    if len(public_key) != PUBLIC_KEY_BYTES or len(signature) != SIGNATURE_BYTES:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, data)
    except (InvalidSignature, ValueError):
        return False
    return True


def sign_message(msg: M, key: SigningKey, chain_id: int) -> M:
    """Return ``msg`` with its ``signature`` field set to ``key``'s signature on ``chain_id``."""
    sig = key.sign(signing_bytes(msg, chain_id))
    return dataclasses.replace(msg, signature=sig)  # type: ignore[type-var]


def verify_message(msg: object, public_key: bytes, chain_id: int) -> bool:
    """Check ``msg.signature`` against ``public_key`` under the message's domain and chain."""
    signature = getattr(msg, "signature", None)
    if not isinstance(signature, bytes):
        return False
    return verify(public_key, signature, signing_bytes(msg, chain_id))
