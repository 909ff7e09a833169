"""``seqctl devnet``: run a local devnet (L1 mock + N sequencers + load) as local processes.

``up`` with no flags is the README's first command; docs/devnet.md says what each step does.
The work is in :mod:`sequencer_node.devnet`; this module is the command line.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import trio

from sequencer_node.cli.common import emit, render_table
from sequencer_node.core.fees import MODELS
from sequencer_node.devnet import monitor
from sequencer_node.devnet.config import (
    DEFAULT_STAKES,
    DevnetConfig,
    DevnetError,
    default_stakes,
    read_state,
)
from sequencer_node.devnet.procs import adopt, tail
from sequencer_node.system.commandline import fail, json_option

F = TypeVar("F", bound=Callable[..., Any])
FORKS = ("cancun", "prague", "osaka", "bpo1", "bpo2")


def _say(line: str) -> None:
    click.echo(f"==> {line}", err=True)


def dir_option(f: F) -> F:
    return click.option(
        "--dir",
        "directory",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path("devnet-data"),
        show_default=True,
        envvar="SEQ_DEVNET_DIR",
        show_envvar=True,
        help="Directory of the devnet's keys, genesis files, data and logs.",
    )(f)


def _stakes(value: str | None) -> tuple[int, ...] | None:
    if value is None:
        return None
    try:
        out = tuple(int(x) for x in value.split(",") if x.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r}: give integer percentages, e.g. 40,30,20,10") from None
    return out


def devnet_option(flag: str, help: str, **kw: Any) -> Callable[[F], F]:
    """A ``seqctl devnet`` option, also read from ``SEQ_DEVNET_<FLAG>``, its default shown."""
    env = "SEQ_DEVNET_" + flag.lstrip("-").upper().replace("-", "_")
    return click.option(flag, envvar=env, show_envvar=True, show_default=True, help=help, **kw)


def _port(flag: str, default: int, help: str) -> Callable[[F], F]:
    return devnet_option(flag, help, type=click.IntRange(1, 65535), default=default)


def network_options(f: F) -> F:
    """Options that shape the network (shared by ``up`` and ``init``)."""
    stakes_help = (
        "Stake of each node in percent, comma-separated "
        f"(default {','.join(map(str, DEFAULT_STAKES))} for 4 nodes, equal otherwise). "
        "The smallest gets the L1's minimum stake (20,000 tokens)."
    )
    opts = [
        devnet_option("--nodes", "Number of sequencer nodes.",
                      type=click.IntRange(1, 16), default=4),
        devnet_option("--stakes", stakes_help, default=None),
        devnet_option("--fork", "L1 blob fee rules (EIP-4844 schedule).",
                      type=click.Choice(FORKS), default="bpo2"),
        devnet_option("--slot-time", "L1 seconds per slot (Ethereum: 12).",
                      type=click.IntRange(1, 60), default=2),
        devnet_option("--block-time", "L2 block time in milliseconds.",
                      type=click.IntRange(100, 60_000), default=1000),
        devnet_option("--epoch-length", "L2 blocks per leader epoch.",
                      type=click.IntRange(3, 100_000), default=100),
        devnet_option("--da", "Where the nodes post batches on L1 (extda: on a DA mock process, "
                      "which the devnet starts, a pointer on L1; failover to blobs, docs/da.md).",
                      type=click.Choice(["blobs", "calldata", "extda"]), default="blobs"),
        devnet_option("--fee-model", "L2 fee model of the genesis (docs/fees.md); none: the "
                      "historical flat rule without fee state.",
                      type=click.Choice(["none", *MODELS]), default="none"),
        devnet_option("--host", "Address the L1 and the nodes listen on.", default="127.0.0.1"),
        _port("--l1-port", 8545, "L1 JSON-RPC port."),
        _port("--da-port", 26658, "Port of the DA mock (--da extda only)."),
        _port("--rpc-port", 8600, "RPC (and /metrics) port of node-0; node-i uses this + i."),
        _port("--p2p-port", 9000, "P2P port of node-0; node-i uses this + i."),
    ]  # fmt: skip
    for o in reversed(opts):
        f = o(f)
    return f


def _config(directory: Path, **kw: Any) -> DevnetConfig:
    stakes = _stakes(kw.pop("stakes")) or default_stakes(kw["nodes"])
    block_time = kw.pop("block_time")
    try:
        return DevnetConfig(
            directory=directory.resolve(), stakes=stakes, block_time_ms=block_time, **kw
        )
    except DevnetError as e:
        fail(str(e))


def _given_fields(kw: dict[str, Any]) -> frozenset[str]:
    """The config fields set by a flag or an environment variable (not by a default)."""
    ctx = click.get_current_context()
    given = set()
    for name in kw:
        source = ctx.get_parameter_source(name)
        if source in (
            click.core.ParameterSource.COMMANDLINE,
            click.core.ParameterSource.ENVIRONMENT,
        ):
            given.add("block_time_ms" if name == "block_time" else name)
    return frozenset(given)


@click.group()
def devnet() -> None:
    """Run a local devnet: the L1 mock and N sequencers as processes, with a load generator.

    `seqctl devnet up` with no flags starts 4 sequencers (stakes 40/30/20/10 %) and shows a
    live status until Ctrl-C. See docs/devnet.md.
    """


@devnet.command("up")
@dir_option
@network_options
@click.option(
    "--detach",
    is_flag=True,
    help="Start, wait for the first certified block, print the URLs and return "
    "(stop later with `seqctl devnet down`).",
)
@click.option("--no-load", is_flag=True, help="Do not start the load generator.")
@devnet_option(
    "--load-rate",
    "Transfers per second sent by the load generator.",
    type=click.FloatRange(0.1, 10_000),
    default=5.0,
)
@click.option(
    "--fresh",
    is_flag=True,
    help="Delete a previous (stopped) devnet in --dir and start a new one.",
)
def up_cmd(
    directory: Path, detach: bool, no_load: bool, load_rate: float, fresh: bool, **kw: Any
) -> None:
    """Start the devnet (keys, genesis, L1, staking, nodes, load) and watch it until Ctrl-C."""
    from sequencer_node.devnet.runner import up

    cfg = _config(directory, load=not no_load, load_rate=load_rate, **kw)
    try:
        code = up(
            cfg,
            detach=detach,
            fresh=fresh,
            say=_say,
            interactive=sys.stdout.isatty(),
            given=_given_fields(kw),
        )
    except DevnetError as e:
        fail(str(e))
    sys.exit(code)


@devnet.command("init")
@dir_option
@network_options
@click.option(
    "--l1-url",
    default=None,
    envvar="SEQ_L1_URL",
    show_envvar=True,
    help="A running L1: also register and stake the sequencers there and write the L2 "
    "genesis. Without it only the keys and the L1 genesis are written.",
)
@devnet_option(
    "--advertise-host",
    "Host registered on L1 for each node's p2p and RPC; {i} is the node index "
    "(docker-compose: node-{i}).",
    default="127.0.0.1",
)
@devnet_option(
    "--same-ports",
    "Every node uses the base ports (one container per node) instead of base + i.",
    is_flag=True,
)
def init_cmd(
    directory: Path, l1_url: str | None, advertise_host: str, same_ports: bool, **kw: Any
) -> None:
    """Prepare a devnet directory without starting processes (used by docker-compose).

    Idempotent: files that exist are kept, registered sequencers are not registered twice.
    """
    from sequencer_node.devnet.setup import prepare_files, stake_and_genesis

    cfg = _config(
        directory,
        advertise_host=advertise_host,
        same_ports=same_ports,
        l1_url_override=l1_url or "",
        **kw,
    )
    if (cfg.config_file).exists():
        stored = DevnetConfig.read(cfg.directory)
        cfg = DevnetConfig.from_json({**stored.to_json(), "l1_url_override": l1_url or ""})
    try:
        keys = prepare_files(cfg)
        _say(f"keys and L1 genesis in {cfg.directory}")
        if l1_url:
            from sequencer_node.devnet.setup import wait_l1

            async def stake() -> None:
                await wait_l1(l1_url, 60)
                await stake_and_genesis(cfg, keys, _say)

            trio.run(stake)
            _say(f"L2 genesis ready: {cfg.l2_genesis}")
            from sequencer_node.devnet.accounts import eth_dev_account_lines

            # Under compose a node's RPC is published on the host's port 8600 (node-0).
            for line in eth_dev_account_lines(cfg.l2_chain_id, "http://127.0.0.1:8600"):
                _say(line)
    except DevnetError as e:
        fail(str(e))


@devnet.command("down")
@dir_option
@json_option
def down_cmd(directory: Path, as_json: bool) -> None:
    """Stop the devnet running in --dir (detached or in another terminal)."""
    from sequencer_node.devnet.runner import down

    try:
        outcome = down(directory.resolve(), _say)
    except DevnetError as e:
        fail(str(e))
    if as_json:
        emit(outcome, True)
    elif outcome:
        click.echo("stopped: " + ", ".join(f"{k} {v}" for k, v in outcome.items()))
    else:
        click.echo(f"nothing was running in {directory}")


def _status_data(directory: Path) -> dict[str, Any]:
    state = read_state(directory)
    nodes = state.get("nodes", [])
    l1 = state.get("l1") or {}
    snap = trio.run(
        monitor.poll, str(l1.get("url", "")), [(n["name"], n["rpc_url"]) for n in nodes]
    )
    out: dict[str, Any] = {
        "dir": state.get("dir", str(directory)),
        "started_at": state.get("started_at"),
        "stopped_at": state.get("stopped_at"),
        "l1": {
            "url": l1.get("url"),
            "pid": l1.get("pid"),
            "running": adopt("l1", l1).alive() if l1 else False,
            "log": l1.get("log"),
            "head": snap.l1.head,
            "finalized": snap.l1.finalized,
            "blob_base_fee": snap.l1.blob_base_fee,
            "batches": snap.l1.batches,
            "error": snap.l1.error,
        },
        "nodes": [],
    }
    for n, view in zip(nodes, snap.nodes, strict=True):
        st = view.status or {}
        out["nodes"].append(
            {
                **{k: v for k, v in n.items() if k != "start_time"},
                "running": adopt(n["name"], n).alive(),
                "role": st.get("role"),
                "epoch": st.get("epoch"),
                "leader": st.get("leader"),
                "peers": st.get("peers"),
                "heads": st.get("heads"),
                "error": view.error,
            }
        )
    return out


@devnet.command("status")
@dir_option
@json_option
def status_cmd(directory: Path, as_json: bool) -> None:
    """Print the L1 URL and every node's RPC URL, pid and heads."""
    try:
        data = _status_data(directory.resolve())
    except DevnetError as e:
        fail(str(e))

    def human(d: dict[str, Any]) -> str:
        l1 = d["l1"]
        lines = [
            f"devnet {d['dir']}",
            f"L1 {l1['url']}  pid {l1['pid']} ({'running' if l1['running'] else 'stopped'})  "
            f"head {l1['head']}  batches on L1 {l1['batches']}  blob base fee "
            f"{l1['blob_base_fee']}",
        ]
        rows = []
        for n in d["nodes"]:
            heads = n.get("heads") or {}

            def h(name: str, heads: dict[str, Any] = heads) -> str:
                v = heads.get(name)
                return "-" if not v else str(v.get("height"))

            rows.append(
                [
                    n["name"],
                    n["rpc_url"],
                    n["pid"],
                    "running" if n["running"] else "stopped",
                    n.get("role") or n.get("error") or "-",
                    h("unsafe"),
                    h("certified"),
                    h("safe"),
                    h("finalized"),
                ]
            )
        headers = ["node", "rpc", "pid", "process", "role", "unsafe", "certified", "safe", "final"]
        lines.append(render_table(headers, rows))
        return "\n".join(lines)

    emit(data, as_json, human)


@devnet.command("logs")
@dir_option
@click.argument("name", required=False)
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines (Ctrl-C to stop).")
@click.option(
    "-n",
    "--lines",
    type=click.IntRange(1, 100_000),
    default=50,
    show_default=True,
    help="How many last lines to print first.",
)
def logs_cmd(directory: Path, name: str | None, follow: bool, lines: int) -> None:
    """Print a devnet log (l1, node-0, ..., load); without NAME, list them with their tails."""
    logs_dir = directory / "logs"
    available = sorted(p.stem for p in logs_dir.glob("*.log"))
    if not available:
        fail(f"no logs in {logs_dir}; is {directory} a devnet directory (see --dir)?")
    if name is None:
        if follow:
            fail(f"-f needs a log NAME, one of: {', '.join(available)}")
        for n in available:
            click.echo(f"--- {n} ({logs_dir / (n + '.log')})")
            click.echo(tail(logs_dir / f"{n}.log", min(lines, 10)))
        return
    if name not in available:
        fail(f"no log named {name!r} in {logs_dir}; available: {', '.join(available)}")
    path = logs_dir / f"{name}.log"
    click.echo(tail(path, lines))
    if not follow:
        return
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            while True:
                chunk = f.read(65536)
                if chunk:
                    sys.stdout.write(chunk.decode("utf-8", "replace"))
                    sys.stdout.flush()
                else:
                    time.sleep(0.3)
    except KeyboardInterrupt:
        return
