"""The network under test: the L1 mock and 4 nodes (stakes 40/30/20/10 %) as real processes,
every p2p link and the nodes' L1 link behind a :mod:`~tests.faults.proxy`, and process control
(kill -9, restart, SIGSTOP/SIGCONT, peak memory).

Set-up reuses the devnet's own steps (``sequencer_node.devnet``: keys, L1 genesis, staking
through signed L1 calls, the L2 genesis from the finalized stake snapshot, the node command
line). Two things differ so that all traffic passes the proxies:

* each node listens for p2p on a private port and is told (``--peers``) to dial its peers at
  the proxies ``i -> j``; the address it registered on L1 (which the nodes also dial) is left
  unbound, so those dials fail and nothing bypasses the proxies;
* the nodes reach the L1 through one unframed proxy (an L1 outage refuses it); the harness
  itself talks to the real L1.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import trio

from sequencer_node.devnet.bench_probe import proc_descendants
from sequencer_node.devnet.config import DevnetConfig
from sequencer_node.devnet.ports import free_port
from sequencer_node.devnet.procs import Child, spawn
from sequencer_node.devnet.runner import l1_argv, node_argv
from sequencer_node.devnet.setup import (
    DEVNET_SCRYPT_N,
    prepare_files,
    stake_and_genesis,
    wait_l1,
)
from sequencer_node.keystore import save_keystore
from sequencer_node.shell.byzantine import ENV_ALLOW
from sequencer_node.wire.crypto import SigningKey
from tests.devnet.helpers import free_bases
from tests.faults.proxy import LinkProxy, ProxyMesh

STAKES = (40, 30, 20, 10)
#: The environment of a process run with ``--byzantine`` (refused without it).
BYZANTINE_ENV = {ENV_ALLOW: "1"}


@dataclass(frozen=True, slots=True)
class Timing:
    """Chain and L1 timings of a run (short, so the CI profile fits in minutes)."""

    slot_time: int = 1
    block_time_ms: int = 500
    timeout_base_ms: int = 2_000
    #: Above the L1 mock's finality lag (up to 64 blocks): the L2 includes a forced
    #: transaction only once its L1 block is final, and the inbox wants it within the window.
    sequencing_window: int = 72
    epoch_length: int = 1_000
    batch_max_age_ms: int = 3_000


@dataclass
class Node:
    index: int
    argv: list[str]
    log: Path
    child: Child | None = None
    #: Highest VmHWM (peak RSS, kB) seen over every incarnation of the process.
    peak_rss_kb: int = 0
    #: The same for its batch worker processes (the highest of any one of them).
    worker_peak_rss_kb: int = 0
    paused: bool = False

    @property
    def pid(self) -> int:
        assert self.child is not None
        return self.child.pid

    def alive(self) -> bool:
        return self.child is not None and self.child.alive()


def peak_rss_kb(pid: int) -> int:
    """VmHWM of a live process (kB), 0 if unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _value(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def _with_values(argv: list[str], values: dict[str, str]) -> list[str]:
    out = list(argv)
    for flag, value in values.items():
        if flag in out:
            out[out.index(flag) + 1] = value
        else:
            out += [flag, value]
    return out


@dataclass
class FaultNet:
    root: Path
    seed: int
    timing: Timing = field(default_factory=Timing)
    say: Any = print
    cfg: DevnetConfig = field(init=False)
    l1: Child | None = None
    nodes: list[Node] = field(default_factory=list)
    mesh: ProxyMesh | None = None
    l1_proxy: LinkProxy | None = None
    http: httpx.AsyncClient = field(default_factory=lambda: httpx.AsyncClient(timeout=3.0))
    l1_peak_rss_kb: int = 0
    #: Processes besides the four nodes (a twin, the hostile peer), by name.
    extra: dict[str, Node] = field(default_factory=dict)
    #: The p2p ports the nodes really listen on (behind the proxies).
    real_p2p: list[int] = field(default_factory=list)
    #: Identities every node admits as peers (``--allow-peers``) without stake: the hostile
    #: peers', so that they do not take the place of a validator.
    hostile_keys: tuple[SigningKey, ...] = field(
        default_factory=lambda: (SigningKey.generate(), SigningKey.generate())
    )

    def __post_init__(self) -> None:
        l1_port, rpc_base, p2p_base = free_bases(len(STAKES))
        t = self.timing
        self.cfg = DevnetConfig(
            directory=self.root,
            stakes=STAKES,
            slot_time=t.slot_time,
            block_time_ms=t.block_time_ms,
            timeout_base_ms=t.timeout_base_ms,
            epoch_length=t.epoch_length,
            sequencing_window=t.sequencing_window,
            load=False,
            l1_port=l1_port,
            rpc_port=rpc_base,
            p2p_port=p2p_base,
        )

    # --- start and stop ----------------------------------------------------------------------

    async def start(self, nursery: trio.Nursery) -> None:
        cfg = self.cfg
        keys = prepare_files(cfg)
        self.l1 = spawn("l1", l1_argv(cfg), cfg.log_file("l1"))
        await wait_l1(cfg.l1_url, 30, self.l1.alive)
        await stake_and_genesis(cfg, keys, self.say)
        real = self.real_p2p = [free_port() for _ in STAKES]
        for k, key in enumerate(self.hostile_keys):
            save_keystore(self.hostile_key_file(k), key, self.password(),
                          description="hostile peer", scrypt_n=DEVNET_SCRYPT_N)  # fmt: skip
        self.mesh = ProxyMesh(real, self.seed)
        await self.mesh.start(nursery)
        self.l1_proxy = LinkProxy("l1", ("127.0.0.1", cfg.l1_port), framed=False, seed=self.seed)
        await nursery.start(self.l1_proxy.run)
        for i in range(len(STAKES)):
            argv = _with_values(
                node_argv(cfg, i),
                {
                    "--p2p-listen": f"127.0.0.1:{real[i]}",
                    "--peers": ",".join(self.mesh.dial_list(i)),
                    "--l1-url": f"http://{self.l1_proxy.address}",
                    "--l1-poll": "0.5",
                    "--shutdown-timeout": "5",
                    "--batch-max-age-ms": str(self.timing.batch_max_age_ms),
                    "--allow-peers": ",".join("0x" + k.public_key.hex() for k in self.hostile_keys),
                },
            )
            self.nodes.append(Node(i, argv, cfg.log_file(cfg.name(i))))
            self.start_node(i)
        self.say(f"started L1 and {len(self.nodes)} nodes in {self.root}")

    def start_node(self, i: int, byzantine: str | None = None) -> None:
        """Start node ``i`` (again); ``byzantine``: with ``--byzantine`` these strategies."""
        n = self.nodes[i]
        if byzantine is None:
            n.child = spawn(self.cfg.name(i), n.argv, n.log)
        else:
            argv = [*n.argv, "--byzantine", byzantine]
            n.child = spawn(self.cfg.name(i), argv, n.log, env=BYZANTINE_ENV)
        n.paused = False

    def hostile_key_file(self, k: int) -> Path:
        return self.cfg.keys_dir / f"hostile-{k}.json"

    def password(self) -> str:
        return self.cfg.password_file.read_text().splitlines()[0]

    def start_extra(self, name: str, like: int, byzantine: str, *, key_file: Path | None = None,
                    dial: list[str] | None = None) -> Node:  # fmt: skip
        """Start one more ``sequencer-node run --byzantine ...`` process: node ``like``'s command
        line with its own data directory and ports, the key of ``key_file`` (default: node
        ``like``'s, i.e. a twin), dialling ``dial`` (default: node ``like``'s peers, through
        node ``like``'s proxies, so that the faults of its links are its faults too)."""
        values = {
            "--data-dir": str(self.root / "extra" / name),
            "--p2p-listen": f"127.0.0.1:{free_port()}",
            "--rpc-listen": f"127.0.0.1:{free_port()}",
            "--peers": ",".join(dial) if dial else _value(self.nodes[like].argv, "--peers"),
            "--l1-url": self.cfg.l1_url,
            "--byzantine": byzantine,
        }
        argv = [*_with_values(self.nodes[like].argv, values), "--no-batcher"]
        if key_file is not None:
            argv = _with_values(argv, {"--key": str(key_file)})
        n = Node(-1, argv, self.cfg.log_file(name))
        n.child = spawn(name, argv, n.log, env=BYZANTINE_ENV)
        self.extra[name] = n
        return n

    async def _extra_status(self, name: str) -> dict[str, Any] | None:
        """The extra process's ``/v1/status`` (None: not answering); AssertionError if it
        exited."""
        n = self.extra[name]
        if not n.alive():
            raise AssertionError(f"{name} exited with {n.child and n.child.exit_code()}")
        try:
            r = await self.http.get("http://" + _value(n.argv, "--rpc-listen") + "/v1/status")
            doc: dict[str, Any] = r.json()
        except (httpx.HTTPError, ValueError):
            return None
        return doc if r.status_code == 200 else None

    async def wait_extra(self, name: str, peers: int = 1, limit_s: float = 60.0) -> float:
        """Seconds until the extra process ``name`` answers its RPC with at least ``peers``
        peers connected (it started and speaks p2p); raises AssertionError after ``limit_s``."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < limit_s:
            doc = await self._extra_status(name)
            if doc is not None and int(doc.get("peers", 0)) >= peers:
                return time.monotonic() - t0
            await trio.sleep(0.3)
        raise AssertionError(f"{name} did not connect to {peers} peers within {limit_s:.0f} s")

    async def wait_extra_caught_up(
        self, name: str, ref: int, within: int = 3, limit_s: float = 90.0
    ) -> float:
        """Seconds until the extra process ``name`` is within ``within`` certified blocks of
        node ``ref`` and no longer catching up; raises AssertionError after ``limit_s``. A
        fresh process needs its stake tables from L1, and its peer gives up an older link with
        the same identity only once that link has been silent for ``stale_link_s`` (15 s)."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < limit_s:
            doc = await self._extra_status(name)
            ref_st = await self.status(ref)
            if doc is not None and ref_st is not None and not doc.get("catching_up", False):
                mine = int(doc["heads"]["certified"]["height"])
                if mine >= int(ref_st["heads"]["certified"]["height"]) - within:
                    return time.monotonic() - t0
            await trio.sleep(0.3)
        raise AssertionError(f"{name} did not catch up with node-{ref} within {limit_s:.0f} s")

    def stop_extra(self, name: str) -> None:
        """kill -9 an extra process (and reap it)."""
        n = self.extra.pop(name)
        self._sample_rss(n)
        if n.child is not None and n.child.popen is not None and n.alive():
            os.kill(n.pid, signal.SIGKILL)
            n.child.popen.wait(timeout=10)

    def stop_all(self) -> None:
        """Teardown: SIGKILL every process of the run (and reap it)."""
        children = [n.child for n in [*self.nodes, *self.extra.values()] if n.child is not None]
        if self.l1 is not None:
            self.l1_peak_rss_kb = max(self.l1_peak_rss_kb, peak_rss_kb(self.l1.pid))
            children.append(self.l1)
        for n in self.nodes:
            self._sample_rss(n)
        for c in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(c.pid, signal.SIGCONT)
                os.kill(c.pid, signal.SIGKILL)
        for c in children:
            if c.popen is not None:
                with contextlib.suppress(Exception):
                    c.popen.wait(timeout=10)

    # --- process faults ----------------------------------------------------------------------

    def _sample_rss(self, n: Node) -> None:
        if n.alive():
            n.peak_rss_kb = max(n.peak_rss_kb, peak_rss_kb(n.pid))
            for kid in proc_descendants(n.pid):  # its batch worker (and resource tracker)
                n.worker_peak_rss_kb = max(n.worker_peak_rss_kb, peak_rss_kb(kid))

    def kill(self, i: int) -> None:
        """kill -9 node ``i`` and reap it."""
        n = self.nodes[i]
        self._sample_rss(n)
        assert n.child is not None
        assert n.child.popen is not None
        os.kill(n.pid, signal.SIGKILL)
        n.child.popen.wait(timeout=10)
        n.paused = False

    def pause(self, i: int) -> None:
        self.nodes[i].paused = True
        os.kill(self.nodes[i].pid, signal.SIGSTOP)

    def resume(self, i: int) -> None:
        self.nodes[i].paused = False
        os.kill(self.nodes[i].pid, signal.SIGCONT)

    def sample_memory(self) -> None:
        for n in self.nodes:
            self._sample_rss(n)
        if self.l1 is not None and self.l1.alive():
            self.l1_peak_rss_kb = max(self.l1_peak_rss_kb, peak_rss_kb(self.l1.pid))

    def dead(self) -> list[str]:
        """Processes that exited on their own (not killed by the harness)."""
        out = []
        for name, n in [*((f"node-{n.index}", n) for n in self.nodes), *self.extra.items()]:
            code = n.child.exit_code() if n.child is not None else None
            if code is not None and code != -signal.SIGKILL:
                out.append(f"{name} exited with {code} (log {n.log})")
        if self.l1 is not None and not self.l1.alive():
            out.append(f"the L1 exited with {self.l1.exit_code()}")
        return out

    # --- observing ---------------------------------------------------------------------------

    def rpc(self, i: int) -> str:
        return self.cfg.rpc_url(i)

    async def status(self, i: int) -> dict[str, Any] | None:
        if self.nodes[i].paused or not self.nodes[i].alive():
            return None
        try:
            r = await self.http.get(self.rpc(i) + "/v1/status")
            r.raise_for_status()
            doc: dict[str, Any] = r.json()
            return doc
        except (httpx.HTTPError, ValueError):
            return None

    async def heights(self) -> list[int | None]:
        """Certified height of each node (None: down, paused or not answering)."""
        out: list[int | None] = []
        for i in range(len(self.nodes)):
            st = await self.status(i)
            out.append(None if st is None else int(st["heads"]["certified"]["height"]))
        return out

    async def block(self, i: int, height: int) -> dict[str, Any] | None:
        r = await self.http.get(f"{self.rpc(i)}/v1/blocks/{height}")
        if r.status_code != 200:
            return None
        doc: dict[str, Any] = r.json()
        return doc

    async def wait_first_block(self, limit_s: float = 90.0) -> None:
        end = time.monotonic() + limit_s
        while time.monotonic() < end:
            if self.dead():
                raise AssertionError("; ".join(self.dead()))
            hs = await self.heights()
            if all(h is not None and h >= 1 for h in hs):
                return
            await trio.sleep(0.5)
        raise AssertionError(f"no block certified on every node within {limit_s:.0f} s")

    def describe(self) -> dict[str, Any]:
        return {
            "dir": str(self.root),
            "seed": self.seed,
            "timing": dataclasses.asdict(self.timing),
            "l1": self.cfg.l1_url,
            "nodes": [{"rpc": self.rpc(n.index), "log": str(n.log)} for n in self.nodes],
        }
