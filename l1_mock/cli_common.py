"""What the ``l1-mock`` and ``da-mock`` command lines share: the server's option block (host,
port, data directory, genesis file, log level, each with its ``SEQ_<SYSTEM>_*`` environment
variable), durations like ``7d``, ``--fund ADDRESS,TOKENS`` lists, and the run plumbing (open
the service, exit 2 with a message when it cannot start, serve until a signal, close its store).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

import click
import trio

F = TypeVar("F", bound=Callable[..., Any])

_DURATION = re.compile(r"([0-9]{1,12})([smhd]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(ctx: click.Context, param: click.Parameter, value: str) -> int:
    """A click callback: seconds from ``3600``, ``90m``, ``12h`` or ``7d``."""
    m = _DURATION.fullmatch(value.strip())
    if not m:
        raise click.BadParameter(f"{value!r} is not a duration like 3600, 90m, 12h or 7d")
    return int(m.group(1)) * _UNITS[m.group(2)]


def server_options(
    system: str, *, port: int, port_help: str, data_dir: str, what: str, genesis_help: str
) -> Callable[[F], F]:
    """``--host``, ``--port``, ``--data-dir`` and ``--genesis`` (as ``genesis_path``), read
    from ``SEQ_<system>_*`` too."""
    env = f"SEQ_{system}_"
    options = [
        click.option("--host", default="127.0.0.1", envvar=env + "HOST", show_envvar=True,
                     show_default=True, help="Address to listen on."),
        click.option("--port", default=port, type=click.IntRange(0, 65535), envvar=env + "PORT",
                     show_envvar=True, show_default=True, help=port_help),
        click.option("--data-dir", default=data_dir, envvar=env + "DATA_DIR", show_envvar=True,
                     show_default=True, type=click.Path(file_okay=False, path_type=Path),
                     help=f"Directory of the SQLite database; {what} resumes from it on "
                     "restart."),
        click.option("--genesis", "genesis_path", default=None, envvar=env + "GENESIS",
                     show_envvar=True, type=click.Path(dir_okay=False, path_type=Path),
                     help=genesis_help + " Ignored when the data directory holds a chain."),
    ]  # fmt: skip
    return _stack(options)


def log_level_option(system: str) -> Callable[[F], F]:
    return click.option(
        "--log-level",
        default="INFO",
        type=click.Choice(["DEBUG", "INFO", "WARNING"]),
        envvar=f"SEQ_{system}_LOG_LEVEL",
        show_envvar=True,
        show_default=True,
        help="Log verbosity.",
    )


def _stack(options: list[Callable[[F], F]]) -> Callable[[F], F]:
    def apply(f: F) -> F:
        for option in reversed(options):
            f = option(f)
        return f

    return apply


def setup_logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def parse_funds(funds: tuple[str, ...], token: int) -> tuple[tuple[bytes, int], ...]:
    """``--fund ADDRESS_HEX,TOKENS`` values as (address, amount in base units)."""
    out = []
    for spec in funds:
        addr, _, tokens = spec.partition(",")
        try:
            out.append((bytes.fromhex(addr.removeprefix("0x")), int(tokens) * token))
        except ValueError as e:
            raise click.BadParameter(
                f"--fund {spec!r}: expected ADDRESS_HEX,TOKENS ({e})"
            ) from None
    return tuple(out)


class _Service(Protocol):
    @property
    def store(self) -> Any: ...


S = TypeVar("S", bound=_Service)


def run_service(
    open_service: Callable[[], S],
    serve: Callable[[S, str, int], Awaitable[None]],
    host: str,
    port: int,
) -> None:
    """Open the service (a ValueError or RuntimeError: its message and exit status 2), serve
    it on ``host:port`` until SIGINT/SIGTERM, then close its store."""
    try:
        service = open_service()
    except (ValueError, RuntimeError) as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    try:
        trio.run(serve, service, host, port)
    finally:
        service.store.close()


__all__ = [
    "duration",
    "log_level_option",
    "parse_funds",
    "run_service",
    "server_options",
    "setup_logging",
]
