"""Conventions every command line of the project shares (``seqctl``, ``sequencer-node``,
``sequencer-node follow``): exit codes, the error that ends a command, ``--json``.

Exit codes (documented in docs/cli.md):

* 0  success
* 1  the request was understood but failed (refused by L1 or the node, not found, bad data)
* 2  usage error (click's own: unknown option, missing argument)
* 3  a node or the L1 could not be reached
* 4  a keystore could not be opened (wrong password, damaged file)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import IO, Any, NoReturn, TypeVar

import click

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_KEYSTORE = 4

#: A click command function (options are applied to it by decorators).
F = TypeVar("F", bound=Callable[..., Any])


class CliError(click.ClickException):
    """An error that ends the command with a message saying what was wrong and what to do."""

    exit_code = EXIT_FAILED

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


class UsageCliError(CliError):
    exit_code = EXIT_USAGE


class UnreachableError(CliError):
    exit_code = EXIT_UNREACHABLE


class KeystoreCliError(CliError):
    exit_code = EXIT_KEYSTORE


_BY_CODE: dict[int, type[CliError]] = {
    EXIT_FAILED: CliError,
    EXIT_USAGE: UsageCliError,
    EXIT_UNREACHABLE: UnreachableError,
    EXIT_KEYSTORE: KeystoreCliError,
}


def fail(message: str, exit_code: int = EXIT_FAILED) -> NoReturn:
    """End the command: ``error: message`` on stderr and exit ``exit_code``."""
    raise _BY_CODE[exit_code](message)


def da_url_option(role: str) -> Callable[[F], F]:
    """``--da-url`` (``SEQ_DA_URL``): the external DA node (da-mock) of ``sequencer-node run``
    and ``follow``; ``role`` ends the help with what the command uses it for."""
    return click.option(
        "--da-url",
        default=None,
        envvar="SEQ_DA_URL",
        show_envvar=True,
        help=f"URL of the external DA node (da-mock){role}.",
    )


def json_option(f: F) -> F:
    return click.option(
        "--json", "as_json", is_flag=True, help="Print machine-readable JSON instead of a table."
    )(f)
