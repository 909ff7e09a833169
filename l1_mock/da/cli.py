"""``da-mock`` / ``python -m l1_mock.da``: the DA network mock's command line."""

from __future__ import annotations

import dataclasses
import functools
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import trio

from l1_mock.cli_common import (
    duration,
    log_level_option,
    parse_funds,
    run_service,
    server_options,
    setup_logging,
)
from l1_mock.da.chain import TOKEN, DAConfig, retention_blocks_for
from sequencer_node.wire.crypto import SigningKey

F = TypeVar("F", bound=Callable[..., Any])


_DEFAULTS = DAConfig()
#: (flag, DAConfig field, range, help) of the DA chain's configuration options.
_CONFIG_OPTIONS = [
    ("--chain-id", "chain_id", (0, 2**63 - 1),
     "DA chain id that submissions and attestations are signed for"),
    ("--slot-time", "slot_time", (1, 60), "Seconds per DA block (Celestia: about 6)"),
    ("--max-block-shares", "max_block_shares", (1, 1 << 20),
     "Most 512-byte shares per DA block"),
    ("--block-gas-limit", "block_gas_limit", (1, 1 << 62),
     "Gas per DA block; the fee market targets half of it"),
    ("--initial-base-fee", "initial_base_fee", (1, 1 << 64),
     "Base fee per gas of the first DA block"),
    ("--min-base-fee", "min_base_fee", (1, 1 << 64), "Floor of the base fee per gas"),
]  # fmt: skip


def _config_options(note: str) -> Callable[[F], F]:
    """The DA chain configuration flags, shared by ``run`` and ``dev-genesis``."""

    def apply(f: F) -> F:
        for flag, field, (lo, hi), text in reversed(_CONFIG_OPTIONS):
            f = click.option(
                flag,
                field,
                default=getattr(_DEFAULTS, field),
                type=click.IntRange(lo, hi),
                envvar="SEQ_DA_" + flag[2:].upper().replace("-", "_"),
                show_envvar=True,
                show_default=True,
                help=f"{text}{note}.",
            )(f)
        return f

    return apply


def _relayer_key_options(prefix: str) -> Callable[[F], F]:
    """``--[relayer-]key-file`` and ``--[relayer-]dev-key``: the relayer's L1 account."""

    def apply(f: F) -> F:
        env = "SEQ_DA_" + prefix.upper().replace("-", "_")
        f = click.option(
            f"--{prefix}dev-key",
            default=None,
            type=click.IntRange(0, 9),
            envvar=env + "DEV_KEY",
            show_envvar=True,
            help="Use the L1 dev genesis account dev-N (devnets only).",
        )(f)
        return click.option(
            f"--{prefix}key-file",
            default=None,
            type=click.Path(dir_okay=False, path_type=Path),
            envvar=env + "KEY_FILE",
            show_envvar=True,
            help="File holding the relayer's L1 key: an Ed25519 seed in hex.",
        )(f)

    return apply


_log_level = log_level_option("DA")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="seqnet")
def main() -> None:
    """A Celestia-like data-availability network mock for seqnet: blobs under namespaces, a
    namespaced Merkle tree per block with inclusion and completeness proofs, its own fee market
    and retention window (docs/da.md).

    Every option is also read from a SEQ_DA_* environment variable (e.g. --port from
    SEQ_DA_PORT).
    """


@main.command()
@server_options(
    "DA",
    port=26658,
    port_help="HTTP port of the DA API (0 picks a free one).",
    data_dir="./da-data",
    what="the DA chain",
    genesis_help="DA genesis JSON (see docs/da.md). Default: the dev genesis (ten funded dev "
    "accounts, a four-key dev committee).",
)
@_config_options(" (when no --genesis is given)")
@click.option(
    "--retention",
    default="30d",
    callback=duration,
    envvar="SEQ_DA_RETENTION",
    show_envvar=True,
    show_default=True,
    help="How long blob data is served (seconds, or with s/m/h/d; Celestia's "
    "sampling window is 30 days); older blob data answers 404, headers stay.",
)
@click.option(
    "--auto-produce/--no-auto-produce",
    default=True,
    envvar="SEQ_DA_AUTO_PRODUCE",
    show_envvar=True,
    show_default=True,
    help="Produce one block per slot; with --no-auto-produce only POST "
    "/v1/dev/produce makes blocks.",
)
@click.option(
    "--dev-endpoints/--no-dev-endpoints",
    default=False,
    envvar="SEQ_DA_DEV_ENDPOINTS",
    show_envvar=True,
    show_default=True,
    help="Serve POST /v1/dev/produce (tests and devnets only).",
)
@click.option(
    "--attestation-window",
    default=10,
    type=click.IntRange(0, 10_000),
    envvar="SEQ_DA_ATTESTATION_WINDOW",
    show_envvar=True,
    show_default=True,
    help="DA blocks per Blobstream-style attestation (0: serve none).",
)
@click.option(
    "--committee-key-file",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="SEQ_DA_COMMITTEE_KEY_FILE",
    show_envvar=True,
    help="File of Ed25519 seeds (hex, one per line) this process signs attestations with, "
    "as the committee's orchestrators would. Default: the four dev committee keys. Keys not "
    "in the genesis committee are ignored.",
)
@click.option(
    "--relay-l1-url",
    default=None,
    envvar="SEQ_DA_RELAY_L1_URL",
    show_envvar=True,
    help="Also relay attestations to this L1 (JSON-RPC URL), as ``da-mock relay`` does, "
    "with the --relayer-key-file or --relayer-dev-key account.",
)
@_relayer_key_options("relayer-")
@_log_level
def run(
    host: str,
    port: int,
    data_dir: Path,
    genesis_path: Path | None,
    retention: int,
    auto_produce: bool,
    dev_endpoints: bool,
    attestation_window: int,
    committee_key_file: Path | None,
    relay_l1_url: str | None,
    relayer_key_file: Path | None,
    relayer_dev_key: int | None,
    log_level: str,
    **config: int,
) -> None:  # fmt: skip
    """Run the DA mock."""
    from l1_mock.da import genesis as genesis_mod
    from l1_mock.da.server import DANode, DASettings, serve_until_signal

    setup_logging(log_level)

    def open_node() -> DANode:
        if genesis_path is not None:
            genesis = genesis_mod.load(genesis_path)
        else:
            genesis = genesis_mod.dev_genesis(DAConfig(**config))
        if not genesis.config.genesis_time:  # a fresh chain starts now, on a slot boundary
            now = int(time.time())
            t = now - now % genesis.config.slot_time
            genesis = dataclasses.replace(
                genesis, config=dataclasses.replace(genesis.config, genesis_time=t)
            )
        blocks = retention_blocks_for(retention, genesis.config.slot_time)
        keys = _committee_keys(committee_key_file)
        relay_key = None
        if relay_l1_url is not None:
            relay_key = _relayer_key(relayer_key_file, relayer_dev_key)
        settings = DASettings(
            data_dir,
            blocks,
            auto_produce,
            dev_endpoints,
            attestation_window,
            keys,
            relay_l1_url,
            relay_key,
        )
        return DANode.open(genesis, settings)

    run_service(open_node, serve_until_signal, host, port)


def _committee_keys(path: Path | None) -> tuple[SigningKey, ...]:
    from l1_mock.da import genesis as genesis_mod

    if path is None:
        n = len(genesis_mod.DEV_COMMITTEE_STAKES)
        return tuple(genesis_mod.dev_committee_key(i) for i in range(n))
    try:
        lines = [x.strip() for x in path.read_text().splitlines() if x.strip()]
        return tuple(SigningKey.from_seed(bytes.fromhex(x.removeprefix("0x"))) for x in lines)
    except (OSError, ValueError) as e:
        raise ValueError(f"--committee-key-file {path}: {e}") from None


def _relayer_key(path: Path | None, dev: int | None) -> SigningKey:
    if (path is None) == (dev is None):
        raise ValueError("give the relayer's L1 key: one of --relayer-key-file, --relayer-dev-key")
    if dev is not None:
        return SigningKey.deterministic(f"dev-{dev}")  # the L1 dev genesis's accounts
    assert path is not None
    try:
        return SigningKey.from_seed(bytes.fromhex(path.read_text().strip().removeprefix("0x")))
    except (OSError, ValueError) as e:
        raise ValueError(f"relayer key file {path}: {e}") from None


@main.command()
@click.option(
    "--da-url",
    default="http://127.0.0.1:26658",
    envvar="SEQ_DA_URL",
    show_envvar=True,
    show_default=True,
    help="The DA node whose attestations are relayed.",
)
@click.option(
    "--l1-url",
    default="http://127.0.0.1:8545",
    envvar="SEQ_DA_L1_URL",
    show_envvar=True,
    show_default=True,
    help="The L1's JSON-RPC URL.",
)
@click.option(
    "--interval",
    default=1.0,
    type=click.FloatRange(0.05, 3600),
    envvar="SEQ_DA_RELAY_INTERVAL",
    show_envvar=True,
    show_default=True,
    help="Seconds between two looks at both sides.",
)
@_relayer_key_options("")
@_log_level
def relay(
    da_url: str,
    l1_url: str,
    interval: float,
    key_file: Path | None,
    dev_key: int | None,
    log_level: str,
) -> None:
    """Relay the DA committee's attestations to the L1 (Blobstream's relayer): every data
    commitment the L1 lacks, in order, as submitDataCommitment calls from a funded L1 key."""
    from l1_mock.da.relay import RelaySettings, run_relayer
    from sequencer_node.system.signals import run_until_signal

    setup_logging(log_level)
    try:
        key = _relayer_key(key_file, dev_key)
    except ValueError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    settings = RelaySettings(da_url, l1_url, key, interval)
    trio.run(
        functools.partial(run_until_signal, log=logging.getLogger("l1_mock.da.relay")),
        run_relayer,
        settings,
    )


@main.command("dev-genesis")
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="SEQ_DA_GENESIS_OUT",
    show_envvar=True,
    help="File to write.",
)
@_config_options("")
@click.option(
    "--fund",
    "funds",
    multiple=True,
    envvar="SEQ_DA_GENESIS_FUND",
    show_envvar=True,
    help="Prefund ADDRESS_HEX,TOKENS besides the ten dev accounts (repeatable).",
)
@click.option(
    "--committee",
    "committee",
    multiple=True,
    envvar="SEQ_DA_GENESIS_COMMITTEE",
    show_envvar=True,
    help="A committee member KEY_HEX,STAKE (repeatable); replaces the dev committee.",
)
def dev_genesis(
    out: Path, funds: tuple[str, ...], committee: tuple[str, ...], **config: int
) -> None:  # fmt: skip
    """Write a DA dev genesis: ten funded dev accounts and a committee (genesis time 0: the
    chain starts when ``da-mock run`` first opens it)."""
    from l1_mock.da import genesis as genesis_mod

    try:
        g = genesis_mod.dev_genesis(DAConfig(**config))
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    extra = parse_funds(funds, TOKEN)
    members = []
    for spec in committee:
        key, _, stake = spec.partition(",")
        try:
            members.append((bytes.fromhex(key.removeprefix("0x")), int(stake)))
        except ValueError as e:
            raise click.BadParameter(
                f"--committee {spec!r}: expected KEY_HEX,STAKE ({e})"
            ) from None
    g = dataclasses.replace(
        g, balances=g.balances + tuple(extra), committee=tuple(members) or g.committee
    )
    try:  # the same checks as loading the file
        genesis_mod.from_json(genesis_mod.to_json(g))
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    out.write_text(genesis_mod.dumps(g))
    click.echo(f"wrote {out}")
