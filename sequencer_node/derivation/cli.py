"""``sequencer-node follow``: derive the L2 chain from L1 alone and report its state root.

The node CLI registers :data:`follow_command` (``main.add_command(follow_command)``).
With ``--once`` it derives every batch the inbox holds, prints a summary (``--json`` for
machines) and exits: 0 when everything derived, 1 when derivation stopped (pruned blobs,
invalid data: the message names the batch and the L1 block), 3 when the L1 is unreachable.
Without ``--once`` it keeps following, and ``--rpc-listen`` serves ``GET /health`` and
``GET /v1/status`` (height, state root, recent batches, last error).
"""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path
from typing import Any

import click
import trio

from sequencer_node.clients.da import DAClient
from sequencer_node.clients.l1 import L1Client, L1Error, L1Unavailable
from sequencer_node.derivation.deriver import (
    DerivationError,
    DerivationGenesis,
    Deriver,
    PrunedData,
    describe,
)
from sequencer_node.system.commandline import EXIT_UNREACHABLE, da_url_option, fail, json_option

log = logging.getLogger("seqnet.derivation")


def load_follower_genesis(path: Path) -> DerivationGenesis:
    """What derivation needs of an L2 genesis file (see ``sequencer_node.genesis``)."""
    from sequencer_node.genesis import GenesisError, load_genesis

    try:
        return DerivationGenesis.from_l2(load_genesis(path))
    except GenesisError as e:
        fail(str(e))


def _da_client(da_url: str | None) -> DAClient | None:
    """A reader of the external DA layer (the namespace comes from each batch's pointer)."""
    return None if da_url is None else DAClient(da_url, b"")


async def _once(
    url: str, genesis: DerivationGenesis, data_dir: Path | None, da_url: str | None
) -> dict[str, Any]:
    async with L1Client(url) as l1:
        follower = Deriver(l1, genesis, data_dir=data_dir, da=_da_client(da_url))
        out: dict[str, Any] = {"ok": True}
        derived = []
        try:
            while got := await follower.derive_available(max_batches=1):
                derived += got
        except DerivationError as e:
            out["ok"] = False
            out["error"] = str(e)
            if isinstance(e, PrunedData):
                out["pruned"] = {"batch": e.batch_number, "l1_block": e.l1_block,
                                 "l1_message": e.l1_message}  # fmt: skip
                later = await follower.check_available(e.batch_number + 1)
                out["later_batches"] = [{"batch": n, "problem": p} for n, p in later]
        out["derived"] = [d.to_json() for d in derived]
        out["summary"] = describe(derived)
        out.update(follower.status())
        return out


async def _serve_status(follower: Deriver, host: str, port: int) -> None:
    from hypercorn.config import Config
    from hypercorn.trio import serve
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"ok": follower.error is None, "height": follower.height})

    async def status(_: Request) -> JSONResponse:
        return JSONResponse({"role": "follower", **follower.status()})

    app = Starlette(routes=[Route("/health", health), Route("/v1/status", status)])
    config = Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    await serve(app, config)  # type: ignore[arg-type]


async def _follow(
    url: str,
    genesis: DerivationGenesis,
    data_dir: Path | None,
    rpc: str | None,
    poll: float,
    da_url: str | None = None,
) -> None:
    async with L1Client(url) as l1, trio.open_nursery() as nursery:
        follower = Deriver(l1, genesis, data_dir=data_dir, da=_da_client(da_url))
        if rpc:
            host, _, port = rpc.rpartition(":")
            nursery.start_soon(functools.partial(_serve_status, follower, host, int(port)))
        while True:
            try:
                derived = await follower.derive_available()
                if derived:
                    log.info(
                        "%s; height %d, state root 0x%s",
                        describe(derived),
                        follower.height,
                        follower.state_root().hex(),
                    )
            except DerivationError as e:
                log.error("derivation stopped: %s", e)
            except L1Error as e:
                log.warning("L1 error (retrying): %s", e)
            await trio.sleep(poll)


@click.command("follow")
@click.option(
    "--l1-url",
    default="http://127.0.0.1:8545",
    envvar="SEQ_L1_URL",
    show_envvar=True,
    show_default=True,
    help="URL of the L1 (JSON-RPC and Beacon API).",
)
@da_url_option(", for extda batches; their data is checked against the data root the L1 "
               "proved")  # fmt: skip
@click.option(
    "--genesis",
    "genesis_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    envvar="SEQ_GENESIS",
    show_envvar=True,
    help="The L2 genesis file (JSON) the chain started from.",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="SEQ_DATA_DIR",
    show_envvar=True,
    help="Keep the derived state here, to resume (and to outlive blob pruning).",
)
@click.option(
    "--once",
    is_flag=True,
    envvar="SEQ_FOLLOW_ONCE",
    show_envvar=True,
    help="Derive what the L1 holds now, print a summary and exit.",
)
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    default="INFO",
    envvar="SEQ_LOG_LEVEL",
    show_envvar=True,
    show_default=True,
    help="Log level (logs go to stderr).",
)
@click.option(
    "--rpc-listen",
    envvar="SEQ_RPC_LISTEN",
    show_envvar=True,
    help="HOST:PORT for GET /health and GET /v1/status (not with --once).",
)
@click.option(
    "--poll-interval",
    type=click.FloatRange(0.1, 600),
    default=2.0,
    envvar="SEQ_FOLLOW_POLL_INTERVAL",
    show_envvar=True,
    show_default=True,
    help="Seconds between looks at the L1 inbox.",
)
@json_option
def follow_command(
    l1_url: str,
    da_url: str | None,
    genesis_path: Path,
    data_dir: Path | None,
    once: bool,
    rpc_listen: str | None,
    poll_interval: float,
    log_level: str,
    as_json: bool,
) -> None:
    """Derive the L2 chain from L1 alone (inbox, blobs, calldata), plus the external DA
    layer for extda batches, and report state roots."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)-7s %(name)s: %(message)s"
    )
    genesis = load_follower_genesis(genesis_path)
    if rpc_listen and ":" not in rpc_listen:
        fail(f"--rpc-listen wants HOST:PORT, got {rpc_listen!r}", 2)
    try:
        if not once:
            trio.run(_follow, l1_url, genesis, data_dir, rpc_listen, poll_interval, da_url)
            return
        out = trio.run(_once, l1_url, genesis, data_dir, da_url)
    except L1Unavailable as e:
        fail(f"{e}; is the L1 running at {l1_url}?", EXIT_UNREACHABLE)
    except L1Error as e:
        fail(f"L1 error: {e}")
    except DerivationError as e:
        fail(str(e))
    if as_json:
        click.echo(json.dumps(out, indent=2))
    else:
        click.echo(f"derived: {out['summary']}")
        click.echo(f"height: {out['height']}  state root: {out['state_root']}")
        if not out["ok"]:
            for row in out.get("later_batches", []):
                state = "available" if row["problem"] is None else row["problem"]
                click.echo(f"  batch {row['batch']}: {state}")
    if not out["ok"]:
        fail(out["error"])


__all__ = ["follow_command", "load_follower_genesis"]
