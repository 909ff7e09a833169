"""``seqctl keys``: create, inspect, import and export encrypted keystores."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

import click

from sequencer_node.cli.common import emit, password_file_option, read_password
from sequencer_node.devnet.accounts import DEV_ACCOUNTS, dev_key
from sequencer_node.keystore import (
    DEFAULT_SCRYPT_N,
    KeystoreError,
    WrongPassword,
    load_keystore,
    read_public_info,
    save_keystore,
)
from sequencer_node.system.commandline import EXIT_KEYSTORE, fail, json_option
from sequencer_node.system.files import atomic_write
from sequencer_node.wire.crypto import SigningKey, format_address
from sequencer_node.wire.hexstr import from_hex, to_hex

scrypt_option = click.option(
    "--scrypt-n",
    type=click.IntRange(min=1 << 10, max=1 << 20),
    default=DEFAULT_SCRYPT_N,
    show_default=True,
    envvar="SEQ_SCRYPT_N",
    show_envvar=True,
    help="scrypt cost (a power of two). Lower only for throw-away test keys.",
)


def _describe(key: SigningKey, path: Path) -> dict[str, str]:
    return {
        "path": str(path),
        "address": format_address(key.address),
        "public_key": to_hex(key.public_key),
    }


def _save(
    out: Path, key: SigningKey, password: str, description: str, scrypt_n: int, force: bool
) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        save_keystore(
            out, key, password, description=description, scrypt_n=scrypt_n, overwrite=force
        )
    except FileExistsError:
        fail(f"{out} already exists; choose another --out or pass --force to replace it")
    except KeystoreError as e:
        fail(str(e), EXIT_KEYSTORE)


def _open(path: Path, password_file: Path | None) -> SigningKey:
    try:
        return load_keystore(path, read_password(password_file))
    except WrongPassword as e:
        fail(f"{e}; check the password (or --password-file / $SEQ_PASSWORD)", EXIT_KEYSTORE)
    except KeystoreError as e:
        fail(str(e), EXIT_KEYSTORE)


@click.group()
def keys() -> None:
    """Create and manage encrypted Ed25519 keystores (sequencer and account keys)."""


@keys.command("new")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Where to write the keystore (JSON, mode 0600).",
)
@click.option("--description", default="", help="A free-text label stored in the keystore.")
@click.option("--force", is_flag=True, help="Replace an existing file at --out.")
@scrypt_option
@password_file_option
@json_option
def keys_new(
    out: Path,
    description: str,
    force: bool,
    scrypt_n: int,
    password_file: Path | None,
    as_json: bool,
) -> None:
    """Generate a new key and save it encrypted with a password."""
    password = read_password(password_file, confirm=True)
    key = SigningKey.generate()
    _save(out, key, password, description, scrypt_n, force)
    emit(_describe(key, out), as_json)


@keys.command("show")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--check-password", is_flag=True, help="Also decrypt the key to check the password.")
@password_file_option
@json_option
def keys_show(path: Path, check_password: bool, password_file: Path | None, as_json: bool) -> None:
    """Show a keystore's address and public key (no password needed)."""
    try:
        info = {"path": str(path), **read_public_info(path)}
    except KeystoreError as e:
        fail(str(e), EXIT_KEYSTORE)
    info["public_key"] = "0x" + info["public_key"].removeprefix("0x")
    if check_password:
        key = _open(path, password_file)
        info["password"] = "ok" if to_hex(key.public_key) == info["public_key"] else "mismatch"
    emit(info, as_json)


@keys.command("import")
@click.option(
    "--seed-file",
    type=click.File("r"),
    help="File holding the 32-byte private seed as 64 hex digits ('-' for stdin).",
)
@click.option(
    "--dev",
    "dev_index",
    type=click.IntRange(0, DEV_ACCOUNTS - 1),
    help="Instead of a seed: the devnet's well-known dev account N, funded on its L1 and L2 "
    "(a public key: for devnets only).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Where to write the keystore.",
)
@click.option("--description", default="", help="A free-text label stored in the keystore.")
@click.option("--force", is_flag=True, help="Replace an existing file at --out.")
@scrypt_option
@password_file_option
@json_option
def keys_import(
    seed_file: TextIO | None,
    dev_index: int | None,
    out: Path,
    description: str,
    force: bool,
    scrypt_n: int,
    password_file: Path | None,
    as_json: bool,
) -> None:
    """Import a raw Ed25519 seed (or, with --dev N, a devnet dev account) into a new encrypted
    keystore."""
    if (seed_file is None) == (dev_index is None):
        fail("say which key to import: exactly one of --seed-file FILE or --dev N")
    if dev_index is not None:
        key = dev_key(dev_index)
        description = description or f"devnet dev account {dev_index}"
    else:
        assert seed_file is not None
        key = SigningKey.from_seed(_read_seed(seed_file))
    _save(out, key, read_password(password_file, confirm=True), description, scrypt_n, force)
    emit(_describe(key, out), as_json)


def _read_seed(seed_file: TextIO) -> bytes:
    text = seed_file.read().strip()
    try:
        seed = from_hex(text)
    except ValueError:
        fail("the seed file must hold 64 hex digits (a 32-byte Ed25519 seed)")
    if len(seed) != 32:
        fail(f"the seed has {len(seed)} bytes; an Ed25519 seed has 32 (64 hex digits)")
    return seed


@keys.command("export")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the raw seed (hex) to this file, mode 0600.",
)
@click.option(
    "--stdout",
    "to_stdout",
    is_flag=True,
    help="Print the raw seed to standard output instead (careful: it is secret).",
)
@password_file_option
def keys_export(path: Path, out: Path | None, to_stdout: bool, password_file: Path | None) -> None:
    """Decrypt a keystore and export its raw seed (for backups or another tool)."""
    if (out is None) == (not to_stdout):
        fail("say where the secret goes: exactly one of --out FILE or --stdout")
    key = _open(path, password_file)
    data = key.seed().hex() + "\n"
    if to_stdout:
        sys.stdout.write(data)
        return
    assert out is not None
    try:
        atomic_write(out, data.encode(), mode=0o600, overwrite=False)
    except FileExistsError:
        fail(f"{out} already exists; refusing to overwrite a file with a secret")
    click.echo(f"seed written to {out} (mode 0600)", err=True)
