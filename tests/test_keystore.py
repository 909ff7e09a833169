"""Encrypted keystores: round trip, file mode, atomicity, wrong password, damaged files."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sequencer_node.keystore import (
    KeystoreError,
    WrongPassword,
    decrypt_key,
    encrypt_key,
    load_keystore,
    read_public_info,
    save_keystore,
)
from sequencer_node.wire.crypto import SigningKey, format_address

FAST_N = 1 << 10  # tests only: keep scrypt cheap


def _flip_first_byte(hex_text: str) -> str:
    return f"{int(hex_text[:2], 16) ^ 0xFF:02x}" + hex_text[2:]


@settings(max_examples=20)
@given(st.binary(min_size=32, max_size=32), st.text(min_size=1, max_size=40))
def test_round_trip(seed: bytes, password: str) -> None:
    key = SigningKey.from_seed(seed)
    doc = encrypt_key(key, password, scrypt_n=FAST_N)
    assert decrypt_key(json.loads(json.dumps(doc)), password).seed() == seed
    assert seed.hex() not in json.dumps(doc)


def test_file_is_private_and_not_overwritten(tmp_path: Path) -> None:
    key = SigningKey.generate()
    path = tmp_path / "node.json"
    save_keystore(path, key, "pw", scrypt_n=FAST_N, description="node 1")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_keystore(path, "pw").public_key == key.public_key
    info = read_public_info(path)
    assert info["address"] == format_address(key.address)
    assert info["description"] == "node 1"
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        save_keystore(path, SigningKey.generate(), "pw", scrypt_n=FAST_N)
    assert load_keystore(path, "pw").public_key == key.public_key
    assert [p.name for p in tmp_path.iterdir()] == ["node.json"]  # no temporary left behind


def test_wrong_password(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    save_keystore(path, SigningKey.generate(), "right", scrypt_n=FAST_N)
    with pytest.raises(WrongPassword, match="wrong password"):
        load_keystore(path, "wrong")


def test_empty_password_refused() -> None:
    with pytest.raises(KeystoreError, match="empty password"):
        encrypt_key(SigningKey.generate(), "", scrypt_n=FAST_N)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda d: d["crypto"].update(ciphertext=_flip_first_byte(d["crypto"]["ciphertext"])),
            "altered",
        ),
        (lambda d: d.update(public_key="00" * 32), "altered"),
        (lambda d: d["crypto"].pop("salt"), "missing or malformed"),
        (lambda d: d["crypto"].update(n=3), "out of range"),
        (lambda d: d.update(version=9), "unsupported keystore"),
    ],
)
def test_damaged_documents(tmp_path: Path, mutate, message: str) -> None:
    doc = encrypt_key(SigningKey.generate(), "pw", scrypt_n=FAST_N)
    mutate(doc)
    path = tmp_path / "k.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(KeystoreError, match=message) as info:
        load_keystore(path, "pw")
    assert not isinstance(info.value, WrongPassword)


def test_not_json_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    path.write_bytes(b"\x00garbage")
    with pytest.raises(KeystoreError, match="not valid JSON"):
        load_keystore(path, "pw")
    with pytest.raises(KeystoreError, match="no such keystore file"):
        load_keystore(tmp_path / "missing.json", "pw")
