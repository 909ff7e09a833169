"""A loopback cluster for the node-process tests: the L1 mock and N ``sequencer_node run``
processes in temp dirs, with deadlines on every wait and a teardown that kills every child.

The validators are registered directly in the L1 genesis (``sequencers`` with their p2p
addresses), so the nodes find and admit each other through L1 without staking calls; the L2
genesis names the same keys and stakes. Stakes 30/25/25/20 % make any three nodes a quorum
(> 2/3), so the chain survives one killed node.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import trio

from l1_mock.chain import TOKEN, ChainConfig, GenesisSequencer
from l1_mock.genesis import dev_genesis, dumps
from sequencer_node.devnet.ports import free_port
from sequencer_node.genesis import L2Genesis, write_genesis
from sequencer_node.keystore import save_keystore
from sequencer_node.wire.codec import encode
from sequencer_node.wire.crypto import SigningKey, sign_message
from sequencer_node.wire.messages import Transaction

L1_CHAIN = 900
L2_CHAIN = 901
PASSWORD = "test-password"
STAKES = (30_000, 25_000, 25_000, 20_000)  # tokens
KEYS = [SigningKey.deterministic(f"node-process-{i}") for i in range(len(STAKES))]
USERS = [SigningKey.deterministic(f"node-process-user-{i}") for i in range(3)]
USER_BALANCE = 10**15
# Epochs of 80 s: an epoch's stake snapshot is named two epochs ahead and is finalized up to
# about 200 L1 blocks (1 s each here) later (docs/protocol.md, section 2, "Sizing").
PARAMS = {"block_time_ms": 200, "timeout_base_ms": 1500, "timeout_max_ms": 6000,
          "epoch_length": 400, "sequencing_window": 100}  # fmt: skip


def make_tx(user: SigningKey, to: bytes, amount: int, nonce: int, fee: int = 1) -> Transaction:
    tx = Transaction(user.public_key, to, amount, nonce, fee, bytes(64))
    return sign_message(tx, user, L2_CHAIN)


def tx_body(tx: Transaction) -> dict[str, str]:
    return {"tx": "0x" + encode(tx).hex()}


@dataclass
class NodeProc:
    index: int
    key: SigningKey
    data_dir: Path
    key_file: Path
    p2p_port: int
    rpc_port: int
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def rpc(self) -> str:
        return f"http://127.0.0.1:{self.rpc_port}"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class Cluster:
    root: Path
    l1_port: int = 0
    l1_proc: subprocess.Popen[bytes] | None = None
    nodes: list[NodeProc] = field(default_factory=list)
    genesis_path: Path | None = None
    client: httpx.AsyncClient = field(default_factory=lambda: httpx.AsyncClient(timeout=5.0))

    @property
    def l1_url(self) -> str:
        return f"http://127.0.0.1:{self.l1_port}"

    # --- setup -----------------------------------------------------------------------------

    def prepare(self) -> None:
        self.l1_port = free_port()
        (self.root / "keys").mkdir(parents=True)
        pw = self.root / "keys" / "password.txt"
        pw.write_text(PASSWORD + "\n")
        pw.chmod(0o600)
        for i, key in enumerate(KEYS):
            kf = self.root / "keys" / f"node{i}.json"
            save_keystore(kf, key, PASSWORD, scrypt_n=1 << 10)
            self.nodes.append(
                NodeProc(
                    i,
                    key,
                    self.root / f"node{i}",
                    kf,
                    free_port(),
                    free_port(),
                    self.root / f"node{i}.log",
                )
            )
        seqs = tuple(
            GenesisSequencer(
                n.key.public_key, n.key.address, f"127.0.0.1:{n.p2p_port}", n.rpc, stake * TOKEN
            )
            for n, stake in zip(self.nodes, STAKES, strict=True)
        )
        l1_genesis = dev_genesis(ChainConfig(chain_id=L1_CHAIN, l2_chain_id=L2_CHAIN), seqs)
        # The signing keys pay the L1 fees of batches and evidence.
        l1_genesis = dataclasses.replace(
            l1_genesis,
            balances=l1_genesis.balances + tuple((k.address, 1000 * TOKEN) for k in KEYS),
        )
        (self.root / "l1-genesis.json").write_text(dumps(l1_genesis))
        l2 = L2Genesis(
            chain_id=L2_CHAIN,
            l1_chain_id=L1_CHAIN,
            validators=tuple((k.public_key, s * TOKEN) for k, s in zip(KEYS, STAKES, strict=True)),
            balances=tuple((u.address, USER_BALANCE) for u in USERS),
            seed=bytes(range(32)),
            params=dict(PARAMS),
        )
        self.genesis_path = self.root / "genesis.json"
        write_genesis(self.genesis_path, l2)

    def start_l1(self) -> None:
        log = open(self.root / "l1.log", "ab")  # noqa: SIM115 - owned by the child
        self.l1_proc = subprocess.Popen(
            [sys.executable, "-m", "l1_mock", "run", "--port", str(self.l1_port),
             "--data-dir", str(self.root / "l1-data"), "--genesis",
             str(self.root / "l1-genesis.json"), "--slot-time", "1", "--log-level", "WARNING"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def node_cmd(self, n: NodeProc, *extra: str) -> list[str]:
        assert self.genesis_path is not None
        return [
            sys.executable, "-m", "sequencer_node", "run",
            "--data-dir", str(n.data_dir), "--key", str(n.key_file),
            "--password-file", str(self.root / "keys" / "password.txt"),
            "--genesis", str(self.genesis_path), "--l1-url", self.l1_url,
            "--p2p-listen", f"127.0.0.1:{n.p2p_port}", "--rpc-listen", f"127.0.0.1:{n.rpc_port}",
            "--l1-poll", "0.5", "--l1-start-timeout", "20",
            "--shutdown-timeout", "5", *extra,
        ]  # fmt: skip

    def start_node(self, i: int, *extra: str, batcher: bool = False) -> None:
        n = self.nodes[i]
        if not batcher:
            extra = ("--no-batcher", *extra)
        log = open(n.log_path, "ab")  # noqa: SIM115 - owned by the child
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        n.proc = subprocess.Popen(
            self.node_cmd(n, *extra), stdout=log, stderr=subprocess.STDOUT, env=env
        )

    def kill(self, i: int, sig: int = signal.SIGKILL) -> int:
        n = self.nodes[i]
        assert n.proc is not None
        n.proc.send_signal(sig)
        return n.proc.wait(timeout=20)

    def teardown(self) -> None:
        procs = [n.proc for n in self.nodes if n.proc is not None]
        if self.l1_proc is not None:
            procs.append(self.l1_proc)
        for p in procs:
            if p.poll() is None:
                p.kill()
        for p in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=10)

    def logs(self) -> str:
        out = []
        for n in self.nodes:
            if n.log_path.exists():
                out.append(f"--- node{n.index} ---\n" + n.log_path.read_text()[-3000:])
        return "\n".join(out)

    # --- waiting ---------------------------------------------------------------------------

    async def get(self, i: int, path: str) -> Any:
        r = await self.client.get(self.nodes[i].rpc + path)
        r.raise_for_status()
        return r.json()

    async def status(self, i: int) -> dict[str, Any] | None:
        try:
            doc: dict[str, Any] = await self.get(i, "/v1/status")
            return doc
        except (httpx.HTTPError, ValueError):
            return None

    async def wait_for(self, what: str, predicate: Any, limit_s: float) -> Any:
        """Poll ``await predicate()`` until it returns a truthy value; fail after ``limit_s``."""
        deadline = time.monotonic() + limit_s
        last: Any = None
        while time.monotonic() < deadline:
            last = await predicate()
            if last:
                return last
            for n in self.nodes:
                if n.proc is not None and n.proc.poll() is not None and n.proc.returncode not in (
                    0, -9, -15,
                ):  # fmt: skip
                    raise AssertionError(f"node{n.index} died ({n.proc.returncode})\n{self.logs()}")
            await trio.sleep(0.1)
        raise AssertionError(f"timed out after {limit_s} s waiting for {what}\n{self.logs()}")

    async def heights(self, idx: list[int]) -> list[int]:
        out = []
        for i in idx:
            st = await self.status(i)
            out.append(-1 if st is None else st["heads"]["certified"]["height"])
        return out

    async def wait_height(self, idx: list[int], height: int, limit_s: float = 30.0) -> None:
        async def ok() -> bool:
            return min(await self.heights(idx)) >= height

        await self.wait_for(f"nodes {idx} at height {height}", ok, limit_s)

    async def block_hash(self, i: int, height: int) -> tuple[str, str] | None:
        r = await self.client.get(f"{self.nodes[i].rpc}/v1/blocks/{height}")
        if r.status_code != 200:
            return None
        b = r.json()
        return b["hash"], b["state_root"]


def dump_json(path: Path, doc: Any) -> None:
    path.write_text(json.dumps(doc))


@contextlib.asynccontextmanager
async def running_cluster(
    tmp_path: Path, start_nodes: Callable[[Cluster], None] | None = None
) -> AsyncIterator[Cluster]:
    """A prepared cluster with its L1 running (and ``start_nodes`` applied); every child
    process is stopped on exit, even when the test fails."""
    c = Cluster(tmp_path)
    c.prepare()
    try:
        c.start_l1()
        if start_nodes is not None:
            start_nodes(c)
        yield c
    finally:
        c.teardown()
        await c.client.aclose()
