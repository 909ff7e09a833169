"""What the ``seqctl`` commands share: passwords, output (tables, key-value, JSON), amounts,
the --l1-url/--node-url options, opening a keystore.

Exit codes and the error that ends a command are the project-wide conventions of
:mod:`sequencer_node.system.commandline`.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from sequencer_node.system.commandline import EXIT_KEYSTORE, F, fail
from sequencer_node.system.terminal import table_text
from sequencer_node.wire.crypto import SigningKey
from sequencer_node.wire.hexstr import to_hex

PASSWORD_ENV = "SEQ_PASSWORD"


def password_file_option(f: F) -> F:
    return click.option(
        "--password-file",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar="SEQ_PASSWORD_FILE",
        show_envvar=True,
        help=f"Read the keystore password from this file (first line). Without it the password "
        f"comes from ${PASSWORD_ENV}, else from a prompt. Never pass a password as a flag.",
    )(f)


def read_password(password_file: Path | None, *, confirm: bool = False) -> str:
    """The keystore password from a file, the environment or a prompt, in that order."""
    if password_file is not None:
        try:
            text = password_file.read_text().splitlines()
        except OSError as e:
            fail(f"cannot read the password file {password_file}: {e.strerror}", EXIT_KEYSTORE)
        if not text or not text[0]:
            fail(f"the password file {password_file} is empty", EXIT_KEYSTORE)
        return text[0]
    env = os.environ.get(PASSWORD_ENV)
    if env:
        return env
    if not sys.stdin.isatty():
        fail(
            f"no password: use --password-file or set ${PASSWORD_ENV} (no terminal to prompt on)",
            EXIT_KEYSTORE,
        )
    value: str = click.prompt(
        "Keystore password", hide_input=True, confirmation_prompt=confirm, err=True
    )
    return value


def emit(data: Any, as_json: bool, human: Callable[[Any], str] | None = None) -> None:
    """Print ``data`` as JSON or in the human form."""
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
    elif human is not None:
        click.echo(human(data))
    else:
        click.echo(render_kv(data))


def render_kv(data: dict[str, Any]) -> str:
    width = max((len(k) for k in data), default=0)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in data.items())


def render_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A table for standard output: drawn with ``rich`` on a terminal, plain aligned text
    otherwise (pipes, files: the columns stay easy to cut)."""
    return table_text(headers, rows)


# --- shared by the commands that talk to the L1 or a node -------------------------------------

#: 10**18 wei = 1 token (L1 balances, stake and fees are in wei).
TOKEN_WEI = 10**18
GWEI_WEI = 10**9
DEFAULT_L1_URL = "http://127.0.0.1:8545"
DEFAULT_NODE_URL = "http://127.0.0.1:8600"

_UNITS = {
    "": TOKEN_WEI,
    "token": TOKEN_WEI,
    "tokens": TOKEN_WEI,
    "eth": TOKEN_WEI,
    "gwei": GWEI_WEI,
    "wei": 1,
}


def parse_amount(text: str) -> int:
    """An L1 amount in wei from ``20000``, ``1.5``, ``20000 tokens``, ``500gwei`` or ``7wei``.

    A bare number is in tokens. Raises ValueError with what was expected.
    """
    from decimal import Decimal, InvalidOperation

    raw = text.strip().lower().replace("_", "").replace(",", "")
    i = len(raw)
    while i > 0 and raw[i - 1].isalpha():
        i -= 1
    number, unit = raw[:i].strip(), raw[i:]
    if unit not in _UNITS:
        raise ValueError(
            f"{text!r}: unknown unit {unit!r}; use tokens (default), gwei or wei, e.g. 20000 or "
            f"1.5tokens or 500gwei"
        )
    try:
        value = Decimal(number) * _UNITS[unit]
    except InvalidOperation:
        raise ValueError(f"{text!r} is not an amount; write e.g. 20000 or 0.5 or 300gwei") from None
    if value < 0:
        raise ValueError(f"{text!r}: an amount cannot be negative")
    if value != value.to_integral_value():
        raise ValueError(f"{text!r} has more precision than 1 wei")
    return int(value)


def amount_gwei(wei: int, what: str) -> int:
    """``wei`` as the whole gwei the L1 call parameters carry (error if it is not whole)."""
    if wei % GWEI_WEI:
        fail(f"{what} must be a whole number of gwei (10^-9 token); got {format_tokens(wei)}")
    if wei // GWEI_WEI >= 1 << 64:
        fail(f"{what} is too large: {format_tokens(wei)}")
    return wei // GWEI_WEI


def format_tokens(wei: int) -> str:
    """``wei`` in tokens without trailing zeros: 20000, 0.000761, 1.5."""
    whole, frac = divmod(wei, TOKEN_WEI)
    if not frac:
        return str(whole)
    return f"{whole}.{frac:018d}".rstrip("0")


class AmountType(click.ParamType):  # type: ignore[type-arg]
    """A click parameter for :func:`parse_amount` (result in wei)."""

    name = "AMOUNT"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_amount(str(value))
        except ValueError as e:
            self.fail(str(e), param, ctx)


def l1_url_option(f: F) -> F:
    return click.option(
        "--l1-url",
        default=DEFAULT_L1_URL,
        envvar="SEQ_L1_URL",
        show_envvar=True,
        show_default=True,
        help="URL of the L1 (JSON-RPC and Beacon API).",
    )(f)


def node_url_option(f: F) -> F:
    return click.option(
        "--node-url",
        default=DEFAULT_NODE_URL,
        envvar="SEQ_NODE_URL",
        show_envvar=True,
        show_default=True,
        help="URL of a sequencer node's RPC.",
    )(f)


def open_key(path: Path, password_file: Path | None) -> SigningKey:
    """Decrypt the keystore at ``path`` (exit 4 with what to do when that fails)."""
    from sequencer_node.keystore import KeystoreError, WrongPassword, load_keystore

    try:
        return load_keystore(path, read_password(password_file))
    except WrongPassword as e:
        fail(f"{e}; check the password (or --password-file / $SEQ_PASSWORD)", EXIT_KEYSTORE)
    except KeystoreError as e:
        fail(str(e), EXIT_KEYSTORE)


def short_hex(data: bytes | str, keep: int = 8) -> str:
    """``0x1234abcd…9f00`` for tables (JSON output always has the full value)."""
    text = data if isinstance(data, str) else to_hex(data)
    body = text.removeprefix("0x")
    if len(body) <= 2 * keep + 1:
        return "0x" + body
    return f"0x{body[:keep]}…{body[-4:]}"
