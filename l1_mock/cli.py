"""``l1-mock`` / ``python -m l1_mock``: the mock L1 node's command line."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from l1_mock.cli_common import (
    duration,
    log_level_option,
    parse_funds,
    run_service,
    server_options,
    setup_logging,
)
from sequencer_node.wire.blobs import FORKS, LATEST_FORK

if TYPE_CHECKING:
    from l1_mock.chain import Genesis

F = TypeVar("F", bound=Callable[..., Any])


def _chain_options(note: str) -> Callable[[F], F]:
    """``--chain-id``, ``--l2-chain-id`` and ``--fork``, shared by ``run`` and ``dev-genesis``."""
    options = [
        click.option(
            "--chain-id",
            default=900,
            type=int,
            envvar="SEQ_L1_CHAIN_ID",
            show_envvar=True,
            show_default=True,
            help=f"L1 chain id{note}.",
        ),
        click.option(
            "--l2-chain-id",
            default=901,
            type=int,
            envvar="SEQ_L1_L2_CHAIN_ID",
            show_envvar=True,
            show_default=True,
            help=f"L2 chain id whose certificates the inbox checks{note}.",
        ),
        click.option(
            "--fork",
            default=LATEST_FORK,
            type=click.Choice(FORKS),
            envvar="SEQ_L1_FORK",
            show_envvar=True,
            show_default=True,
            help=f"Blob schedule and fee rules to follow{note}.",
        ),
    ]

    def apply(f: F) -> F:
        for option in reversed(options):
            f = option(f)
        return f

    return apply


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="seqnet")
def main() -> None:
    """A mock Ethereum L1 node for seqnet: EIP-4844 blob fee market with real KZG checks,
    blob retention, the sequencer staking contract and the batch inbox.

    Every option is also read from a SEQ_L1_* environment variable (e.g. --port from
    SEQ_L1_PORT).
    """


@main.command()
@server_options(
    "L1",
    port=8545,
    port_help="HTTP port (JSON-RPC and Beacon API).",
    data_dir="./l1-data",
    what="the chain",
    genesis_help="Genesis JSON (see docs/l1-api.md). Default: ten funded dev accounts.",
)
@_chain_options(" (when no --genesis is given)")
@click.option(
    "--slot-time",
    default=2,
    type=click.IntRange(1, 60),
    envvar="SEQ_L1_SLOT_TIME",
    show_envvar=True,
    show_default=True,
    help="Seconds per slot (Ethereum: 12). One block is mined per slot.",
)
@click.option(
    "--blob-retention-epochs",
    default=None,
    type=click.IntRange(1),
    envvar="SEQ_L1_BLOB_RETENTION_EPOCHS",
    show_envvar=True,
    help="Epochs blob data is served before it is pruned. Default: 4096, or more "
    "when 4096 epochs at --slot-time are shorter than --fault-proof-window.",
)
@click.option(
    "--fault-proof-window",
    default="7d",
    callback=duration,
    envvar="SEQ_L1_FAULT_PROOF_WINDOW",
    show_envvar=True,
    show_default=True,
    help="Dispute window (seconds, or with s/m/h/d); retention must cover it.",
)
@click.option(
    "--auto-mine/--no-auto-mine",
    default=True,
    envvar="SEQ_L1_AUTO_MINE",
    show_envvar=True,
    show_default=True,
    help="Mine one block per slot; with --no-auto-mine only dev_mine makes blocks.",
)
@click.option(
    "--allow-remote-dev-mine",
    "remote_dev",
    is_flag=True,
    default=False,
    envvar="SEQ_L1_ALLOW_REMOTE_DEV_MINE",
    show_envvar=True,
    help="Serve dev_mine (mine up to 10,000 blocks at once) to callers on other hosts too; "
    "by default only loopback callers may use it.",
)
@log_level_option("L1")
def run(
    host: str,
    port: int,
    data_dir: Path,
    genesis_path: Path | None,
    chain_id: int,
    l2_chain_id: int,
    slot_time: int,
    fork: str,
    blob_retention_epochs: int | None,
    fault_proof_window: int,
    auto_mine: bool,
    remote_dev: bool,
    log_level: str,
) -> None:
    """Run the mock L1 node."""
    from l1_mock.chain import check_retention
    from l1_mock.chain.config import default_retention_epochs
    from l1_mock.server import L1Service, L1Settings, serve_until_signal

    setup_logging(log_level)
    retention = blob_retention_epochs or default_retention_epochs(slot_time, fault_proof_window)
    try:
        check_retention(retention, slot_time, fault_proof_window)
    except ValueError as e:
        raise click.UsageError(str(e)) from None

    def open_service() -> L1Service:
        genesis = _run_genesis(genesis_path, chain_id, l2_chain_id, slot_time, fork, retention)
        settings = L1Settings(data_dir, slot_time, auto_mine, remote_dev=remote_dev)
        return L1Service.open(genesis, settings)

    run_service(open_service, serve_until_signal, host, port)


def _run_genesis(
    genesis_path: Path | None,
    chain_id: int,
    l2_chain_id: int,
    slot_time: int,
    fork: str,
    retention: int,
) -> Genesis:
    """The genesis ``run`` starts a fresh data directory with: the file, or the dev genesis."""
    from l1_mock import genesis as genesis_mod
    from l1_mock.chain import ChainConfig
    from l1_mock.server.service import default_genesis_time

    if genesis_path is not None:
        genesis = genesis_mod.load(genesis_path)
        config = dataclasses.replace(
            genesis.config,
            slot_time=slot_time,
            blob_retention_epochs=retention,
            genesis_time=genesis.config.genesis_time or default_genesis_time(slot_time),
        )
        return dataclasses.replace(genesis, config=config)
    config = ChainConfig(
        chain_id=chain_id,
        l2_chain_id=l2_chain_id,
        genesis_time=default_genesis_time(slot_time),
        slot_time=slot_time,
        forks=((0, fork),),
        blob_retention_epochs=retention,
    )
    return genesis_mod.dev_genesis(config)


@main.command("dev-genesis")
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="SEQ_L1_GENESIS_OUT",
    show_envvar=True,
    help="File to write.",
)
@_chain_options("")
@click.option(
    "--sequencer",
    "sequencers",
    multiple=True,
    envvar="SEQ_L1_GENESIS_SEQUENCERS",
    show_envvar=True,
    help="A genesis sequencer as SIGNING_KEY_HEX,OWNER_ADDRESS_HEX,STAKE_TOKENS[,P2P[,RPC]] "
    "(repeatable; P2P and RPC are host:port and may be empty).",
)
@click.option(
    "--fund",
    "funds",
    multiple=True,
    envvar="SEQ_L1_GENESIS_FUND",
    show_envvar=True,
    help="Prefund ADDRESS_HEX,TOKENS in addition to the ten dev accounts (repeatable).",
)
def dev_genesis(
    out: Path,
    chain_id: int,
    l2_chain_id: int,
    fork: str,
    sequencers: tuple[str, ...],
    funds: tuple[str, ...],
) -> None:
    """Write a dev genesis file: ten funded dev accounts plus the given sequencers."""
    from l1_mock import genesis as genesis_mod
    from l1_mock.chain import TOKEN, Chain, ChainConfig, GenesisSequencer

    seqs = []
    for spec in sequencers:
        parts = spec.split(",")
        if not 3 <= len(parts) <= 5:
            raise click.BadParameter(f"{spec!r}: expected KEY,OWNER,STAKE_TOKENS[,P2P[,RPC]]")
        parts += [""] * (5 - len(parts))
        try:
            seqs.append(
                GenesisSequencer(
                    bytes.fromhex(parts[0].removeprefix("0x")),
                    bytes.fromhex(parts[1].removeprefix("0x")),
                    parts[3],
                    parts[4],
                    int(parts[2]) * TOKEN,
                )
            )
        except ValueError as e:
            raise click.BadParameter(f"{spec!r}: {e}") from None
    config = ChainConfig(chain_id=chain_id, l2_chain_id=l2_chain_id, forks=((0, fork),))
    genesis = genesis_mod.dev_genesis(config, tuple(seqs))
    genesis = dataclasses.replace(genesis, balances=genesis.balances + parse_funds(funds, TOKEN))
    try:  # the same checks as loading the file (key and address lengths, stake bounds)
        genesis_mod.from_json(genesis_mod.to_json(genesis))
        Chain(genesis)
    except ValueError as e:
        raise click.UsageError(f"invalid genesis: {e}") from None
    out.write_text(genesis_mod.dumps(genesis))
    click.echo(f"wrote {out}")
