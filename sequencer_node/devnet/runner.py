"""``seqctl devnet up`` and ``down``: start the devnet's processes in order, watch, stop.

``up``: keys and L1 genesis → L1 mock → register and stake the sequencers → wait for their
stake snapshot to be final → L2 genesis → the nodes → wait for the first certified block →
the load → live status until Ctrl-C (or return at once with ``detach``). Every child is
recorded in ``devnet.json`` as soon as it starts, so ``down`` can stop a devnet that failed
half-way. Stopping goes in reverse order: load, nodes, L1.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio
from rich.console import Console
from rich.live import Live

from sequencer_node.devnet import extda, monitor
from sequencer_node.devnet.accounts import LOAD_ACCOUNTS, eth_dev_account_lines
from sequencer_node.devnet.config import (
    DevnetConfig,
    DevnetError,
    read_state,
    write_json,
)
from sequencer_node.devnet.procs import (
    Child,
    adopt,
    check_ports_free,
    is_running,
    process_start_time,
    spawn,
    stop,
    tail,
)
from sequencer_node.devnet.setup import (
    prepare_files,
    stake_and_genesis,
    user_account_lines,
    wait_l1,
)
from sequencer_node.system.terminal import waiting
from sequencer_node.wire.crypto import SigningKey

Say = Callable[[str], None]

L1_START_DEADLINE_S = 30.0
#: Without a terminal, the status is one line this often.
PLAIN_EVERY_S = 5.0
FIRST_BLOCK_DEADLINE_S = 120.0
#: ``seqctl load`` runs for a bounded time; the longest it accepts.
LOAD_DURATION = "168h"


def node_argv(cfg: DevnetConfig, i: int) -> list[str]:
    peers = ",".join(cfg.p2p_address(j) for j in range(cfg.nodes) if j != i)
    argv = [
        sys.executable,
        "-m",
        "sequencer_node",
        "run",
        "--data-dir",
        str(cfg.data_dir(i)),
        "--key",
        str(cfg.key_file(i)),
        "--password-file",
        str(cfg.password_file),
        "--genesis",
        str(cfg.l2_genesis),
        "--l1-url",
        cfg.l1_url,
        "--p2p-listen",
        cfg.p2p_listen(i),
        "--rpc-listen",
        cfg.rpc_listen(i),
        "--da",
        cfg.da,
    ]
    if cfg.da == "extda":
        argv += ["--da-url", cfg.da_url]
    if peers:
        argv += ["--peers", peers]
    return argv


def l1_argv(cfg: DevnetConfig) -> list[str]:
    return [
        sys.executable,
        "-m",
        "l1_mock",
        "run",
        "--host",
        cfg.host,
        "--port",
        str(cfg.l1_port),
        "--data-dir",
        str(cfg.l1_data),
        "--genesis",
        str(cfg.l1_genesis),
    ]


def load_argv(cfg: DevnetConfig) -> list[str]:
    """The operator's load generator (``seqctl load``) on the devnet's funded accounts."""
    seqctl = Path(sys.executable).parent / "seqctl"
    prog = [str(seqctl)] if seqctl.exists() else [sys.executable, "-m", "sequencer_node.cli"]
    return [
        *prog,
        "load",
        "--node-url",
        ",".join(cfg.rpc_url(i) for i in range(cfg.nodes)),
        "--rate",
        f"{cfg.load_rate:g}",
        "--duration",
        LOAD_DURATION,
        "--accounts",
        str(LOAD_ACCOUNTS),
        "--drain",
        "0",
    ]


# --- state --------------------------------------------------------------------------------


def recorded_children(state: dict[str, Any]) -> list[Child]:
    """Every process of a recorded devnet, in stop order (load, nodes, DA, L1)."""
    out: list[Child] = []
    if state.get("load"):
        out.append(adopt("load", state["load"]))
    for n in state.get("nodes", []):
        out.append(adopt(str(n["name"]), n))
    if state.get("da"):
        out.append(adopt("da", state["da"]))
    if state.get("l1"):
        out.append(adopt("l1", state["l1"]))
    return out


def supervisor_alive(state: dict[str, Any]) -> bool:
    sup = state.get("supervisor")
    if not sup:
        return False
    return is_running(int(sup["pid"]), sup.get("start_time"))


def running_pids(directory: Path) -> list[str]:
    """Names and pids of the devnet processes of ``directory`` that still run."""
    try:
        state = read_state(directory)
    except DevnetError:
        return []
    out = [f"{c.name} (pid {c.pid})" for c in recorded_children(state) if c.alive()]
    if supervisor_alive(state):
        out.insert(0, f"seqctl devnet up (pid {state['supervisor']['pid']})")
    return out


class Devnet:
    """One ``up``: the children it started and the state file it keeps."""

    def __init__(self, cfg: DevnetConfig, say: Say, detach: bool) -> None:
        self.cfg = cfg
        self.say = say
        self.detach = detach
        self.l1: Child | None = None
        self.da: Child | None = None
        self.nodes: list[Child] = []
        self.load: Child | None = None
        self.keys: list[SigningKey] = []
        self.started_at = time.time()

    def children(self) -> list[Child]:
        """In stop order."""
        out: list[Child] = []
        if self.load is not None:
            out.append(self.load)
        out.extend(self.nodes)
        if self.da is not None:
            out.append(self.da)
        if self.l1 is not None:
            out.append(self.l1)
        return out

    def state(self) -> dict[str, Any]:
        cfg = self.cfg
        me = os.getpid()
        supervisor = {"pid": me, "start_time": process_start_time(me)}
        return {
            "dir": str(cfg.directory),
            "started_at": self.started_at,
            "detached": self.detach,
            "supervisor": None if self.detach else supervisor,
            "l1": None
            if self.l1 is None
            else {"url": cfg.l1_url, "data_dir": str(cfg.l1_data), **self.l1.record()},
            "nodes": [
                {
                    "name": c.name,
                    "rpc_url": cfg.rpc_url(i),
                    "metrics_url": cfg.rpc_url(i) + "/metrics",
                    "p2p": cfg.p2p_address(i),
                    "public_key": self.keys[i].public_key.hex() if i < len(self.keys) else None,
                    "key_file": str(cfg.key_file(i)),
                    "data_dir": str(cfg.data_dir(i)),
                    **c.record(),
                }
                for i, c in enumerate(self.nodes)
            ],
            "load": None if self.load is None else self.load.record(),
            "da": None
            if self.da is None
            else {"url": cfg.da_url, "data_dir": str(cfg.da_data), **self.da.record()},
        }

    def save(self) -> None:
        write_json(self.cfg.state_file, self.state())

    def _spawn(self, name: str, argv: list[str]) -> Child:
        return spawn(name, argv, self.cfg.log_file(name), die_with_parent=not self.detach)

    def _check_alive(self) -> None:
        for c in self.children():
            if not c.alive():
                raise DevnetError(
                    f"{c.name} exited (code {c.exit_code()}); last lines of {c.log}:\n{tail(c.log)}"
                )

    # --- steps ----------------------------------------------------------------------------

    async def start(self) -> None:
        cfg = self.cfg
        self.keys = prepare_files(cfg)
        self.say(f"keys in {cfg.keys_dir}, L1 genesis {cfg.l1_genesis}")
        self.l1 = self._spawn("l1", l1_argv(cfg))
        self.save()
        l1 = self.l1
        with waiting("waiting for the L1 mock", L1_START_DEADLINE_S):
            await wait_l1(cfg.l1_url, L1_START_DEADLINE_S, l1.alive)
        self.say(f"L1 mock up at {cfg.l1_url} (pid {l1.pid}, log {l1.log})")
        if cfg.da == "extda":
            await self._start_da()
        await stake_and_genesis(cfg, self.keys, self.say)
        for i in range(cfg.nodes):
            self.nodes.append(self._spawn(cfg.name(i), node_argv(cfg, i)))
            self.save()
        self.say(
            f"started {cfg.nodes} nodes (RPC {cfg.rpc_url(0)} ...); waiting for the first "
            f"certified block"
        )
        await self.wait_first_block()
        for line in user_account_lines(cfg):
            self.say(line)
        for line in eth_dev_account_lines(cfg.l2_chain_id, cfg.rpc_url(0)):
            self.say(line)
        if cfg.load:
            self.load = self._spawn("load", load_argv(cfg))
            self.save()
            self.say(f"load generator started ({cfg.load_rate:g} tx/s, log {self.load.log})")

    async def _start_da(self) -> None:
        """The DA mock (``--da extda``), relaying its attestations to the L1."""
        cfg = self.cfg
        self.da = self._spawn("da", extda.da_argv(cfg))
        self.save()
        da = self.da
        with waiting("waiting for the DA mock", L1_START_DEADLINE_S):
            await extda.wait_da(cfg.da_url, L1_START_DEADLINE_S, da.alive)
        self.say(f"DA mock up at {cfg.da_url} (pid {da.pid}, log {da.log}), relaying to the L1")

    def node_urls(self) -> list[tuple[str, str]]:
        return [(self.cfg.name(i), self.cfg.rpc_url(i)) for i in range(len(self.nodes))]

    async def wait_first_block(self) -> None:
        shown = waiting("waiting for the first certified block", FIRST_BLOCK_DEADLINE_S)
        with shown, trio.move_on_after(FIRST_BLOCK_DEADLINE_S):
            while True:
                self._check_alive()
                snap = await monitor.poll(self.cfg.l1_url, self.node_urls())
                if snap.certified() >= 1:
                    self.say(f"first block certified (height {snap.certified()})")
                    return
                await trio.sleep(0.5)
        logs = "\n".join(f"--- {c.log}:\n{tail(c.log, 8)}" for c in self.nodes)
        raise DevnetError(
            f"no block was certified within {FIRST_BLOCK_DEADLINE_S:.0f}s; see the node logs "
            f"in {self.cfg.logs_dir}:\n{logs}"
        )

    def names_by_key(self) -> dict[str, str]:
        return {k.public_key.hex(): self.cfg.name(i) for i, k in enumerate(self.keys)}

    async def watch(self, interactive: bool) -> None:
        """Refresh the status until cancelled (Ctrl-C) or the L1 exits: a live view redrawn in
        place on a terminal (``rich``), one line every 5 s otherwise."""
        if not interactive:
            last_line = -PLAIN_EVERY_S
            while True:
                snap = await self._poll_checked()
                if trio.current_time() - last_line >= PLAIN_EVERY_S:
                    last_line = trio.current_time()
                    print(monitor.one_line(snap, self.names_by_key()), flush=True)
                await trio.sleep(1.0)
        footer = f"logs and data: {self.cfg.directory}   (Ctrl-C stops the devnet)"
        with Live(console=Console(file=sys.stdout), auto_refresh=False) as live:
            while True:
                snap = await self._poll_checked()
                alive = {c.name: c.alive() for c in self.children()}
                view = monitor.live_view(snap, self.names_by_key(), alive, footer)
                live.update(view, refresh=True)
                await trio.sleep(1.0)

    async def _poll_checked(self) -> monitor.Snapshot:
        snap = await monitor.poll(self.cfg.l1_url, self.node_urls())
        if self.l1 is not None and not self.l1.alive():
            raise DevnetError(
                f"the L1 mock exited; last lines of {self.l1.log}:\n{tail(self.l1.log)}"
            )
        return snap

    async def summary(self) -> list[str]:
        snap = await monitor.poll(self.cfg.l1_url, self.node_urls())
        heights = ", ".join(f"{n.name} {n.height('certified')}" for n in snap.nodes)
        return [
            f"certified heights: {heights or '-'}",
            f"batches on L1: {snap.l1.batches if snap.l1.batches is not None else '-'}; "
            f"L1 head {snap.l1.head if snap.l1.head is not None else '-'}",
        ]


#: The flags that shape a network (fixed when the devnet is created) and the field each sets.
NETWORK_FLAGS = {
    "nodes": "--nodes",
    "stakes": "--stakes",
    "fork": "--fork",
    "slot_time": "--slot-time",
    "block_time_ms": "--block-time",
    "epoch_length": "--epoch-length",
    "da": "--da",
    "host": "--host",
}
#: Ports are where a network listens this time, not what it is: a resumed devnet takes them.
PORT_FIELDS = ("l1_port", "rpc_port", "p2p_port", "da_port")


def prepare_directory(
    cfg: DevnetConfig, fresh: bool, say: Say, given: frozenset[str] | None = None
) -> DevnetConfig:
    """Refuse a running devnet or a foreign directory; wipe with ``fresh``; resume otherwise.

    ``given`` names the fields of ``cfg`` set on the command line (None: all of them). On
    resume, the stored network is kept, with the given ports and the per-run load settings.
    """
    d = cfg.directory
    running = running_pids(d)
    if running:
        raise DevnetError(
            f"a devnet is already running in {d}: {', '.join(running)}; stop it with "
            f"`seqctl devnet down --dir {d}` or use another --dir"
        )
    is_devnet = (d / "devnet-config.json").exists()
    if d.exists() and any(d.iterdir()) and not is_devnet:
        raise DevnetError(
            f"{d} exists and is not a devnet directory (no devnet-config.json); refusing to "
            f"write into it: choose another --dir"
        )
    if is_devnet and fresh:
        say(f"removing the previous devnet in {d} (--fresh)")
        shutil.rmtree(d)
    elif is_devnet:
        return _resume(cfg, DevnetConfig.read(d), say, given)
    return cfg


def _resume(
    cfg: DevnetConfig, stored: DevnetConfig, say: Say, given: frozenset[str] | None
) -> DevnetConfig:
    def was_given(name: str) -> bool:
        return given is None or name in given

    ports = {f: getattr(cfg, f) for f in PORT_FIELDS if was_given(f)}
    resumed = dataclasses.replace(
        stored, directory=cfg.directory, load=cfg.load, load_rate=cfg.load_rate, **ports
    )
    ignored = [
        f"{flag} {_flag_value(getattr(cfg, name))} (this devnet: "
        f"{_flag_value(getattr(stored, name))})"
        for name, flag in NETWORK_FLAGS.items()
        if was_given(name) and getattr(cfg, name) != getattr(stored, name)
    ]
    say(f"resuming the devnet in {cfg.directory}")
    if ignored:
        say(
            f"ignored, because they would make another network: {', '.join(ignored)}; pass "
            f"--fresh to start a new devnet there"
        )
    if any(getattr(resumed, f) != getattr(stored, f) for f in PORT_FIELDS):
        say(
            f"ports now: L1 {resumed.l1_port}, RPC from {resumed.rpc_port}, p2p from "
            f"{resumed.p2p_port} (were {stored.l1_port}, {stored.rpc_port}, {stored.p2p_port})"
        )
        resumed.save()
    return resumed


def _flag_value(v: object) -> str:
    return ",".join(map(str, v)) if isinstance(v, tuple) else str(v)


def up(
    cfg: DevnetConfig,
    *,
    detach: bool,
    fresh: bool,
    say: Say,
    interactive: bool,
    given: frozenset[str] | None = None,
) -> int:
    """Start (or resume) the devnet; ``given``: see :func:`prepare_directory`."""
    cfg = prepare_directory(cfg, fresh, say, given)
    check_ports_free(cfg.host, cfg.ports())
    say(f"devnet directory: {cfg.directory} (logs in {cfg.logs_dir})")
    net = Devnet(cfg, say, detach)
    ok = False
    interrupted = False

    error: DevnetError | None = None

    async def main() -> None:
        nonlocal ok, interrupted, error
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as sigs:
            async with trio.open_nursery() as nursery:

                async def on_signal() -> None:
                    nonlocal interrupted
                    async for _ in sigs:
                        interrupted = True
                        nursery.cancel_scope.cancel()
                        return

                nursery.start_soon(on_signal)
                # errors are kept here, not raised through the nursery (no exception group)
                try:
                    await net.start()
                    ok = True
                    if not detach:
                        await net.watch(interactive)
                except DevnetError as e:
                    error = e
                nursery.cancel_scope.cancel()

    try:
        trio.run(main)
    except KeyboardInterrupt:
        interrupted = True
    if detach and ok and not interrupted:
        net.save()
        for line in _describe(net):
            say(line)
        return 0
    if ok and not interrupted and error is None:
        return 0
    # stopping: Ctrl-C, a failure, or an interrupted start
    _stop(net, ok, say)
    if error is not None:
        raise error
    return 0


def _stop(net: Devnet, started: bool, say: Say) -> None:
    """Stop every child in order, print the summary, record the stop in the state file."""
    summary: list[str] = []
    if started:
        try:
            summary = trio.run(net.summary)
        except (KeyboardInterrupt, Exception):  # the summary is best effort
            summary = []
    say("stopping the devnet ...")
    outcome = stop(net.children())
    say("stopped: " + ", ".join(f"{k} {v}" for k, v in outcome.items()))
    for line in summary:
        say(line)
    say(f"logs and data kept in {net.cfg.directory}")
    state = net.state()
    state["stopped_at"] = time.time()
    write_json(net.cfg.state_file, state)


def _describe(net: Devnet) -> list[str]:
    cfg = net.cfg
    lines = [f"devnet running in the background; L1 {cfg.l1_url}"]
    for i, c in enumerate(net.nodes):
        lines.append(f"  {c.name}: RPC {cfg.rpc_url(i)}  pid {c.pid}  log {c.log}")
    lines.append(f"status: seqctl devnet status --dir {cfg.directory}")
    lines.append(f"stop:   seqctl devnet down --dir {cfg.directory}")
    return lines


def down(directory: Path, say: Say) -> dict[str, str]:
    """Stop every process of the devnet in ``directory``; return how each ended."""
    state = read_state(directory)
    outcome: dict[str, str] = {}
    sup = state.get("supervisor")
    if sup and supervisor_alive(state):
        # a foreground `up` is running: let it stop its children in order
        os.kill(int(sup["pid"]), signal.SIGTERM)
        end = time.monotonic() + 30
        while supervisor_alive(state) and time.monotonic() < end:
            time.sleep(0.1)
        outcome["seqctl devnet up"] = "stopped" if not supervisor_alive(state) else "still running"
    children = [c for c in recorded_children(state) if c.alive()]
    if children:
        outcome.update(stop(children))
    state["stopped_at"] = time.time()
    write_json(directory / "devnet.json", state)
    return outcome
