"""Devnet settings, the directory layout, and the state file ``devnet.json``.

Everything a devnet writes lives under one directory ``D``::

    D/devnet-config.json   the settings ``up`` ran with (a later ``up`` on D resumes with them)
    D/devnet.json          running state: L1 url and pid, nodes (name, urls, pid, files), load
    D/keys/                sequencer keystores seq-<i>.json and password.txt (mode 0600)
    D/l1-genesis.json      L1 genesis (prefunds the sequencer and load accounts)
    D/genesis.json         L2 genesis (validators = the finalized L1 stake snapshot)
    D/l1/                  the L1 mock's database
    D/nodes/node-<i>/      each node's data directory
    D/logs/<name>.log      l1.log, node-<i>.log, load.log, devnet.log
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sequencer_node.core.fees import MODELS
from sequencer_node.system.files import atomic_write

TOKEN = 10**18
#: The L1 mock's default staking bounds (tokens); stakes are derived from the percentages.
MIN_STAKE_TOKENS = 20_000
MAX_STAKE_TOKENS = 100_000
#: Every sequencer and load account gets this much on L1 (stake and fees come out of it).
L1_FUNDING_TOKENS = 1_000_000
#: Every load account's L2 balance (in the L2's smallest unit).
L2_FUNDING = 10**21
DEFAULT_STAKES = (40, 30, 20, 10)


class DevnetError(Exception):
    """A devnet step failed; the message says what and what to do."""


def default_stakes(nodes: int) -> tuple[int, ...]:
    if nodes == len(DEFAULT_STAKES):
        return DEFAULT_STAKES
    return tuple([100 // nodes] * nodes)


def stake_tokens(percents: tuple[int, ...]) -> tuple[int, ...]:
    """Stake of each sequencer in tokens, proportional to ``percents``, the smallest at the L1's
    minimum stake. Raises DevnetError when a ratio does not fit the L1's [min, max]."""
    if not percents or min(percents) <= 0:
        raise DevnetError("every stake percentage must be a positive integer (e.g. 40,30,20,10)")
    low = min(percents)
    out = tuple(MIN_STAKE_TOKENS * p // low for p in percents)
    if max(out) > MAX_STAKE_TOKENS:
        raise DevnetError(
            f"stakes {','.join(map(str, percents))} need a ratio of {max(percents) / low:.1f}:1 "
            f"between the largest and smallest, but the L1 allows stakes from "
            f"{MIN_STAKE_TOKENS:,} to {MAX_STAKE_TOKENS:,} tokens (at most 5:1); pick closer "
            f"percentages"
        )
    return out


@dataclass(frozen=True, slots=True)
class DevnetConfig:
    directory: Path
    nodes: int = 4
    stakes: tuple[int, ...] = DEFAULT_STAKES
    fork: str = "bpo2"
    slot_time: int = 2
    block_time_ms: int = 1_000
    #: Proposal pace while there is nothing to order (genesis ``idle_block_ms``; 0: off).
    idle_block_ms: int = 0
    timeout_base_ms: int = 4_000
    epoch_length: int = 100
    sequencing_window: int = 100
    da: str = "blobs"
    #: The L2 fee model of the genesis (docs/fees.md); "none": no fee section (flat rule).
    fee_model: str = "none"
    load: bool = True
    load_rate: float = 5.0
    host: str = "127.0.0.1"
    l1_port: int = 8545
    #: ``--da extda``: the DA mock's port (Celestia's node API port).
    da_port: int = 26658
    rpc_port: int = 8600
    p2p_port: int = 9000
    l1_chain_id: int = 900
    l2_chain_id: int = 901
    #: Host the nodes advertise on L1 for p2p and RPC (``{i}`` is the node index), e.g.
    #: ``node-{i}`` in docker-compose.
    advertise_host: str = "127.0.0.1"
    #: The L1 URL the nodes use, when it is not ``http://host:l1_port`` (docker-compose).
    l1_url_override: str = ""
    #: Where the nodes listen for p2p: one port per node on the host, or the same port in
    #: every container (compose).
    same_ports: bool = False
    #: The DA URL the nodes use, when it is not ``http://host:da_port`` (docker-compose).
    da_url_override: str = ""

    def __post_init__(self) -> None:
        if not 1 <= self.nodes <= 16:
            raise DevnetError(f"--nodes must be between 1 and 16, got {self.nodes}")
        if len(self.stakes) != self.nodes:
            raise DevnetError(
                f"--stakes has {len(self.stakes)} values but --nodes is {self.nodes}; "
                f"give one percentage per node"
            )
        stake_tokens(self.stakes)
        if self.fee_model not in ("none", *MODELS):
            raise DevnetError(f"--fee-model: unknown fee model {self.fee_model!r}")
        if self.da not in ("blobs", "calldata", "extda"):
            raise DevnetError(f"--da must be blobs, calldata or extda, got {self.da!r}")

    # --- layout -----------------------------------------------------------------------------

    @property
    def keys_dir(self) -> Path:
        return self.directory / "keys"

    @property
    def password_file(self) -> Path:
        return self.keys_dir / "password.txt"

    @property
    def logs_dir(self) -> Path:
        return self.directory / "logs"

    @property
    def l1_genesis(self) -> Path:
        return self.directory / "l1-genesis.json"

    @property
    def l2_genesis(self) -> Path:
        return self.directory / "genesis.json"

    @property
    def l1_data(self) -> Path:
        return self.directory / "l1"

    @property
    def state_file(self) -> Path:
        return self.directory / "devnet.json"

    @property
    def config_file(self) -> Path:
        return self.directory / "devnet-config.json"

    @property
    def l1_url(self) -> str:
        return self.l1_url_override or f"http://{self.host}:{self.l1_port}"

    @property
    def da_genesis(self) -> Path:
        return self.directory / "da-genesis.json"

    @property
    def da_data(self) -> Path:
        return self.directory / "da"

    @property
    def da_url(self) -> str:
        return self.da_url_override or f"http://{self.host}:{self.da_port}"

    @property
    def relayer_key_file(self) -> Path:
        """The DA relayer's L1 key (an Ed25519 seed in hex), funded by the L1 genesis."""
        return self.keys_dir / "da-relayer.seed"

    @property
    def user_key_file(self) -> Path:
        """A funded L2 (and L1) account for ``seqctl tx send``: the L1 mock's dev account 0."""
        return self.keys_dir / "user.json"

    def name(self, i: int) -> str:
        return f"node-{i}"

    def key_file(self, i: int) -> Path:
        return self.keys_dir / f"seq-{i}.json"

    def data_dir(self, i: int) -> Path:
        return self.directory / "nodes" / self.name(i)

    def log_file(self, name: str) -> Path:
        return self.logs_dir / f"{name}.log"

    def rpc_listen(self, i: int) -> str:
        host = "0.0.0.0" if self.same_ports else self.host
        return f"{host}:{self.rpc_port + (0 if self.same_ports else i)}"

    def rpc_url(self, i: int) -> str:
        return f"http://{self.host}:{self.rpc_port + (0 if self.same_ports else i)}"

    def p2p_listen(self, i: int) -> str:
        host = "0.0.0.0" if self.same_ports else self.host
        return f"{host}:{self.p2p_port + (0 if self.same_ports else i)}"

    def p2p_address(self, i: int) -> str:
        """The address other nodes dial (registered on L1 and passed as a static peer)."""
        port = self.p2p_port + (0 if self.same_ports else i)
        return f"{self.advertise_host.format(i=i)}:{port}"

    def advertised_rpc(self, i: int) -> str:
        """The RPC URL registered on L1 for node ``i``."""
        port = self.rpc_port + (0 if self.same_ports else i)
        return f"http://{self.advertise_host.format(i=i)}:{port}"

    def ports(self) -> list[tuple[str, int]]:
        out = [("L1", self.l1_port)]
        if self.da == "extda":
            out.append(("DA", self.da_port))
        for i in range(self.nodes):
            out.append((f"{self.name(i)} rpc", self.rpc_port + i))
            out.append((f"{self.name(i)} p2p", self.p2p_port + i))
        return out

    # --- persistence ------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["directory"] = str(self.directory)
        d["stakes"] = list(self.stakes)
        return d

    @staticmethod
    def from_json(data: dict[str, Any]) -> DevnetConfig:
        known = {f.name for f in dataclasses.fields(DevnetConfig)}
        kw = {k: v for k, v in data.items() if k in known}
        kw["directory"] = Path(kw["directory"])
        kw["stakes"] = tuple(kw["stakes"])
        return DevnetConfig(**kw)

    def save(self) -> None:
        write_json(self.config_file, self.to_json())

    @staticmethod
    def read(directory: Path) -> DevnetConfig:
        path = directory / "devnet-config.json"
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise DevnetError(
                f"{directory} is not a devnet directory (no devnet-config.json); "
                f"start one with `seqctl devnet up --dir {directory}`"
            ) from None
        except (OSError, ValueError) as e:
            raise DevnetError(f"cannot read {path}: {e}") from None
        cfg = DevnetConfig.from_json(data)
        return dataclasses.replace(cfg, directory=directory.resolve())


def write_json(path: Path, data: Any, mode: int = 0o644) -> None:
    atomic_write(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode(), mode=mode)


def read_state(directory: Path) -> dict[str, Any]:
    path = directory / "devnet.json"
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise DevnetError(
            f"no devnet state in {directory} (no devnet.json): nothing was started there; "
            f"start one with `seqctl devnet up --dir {directory}`"
        ) from None
    except (OSError, ValueError) as e:
        raise DevnetError(f"cannot read {path}: {e}") from None
    return data


def ensure_private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
