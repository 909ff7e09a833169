"""Conventions shared by every ``seqctl`` command: exit codes, errors, output, passwords.

Exit codes (documented in docs/cli.md):

* 0  success
* 1  the request was understood but failed (refused by L1 or the node, not found, bad data)
* 2  usage error (click's own: unknown option, missing argument)
* 3  a node or the L1 could not be reached
* 4  a keystore could not be opened (wrong password, damaged file)
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_KEYSTORE = 4

PASSWORD_ENV = "SEQ_PASSWORD"

F = TypeVar("F", bound=Callable[..., Any])


class CliError(click.ClickException):
    """An error that ends the command with a message saying what was wrong and what to do."""

    exit_code = EXIT_FAILED

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


class UnreachableError(CliError):
    exit_code = EXIT_UNREACHABLE


class KeystoreCliError(CliError):
    exit_code = EXIT_KEYSTORE


_BY_CODE: dict[int, type[CliError]] = {
    EXIT_FAILED: CliError,
    EXIT_UNREACHABLE: UnreachableError,
    EXIT_KEYSTORE: KeystoreCliError,
}


def fail(message: str, exit_code: int = EXIT_FAILED) -> NoReturn:
    raise _BY_CODE[exit_code](message)


def json_option(f: F) -> F:
    return click.option(
        "--json", "as_json", is_flag=True, help="Print machine-readable JSON instead of a table."
    )(f)


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
    """A plain aligned text table (no colours, so it pipes well)."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
