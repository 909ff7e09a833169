"""``sequencer-node`` / ``python -m sequencer_node``: the sequencer node's command line.

``run`` starts a node (see ``docs/node-api.md``); ``follow`` (:mod:`sequencer_node.derivation.cli`)
rebuilds the L2 state from L1 only. (``seqctl``, the operator's tool, is
:mod:`sequencer_node.cli.seqctl`.)

Exit codes of ``run``: 0 clean stop (SIGTERM/SIGINT) or ``--check-config`` passed; 1 the node
failed while running; 2 usage or configuration error (bad genesis, data directory, address,
port in use); 3 the L1 could not be reached at start or has the wrong chain id; 4 the keystore
could not be opened (missing file, wrong password).
"""

from __future__ import annotations

import gc
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from sequencer_node.cli.common import read_password
from sequencer_node.derivation.cli import follow_command
from sequencer_node.system.commandline import (
    EXIT_FAILED,
    EXIT_KEYSTORE,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    da_url_option,
)
from sequencer_node.system.hostport import HostPort
from sequencer_node.wire.hexstr import from_hex, opt_hex

if TYPE_CHECKING:
    from sequencer_node.genesis import L2Genesis
    from sequencer_node.shell.node_service import NodeSettings
    from sequencer_node.wire.crypto import SigningKey

log = logging.getLogger("sequencer_node.cli")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="seqnet")
def main() -> None:
    """A sequencer node of the seqnet decentralized sequencer network.

    Every option is also read from a SEQ_* environment variable (e.g. --l1-url from
    SEQ_L1_URL); flags win over the environment.
    """


main.add_command(follow_command)


class _ConfigError(Exception):
    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def _die(message: str, code: int) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _listen(text: str, what: str) -> HostPort:
    try:
        return HostPort.parse(text, any_port=True)
    except ValueError as e:
        raise _ConfigError(f"{what} {e}") from None


def _comma_list(text: str | None) -> list[str]:
    return [p.strip() for p in (text or "").split(",") if p.strip()]


def _genesis(path: Path | None) -> L2Genesis:
    from sequencer_node.genesis import GenesisError, load_genesis

    if path is None:
        raise _ConfigError("no genesis file: pass --genesis FILE or set SEQ_GENESIS")
    try:
        return load_genesis(path)
    except GenesisError as e:
        raise _ConfigError(f"bad genesis: {e}") from None


def _key(path: Path | None, password_file: Path | None) -> SigningKey | None:
    from sequencer_node.keystore import KeystoreError, load_keystore

    if path is None:
        return None
    if not path.is_file():
        raise _ConfigError(f"key file {path} does not exist (--key / SEQ_KEY_FILE)", EXIT_KEYSTORE)
    try:
        password = read_password(password_file)
    except click.ClickException as e:
        raise _ConfigError(e.format_message(), EXIT_KEYSTORE) from None
    try:
        return load_keystore(path, password)
    except KeystoreError as e:
        raise _ConfigError(f"cannot open the key: {e}", EXIT_KEYSTORE) from None


def _allow_peers(text: str | None) -> frozenset[bytes]:
    allow = set()
    for item in _comma_list(text):
        try:
            allow.add(from_hex(item, 32))
        except ValueError:
            raise _ConfigError(
                f"--allow-peers: {item!r} is not a 32-byte 0x-hex public key"
            ) from None
    return frozenset(allow)


def _da_url(da: str, url: str | None) -> str | None:
    if da == "extda" and not url:
        raise _ConfigError("--da extda needs --da-url (the DA node, e.g. http://127.0.0.1:26658)")
    return url


def _peers(text: str | None) -> list[HostPort]:
    peers = []
    for item in _comma_list(text):
        try:
            peers.append(HostPort.parse(item))
        except ValueError as e:
            raise _ConfigError(f"--peers: {e}") from None
    return peers


def _build_settings(opts: dict[str, Any]) -> tuple[NodeSettings, dict[str, Any]]:
    """Validate every option; return (NodeSettings, summary). Raises _ConfigError."""
    from sequencer_node.shell.node_service import NodeSettings
    from sequencer_node.shell.peers import PeerAddress

    byzantine = _byzantine(opts.get("byzantine"))  # first: refused without the test flag
    genesis = _genesis(opts["genesis"])
    key = _key(opts["key"], opts["password_file"])
    if byzantine and key is None:
        raise _ConfigError("--byzantine needs a signing key (--key)")
    data_dir: Path = opts["data_dir"]
    if data_dir.exists() and not data_dir.is_dir():
        raise _ConfigError(f"--data-dir {data_dir} exists and is not a directory")
    p2p = _listen(opts["p2p_listen"], "--p2p-listen")
    rpc = _listen(opts["rpc_listen"], "--rpc-listen")
    peers = _peers(opts["peers"])
    settings = NodeSettings(
        data_dir=data_dir,
        genesis=genesis,
        key=key,
        l1_url=opts["l1_url"],
        p2p_host=p2p.host,
        p2p_port=p2p.port,
        peers=tuple(PeerAddress(p.host, p.port) for p in peers),
        rpc_host=rpc.host,
        rpc_port=rpc.port,
        da=opts["da"],
        da_url=_da_url(opts["da"], opts["da_url"]),
        da_failover_s=opts["da_failover"],
        l1_poll_s=opts["l1_poll"],
        l1_start_timeout_s=opts["l1_start_timeout"],
        shutdown_timeout_s=opts["shutdown_timeout"],
        allow_peers=_allow_peers(opts["allow_peers"]),
        batcher=opts["batcher"],
        batch_max_age_ms=opts["batch_max_age_ms"],
        catch_up_blocks=opts["catch_up_blocks"],
        signature_threads=opts["signature_threads"],
        byzantine=byzantine,
    )
    summary = {
        "chain_id": genesis.chain_id,
        "l1_chain_id": genesis.l1_chain_id,
        "validators": len(genesis.validators),
        "node_id": opt_hex(None if key is None else key.public_key),
        "role": _role(genesis, key),
        "data_dir": str(data_dir),
        "l1_url": opts["l1_url"],
        "p2p_listen": f"{p2p.host}:{p2p.port}",
        "rpc_listen": f"{rpc.host}:{rpc.port}",
        "peers": [f"{p.host}:{p.port}" for p in peers],
        "da": opts["da"],
        "catch_up_blocks": settings.catch_up_blocks,
        "signature_threads": settings.signature_threads,
        "params": genesis.params,
    }
    return settings, summary


def _byzantine(text: str | None) -> frozenset[Any]:
    """The hidden test-only --byzantine option: refused without SEQNET_ALLOW_BYZANTINE=1."""
    if not text:
        return frozenset()
    from sequencer_node.shell.byzantine import ByzantineRefused, parse_strategies, require_allowed

    try:
        require_allowed()
        strategies = parse_strategies(text)
    except ByzantineRefused as e:
        raise _ConfigError(str(e)) from None
    log.warning("byzantine strategies enabled (fault tests only): %s", text)
    return strategies


def _role(genesis: L2Genesis, key: SigningKey | None) -> str:
    if key is None:
        return "follower"
    return "validator" if key.public_key in genesis.validator_keys() else "sequencer"


def _check_data_dir(settings: NodeSettings) -> None:
    """Open the store once (ownership check) without starting anything."""
    from sequencer_node.shell.node_service import (
        FOLLOWER_IDENTITY,
        NodeStartError,
        lock_data_dir,
    )
    from sequencer_node.shell.store import Store, StoreError

    try:
        fd = lock_data_dir(settings.data_dir)
    except OSError as e:
        raise _ConfigError(f"--data-dir {settings.data_dir}: {e}") from None
    except NodeStartError as e:
        raise _ConfigError(str(e)) from None
    try:
        identity = settings.key.public_key if settings.key is not None else FOLLOWER_IDENTITY
        Store.open(settings.data_dir, chain_id=settings.genesis.chain_id, identity=identity).close()
    except StoreError as e:
        raise _ConfigError(str(e)) from None
    finally:
        os.close(fd)


async def _run_node(settings: NodeSettings) -> None:
    import trio

    from sequencer_node.shell.node_service import Node

    node = Node(settings)
    node.open()
    # What exists now (the imported code, the genesis, the state read at start) lives as long
    # as the process: out of the collector's sight, a full collection no longer walks it
    # (the imports alone are ~80,000 objects, ~45 ms per full collection, a pause of the
    # event loop; measured in docs/benchmarks.md).
    gc.collect()
    gc.freeze()
    async with trio.open_nursery() as nursery:

        async def on_signals() -> None:
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for signum in signals:
                    if node.stopping:
                        log.warning("second signal: stopping now")
                        nursery.cancel_scope.cancel()
                        return
                    log.info("received %s: stopping", signal.Signals(signum).name)
                    node.stop()

        nursery.start_soon(on_signals)
        await node.run()
        nursery.cancel_scope.cancel()


@main.command("run")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="SEQ_DATA_DIR",
    show_envvar=True,
    required=True,
    help="Directory of the node's database (blocks, watermark, batches). One per key.",
)
@click.option(
    "--key",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="SEQ_KEY_FILE",
    show_envvar=True,
    default=None,
    help="Keystore of the sequencer signing key (seqctl keys new). Omit for a non-signing node.",
)
@click.option(
    "--password-file",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="SEQ_PASSWORD_FILE",
    show_envvar=True,
    default=None,
    help="File whose first line is the keystore password (else $SEQ_PASSWORD, else a prompt).",
)
@click.option(
    "--genesis",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="SEQ_GENESIS",
    show_envvar=True,
    default=None,
    help="The L2 genesis JSON file (required).",
)
@click.option(
    "--l1-url",
    envvar="SEQ_L1_URL",
    show_envvar=True,
    default="http://127.0.0.1:8545",
    show_default=True,
    help="JSON-RPC URL of the L1.",
)
@click.option(
    "--p2p-listen",
    envvar="SEQ_P2P_LISTEN",
    show_envvar=True,
    default="0.0.0.0:9000",
    show_default=True,
    help="HOST:PORT for peer connections (port 0: any free port).",
)
@click.option(
    "--peers",
    envvar="SEQ_PEERS",
    show_envvar=True,
    default="",
    help="Static peers HOST:PORT,... dialled in addition to the p2p addresses registered on L1.",
)
@click.option(
    "--allow-peers",
    envvar="SEQ_ALLOW_PEERS",
    show_envvar=True,
    default="",
    help="Extra public keys (0x-hex, comma separated) accepted as peers besides the "
    "genesis validators and the sequencers registered on L1.",
)
@click.option(
    "--rpc-listen",
    envvar="SEQ_RPC_LISTEN",
    show_envvar=True,
    default="127.0.0.1:8600",
    show_default=True,
    help="HOST:PORT of the HTTP API, /health and /metrics.",
)
@click.option(
    "--da",
    type=click.Choice(["blobs", "calldata", "extda"]),
    envvar="SEQ_DA",
    show_envvar=True,
    default="blobs",
    show_default=True,
    help="How batches are posted to L1 (extda: the data on the external DA layer, a pointer "
    "on L1; needs --da-url).",
)
@da_url_option(". Needed with --da extda; co-signers use it to check extda batches before "
               "signing")  # fmt: skip
@click.option(
    "--da-failover",
    type=click.FloatRange(0, 86_400),
    envvar="SEQ_DA_FAILOVER",
    show_envvar=True,
    default=30.0,
    show_default=True,
    help="With --da extda: seconds the DA layer may be unavailable before batches go to "
    "blobs (back to the DA layer once it answers).",
)
@click.option(
    "--batcher/--no-batcher",
    envvar="SEQ_BATCHER",
    show_envvar=True,
    default=True,
    show_default=True,
    help="Build, co-sign and post batches (off: consensus only).",
)
@click.option(
    "--batch-max-age-ms",
    type=click.IntRange(100, 3_600_000),
    envvar="SEQ_BATCH_MAX_AGE_MS",
    show_envvar=True,
    default=None,
    help="Post a batch at the latest when its oldest block is this old (default: the "
    "batcher's, 10 s).",
)
@click.option(
    "--catch-up-blocks",
    type=click.IntRange(0, 1_000_000),
    envvar="SEQ_CATCH_UP_BLOCKS",
    show_envvar=True,
    default=8,
    show_default=True,
    help="While more than this many certified blocks behind the network, answer clients 503 "
    "CATCHING_UP and leave gossiped client transactions unchecked, so the node catches up "
    "under load (0: never).",
)
@click.option(
    "--signature-threads",
    type=click.IntRange(0, 256),
    envvar="SEQ_SIGNATURE_THREADS",
    show_envvar=True,
    default=0,
    show_default=True,
    help="Worker threads that check transfer signatures off the event loop (gossiped "
    "batches, client requests); 0: off, every check on the loop. Worth it only with cores "
    "the node does not otherwise use (docs/benchmarks.md, tenth part).",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    envvar="SEQ_LOG_FORMAT",
    show_envvar=True,
    default="text",
    show_default=True,
    help="Log lines for people (text) or one JSON object per line (json).",
)
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    envvar="SEQ_LOG_LEVEL",
    show_envvar=True,
    default="INFO",
    show_default=True,
    help="Log verbosity.",
)
@click.option(
    "--l1-poll",
    type=click.FloatRange(0.05, 60),
    envvar="SEQ_L1_POLL",
    show_envvar=True,
    default=1.0,
    show_default=True,
    help=(
        "Seconds between two reads of the L1 (head, inbox, forced queue, fee data: one "
        "request, which the batcher shares)."
    ),
)
@click.option(
    "--l1-start-timeout",
    type=click.FloatRange(0, 3600),
    envvar="SEQ_L1_START_TIMEOUT",
    show_envvar=True,
    default=30.0,
    show_default=True,
    help="Seconds to keep retrying an unreachable L1 at start before giving up.",
)
@click.option(
    "--shutdown-timeout",
    type=click.FloatRange(0.1, 600),
    envvar="SEQ_SHUTDOWN_TIMEOUT",
    show_envvar=True,
    default=10.0,
    show_default=True,
    help="Deadline of the graceful shutdown after SIGTERM/SIGINT.",
)
@click.option("--byzantine", default=None, hidden=True)  # fault tests only (shell.byzantine)
@click.option(
    "--check-config",
    is_flag=True,
    default=False,
    help="Validate key, password, genesis and data dir, print a summary, exit 0 without starting.",
)
def run_command(**opts: Any) -> None:
    """Run a sequencer node: p2p consensus, L1 watcher, RPC, metrics and batcher."""
    from sequencer_node.shell.logging import setup_logging

    setup_logging(opts["log_format"], opts["log_level"])
    try:
        settings, summary = _build_settings(opts)
        if opts["check_config"]:
            _check_data_dir(settings)
            click.echo(json.dumps({"ok": True, **summary}, indent=2))
            return
    except _ConfigError as e:
        _die(str(e), e.code)
        return
    import trio

    from sequencer_node.shell.l1_watcher import L1StartError
    from sequencer_node.shell.node_service import NodeStartError
    from sequencer_node.shell.store import StoreError

    try:
        try:
            trio.run(_run_node, settings)
        except BaseExceptionGroup as group:
            raise _first_leaf(group) from None
    except L1StartError as e:
        _die(str(e), EXIT_UNREACHABLE)
    except (NodeStartError, StoreError) as e:
        _die(str(e), EXIT_USAGE)
    except KeyboardInterrupt:
        pass
    except Exception as e:
        log.exception("the node failed: %s", e)
        _die(f"the node failed: {type(e).__name__}: {e}", EXIT_FAILED)


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The most telling exception in a (nested) group: a start error if there is one."""
    leaves: list[BaseException] = []

    def walk(e: BaseException) -> None:
        if isinstance(e, BaseExceptionGroup):
            for x in e.exceptions:
                walk(x)
        else:
            leaves.append(e)

    walk(group)
    from sequencer_node.shell.l1_watcher import L1StartError
    from sequencer_node.shell.node_service import NodeStartError

    for e in leaves:
        if isinstance(e, (L1StartError, NodeStartError)):
            return e
    return leaves[0] if leaves else group
