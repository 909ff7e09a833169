"""Password-encrypted key files, after the idea of EIP-2335.

Format (JSON, version 1)::

    {"version": 1, "kind": "ed25519", "public_key": hex, "address": "0x..",
     "description": str,
     "crypto": {"kdf": "scrypt", "n": int, "r": int, "p": int, "salt": hex,
                "checksum": hex, "cipher": "chacha20-poly1305", "nonce": hex,
                "ciphertext": hex}}

scrypt turns the password into 64 bytes: the first 32 are the ChaCha20-Poly1305 key, the last
32 feed the checksum. The checksum tells a wrong password (checksum mismatch) apart from a
damaged file (checksum matches but the AEAD tag does not). The AEAD's associated data binds the
public key and the KDF parameters, so editing any of them is detected too.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from sequencer_node.system.files import atomic_write
from sequencer_node.wire.crypto import SigningKey, address_of, format_address

KEYSTORE_VERSION = 1
#: 2**17 * 8 * 128 bytes = 128 MiB of memory and ~0.4 s here; tests pass a smaller n.
DEFAULT_SCRYPT_N = 1 << 17
SCRYPT_R = 8
SCRYPT_P = 1
#: Refuse absurd parameters from a file before spending memory on them.
MAX_SCRYPT_N = 1 << 20


class KeystoreError(Exception):
    """A keystore that cannot be opened; the message says why and what to do."""


class WrongPassword(KeystoreError):
    pass


def _derive(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    kdf = Scrypt(salt=salt, length=64, n=n, r=r, p=p)
    return kdf.derive(password.encode("utf-8"))


def _checksum(dk: bytes) -> bytes:
    return hashlib.sha256(b"seqnet/keystore-check" + dk[32:]).digest()


def _aad(public_key: bytes, n: int, r: int, p: int, salt: bytes) -> bytes:
    return b"seqnet/keystore/v1" + public_key + b"%d/%d/%d/" % (n, r, p) + salt


def encrypt_key(
    key: SigningKey, password: str, *, description: str = "", scrypt_n: int = DEFAULT_SCRYPT_N
) -> dict[str, Any]:
    """The keystore document (a JSON-ready dict) for ``key`` under ``password``."""
    if not password:
        raise KeystoreError("refusing an empty password: a keystore must be encrypted")
    salt, nonce = os.urandom(32), os.urandom(12)
    dk = _derive(password, salt, scrypt_n, SCRYPT_R, SCRYPT_P)
    aad = _aad(key.public_key, scrypt_n, SCRYPT_R, SCRYPT_P, salt)
    ciphertext = ChaCha20Poly1305(dk[:32]).encrypt(nonce, key.seed(), aad)
    return {
        "version": KEYSTORE_VERSION,
        "kind": "ed25519",
        "public_key": key.public_key.hex(),
        "address": format_address(key.address),
        "description": description,
        "crypto": {
            "kdf": "scrypt",
            "n": scrypt_n,
            "r": SCRYPT_R,
            "p": SCRYPT_P,
            "salt": salt.hex(),
            "checksum": _checksum(dk).hex(),
            "cipher": "chacha20-poly1305",
            "nonce": nonce.hex(),
            "ciphertext": ciphertext.hex(),
        },
    }


def decrypt_key(doc: dict[str, Any], password: str) -> SigningKey:
    """Open a keystore document. Raises WrongPassword or KeystoreError (damaged document)."""
    try:
        if doc.get("version") != KEYSTORE_VERSION or doc.get("kind") != "ed25519":
            raise KeystoreError(
                f"unsupported keystore (version {doc.get('version')!r}, kind {doc.get('kind')!r})"
            )
        c = doc["crypto"]
        if c["kdf"] != "scrypt" or c["cipher"] != "chacha20-poly1305":
            raise KeystoreError(f"unsupported kdf/cipher {c['kdf']}/{c['cipher']}")
        n, r, p = int(c["n"]), int(c["r"]), int(c["p"])
        if not (2 <= n <= MAX_SCRYPT_N and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16):
            raise KeystoreError(f"scrypt parameters out of range (n={n}, r={r}, p={p})")
        salt = bytes.fromhex(c["salt"])
        nonce = bytes.fromhex(c["nonce"])
        ciphertext = bytes.fromhex(c["ciphertext"])
        checksum = bytes.fromhex(c["checksum"])
        public_key = bytes.fromhex(doc["public_key"])
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        if isinstance(e, KeystoreError):
            raise
        raise KeystoreError(f"damaged keystore: missing or malformed field ({e})") from None
    dk = _derive(password, salt, n, r, p)
    if not hmac.compare_digest(_checksum(dk), checksum):
        raise WrongPassword("wrong password for this keystore")
    try:
        seed = ChaCha20Poly1305(dk[:32]).decrypt(nonce, ciphertext, _aad(public_key, n, r, p, salt))
    except (InvalidTag, ValueError):
        raise KeystoreError(
            "damaged keystore: the password is right but the encrypted key or its header was "
            "altered; restore the file from a backup"
        ) from None
    key = SigningKey.from_seed(seed)
    if key.public_key != public_key:
        raise KeystoreError("damaged keystore: the key does not match its public key")
    if doc.get("address") not in (None, format_address(address_of(public_key))):
        raise KeystoreError("damaged keystore: the address does not match the public key")
    return key


def save_keystore(
    path: Path,
    key: SigningKey,
    password: str,
    *,
    description: str = "",
    scrypt_n: int = DEFAULT_SCRYPT_N,
    overwrite: bool = False,
) -> None:
    """Encrypt ``key`` to ``path`` (mode 0600, atomic, fsynced). Refuses to overwrite by default."""
    doc = encrypt_key(key, password, description=description, scrypt_n=scrypt_n)
    data = (json.dumps(doc, indent=2) + "\n").encode()
    atomic_write(Path(path), data, mode=0o600, overwrite=overwrite)


def load_keystore(path: Path, password: str) -> SigningKey:
    """Open the keystore at ``path``; errors name the file and the problem."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise KeystoreError(f"{path}: no such keystore file") from None
    except OSError as e:
        raise KeystoreError(f"{path}: cannot read the keystore ({e.strerror})") from None
    try:
        doc = json.loads(raw)
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
    except ValueError as e:
        raise KeystoreError(f"{path}: damaged keystore, not valid JSON ({e})") from None
    try:
        return decrypt_key(doc, password)
    except WrongPassword:
        raise WrongPassword(f"{path}: wrong password") from None
    except KeystoreError as e:
        raise KeystoreError(f"{path}: {e}") from None


def read_public_info(path: Path) -> dict[str, str]:
    """The public part of a keystore (no password needed)."""
    try:
        doc = json.loads(Path(path).read_bytes())
        return {
            "public_key": str(doc["public_key"]),
            "address": str(doc["address"]),
            "description": str(doc.get("description", "")),
        }
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise KeystoreError(f"{path}: not a readable keystore ({e})") from None
