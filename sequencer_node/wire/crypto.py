"""Ed25519 keys for sequencer identities, votes, L1 calls and L2 user accounts.

An address is the last 20 bytes of ``sha256(b"seqnet/address" || public_key)``: 20 bytes so
that it reads like an Ethereum address in JSON-RPC tools, derived with a domain tag so that it
can never collide with any other hash in the protocol.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import threading
from collections.abc import Hashable
from typing import TypeVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from nacl.bindings import crypto_sign_open
from nacl.exceptions import BadSignatureError

from sequencer_node.wire.codec import signing_bytes
from sequencer_node.wire.hexstr import to_hex

PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
ADDRESS_BYTES = 20

M = TypeVar("M")


@functools.lru_cache(maxsize=16_384)
def address_of(public_key: bytes) -> bytes:
    """The 20-byte account address of an Ed25519 public key (memoized, bounded: the mempool,
    execution and the views ask for the same senders' addresses several times per
    transaction)."""
    if len(public_key) != PUBLIC_KEY_BYTES:
        raise ValueError(f"an Ed25519 public key has 32 bytes, got {len(public_key)}")
    return hashlib.sha256(b"seqnet/address" + public_key).digest()[-ADDRESS_BYTES:]


def format_address(address: bytes) -> str:
    return to_hex(address)


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


class SignatureCache:
    """A bounded set of keys, for remembering signatures verified good.

    Two generations: when the current one is full it becomes the old one and the oldest
    generation is dropped. Lookups and inserts are single set operations and the swap of
    generations is under a lock, so concurrent use from worker threads (the node checks
    transfers in some: shell.signature_workers) can at worst lose an entry added during a
    swap, never a generation, and never corrupt the cache.
    """

    def __init__(self, max_entries: int = 200_000) -> None:
        if max_entries < 2:
            raise ValueError("a signature cache needs room for at least 2 entries")
        self._half = max_entries // 2
        self._current: set[Hashable] = set()
        self._old: set[Hashable] = set()
        self._swap = threading.Lock()

    def __contains__(self, key: Hashable) -> bool:
        return key in self._current or key in self._old

    def add(self, key: Hashable) -> None:
        if len(self._current) >= self._half:
            with self._swap:
                if len(self._current) >= self._half:  # not swapped by another thread meanwhile
                    self._old = self._current
                    self._current = set()
        self._current.add(key)

    def __len__(self) -> int:
        return len(self._current) + len(self._old)

    def clear(self) -> None:
        self._current = set()
        self._old = set()


#: Good signatures seen by this process. One vote is checked by the node's relay filter, by
#: the core, and again inside every QC that carries it; a transfer by the mempool and by every
#: block that includes it. Verification is the CPU bottleneck (~12-25k/s here), so each good
#: ``(key, signature, message)`` is verified once. Caching never changes a result: only
#: successes are kept, keyed by a digest of all three, so the core stays deterministic.
SIGNATURE_CACHE = SignatureCache()


#: The library that checks signatures (the benchmark records it). libsodium (PyNaCl) verifies
#: about twice as fast as OpenSSL (``cryptography``) here (docs/benchmarks.md); every node uses
#: the same one, so that all agree on the edge cases where the two differ (libsodium refuses
#: small-order public keys and non-canonical encodings that OpenSSL may accept). Keys and
#: signing stay with ``cryptography``: Ed25519 signatures are deterministic, the same bytes.
VERIFY_LIBRARY = "libsodium (PyNaCl)"


def verify_uncached(public_key: bytes, signature: bytes, data: bytes) -> bool:
    """The Ed25519 check itself, without the cache (what one verification costs)."""
    if len(public_key) != PUBLIC_KEY_BYTES or len(signature) != SIGNATURE_BYTES:
        return False
    try:
        crypto_sign_open(signature + data, public_key)
    except (BadSignatureError, ValueError, TypeError):
        return False
    return True


def verify_openssl(public_key: bytes, signature: bytes, data: bytes) -> bool:
    """The same check with ``cryptography`` (OpenSSL): what the nodes used before; kept for
    the benchmark's comparison and the tests that pin agreement on valid signatures."""
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, data)
    except (InvalidSignature, ValueError):
        return False
    return True


def verify(public_key: bytes, signature: bytes, data: bytes) -> bool:
    """True iff ``signature`` is a valid Ed25519 signature of ``data`` by ``public_key``."""
    if len(public_key) != PUBLIC_KEY_BYTES or len(signature) != SIGNATURE_BYTES:
        return False
    key = hashlib.sha256(public_key + signature + data).digest()
    if key in SIGNATURE_CACHE:
        return True
    if not verify_uncached(public_key, signature, data):
        return False
    SIGNATURE_CACHE.add(key)
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
