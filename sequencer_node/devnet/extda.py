"""The devnet's external DA layer (``--da extda``): the DA mock's genesis, the L1 genesis's
view of it, the relayer's key, and the DA process (docs/devnet.md, docs/da.md).

The DA genesis is written by the DA mock's own ``dev-genesis`` command (the node side does not
import ``l1_mock``): the four dev committee keys, and the sequencers' addresses funded so they
can pay for blobs. The L1 genesis then copies the committee and the DA chain id from it and
names the rollup's namespace (from the L2 chain id). The DA process relays its attestations to
the L1 itself (``--relay-l1-url``) with a relayer key the L1 genesis funds.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import httpx
import trio

from sequencer_node.devnet.config import DevnetConfig, DevnetError
from sequencer_node.system.files import atomic_write
from sequencer_node.wire.crypto import SigningKey
from sequencer_node.wire.da.shares import user_namespace
from sequencer_node.wire.hexstr import to_hex

#: DA tokens each sequencer gets in the DA genesis (a blob costs its gas times the DA base fee).
DA_FUNDING_TOKENS = 1_000_000
#: DA blocks per attestation, and the DA slot time: a batch's DA block is attested on the L1
#: a few seconds after it is produced.
ATTESTATION_WINDOW = 2
DA_SLOT_TIME = 1


def namespace(cfg: DevnetConfig) -> bytes:
    """The rollup's namespace on the DA layer: its L2 chain id."""
    return user_namespace(cfg.l2_chain_id.to_bytes(10, "big"))


def relayer_key(cfg: DevnetConfig) -> SigningKey:
    """The relayer's key (created once, kept in the keys directory)."""
    path = cfg.relayer_key_file
    if not path.exists():
        atomic_write(path, SigningKey.generate().seed().hex().encode() + b"\n", mode=0o600)
    return SigningKey.from_seed(bytes.fromhex(path.read_text().strip()))


def write_da_genesis(cfg: DevnetConfig, keys: list[SigningKey]) -> None:
    """The DA genesis (once): dev committee, the sequencers funded for blobs."""
    if cfg.da_genesis.exists():
        return
    argv = [sys.executable, "-m", "l1_mock.da", "dev-genesis", "--out", str(cfg.da_genesis)]
    argv += ["--slot-time", str(DA_SLOT_TIME)]
    for k in keys:
        argv += ["--fund", f"{to_hex(k.address)},{DA_FUNDING_TOKENS}"]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise DevnetError(f"cannot write the DA genesis: {done.stderr.strip()}")


def l1_genesis_config(cfg: DevnetConfig) -> dict[str, Any]:
    """The L1 genesis config keys that let its inbox take extda batches."""
    try:
        da = json.loads(cfg.da_genesis.read_text())
        return {
            "da_chain_id": int(da["config"]["chain_id"]),
            "da_committee": [{"key": m["key"], "stake": str(m["stake"])} for m in da["committee"]],
            "da_namespace": to_hex(namespace(cfg)),
        }
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DevnetError(f"cannot read the DA genesis {cfg.da_genesis}: {e}") from None


def da_argv(cfg: DevnetConfig) -> list[str]:
    """The DA mock, relaying its attestations to the devnet's L1."""
    return [
        sys.executable,
        "-m",
        "l1_mock.da",
        "run",
        "--host",
        cfg.host,
        "--port",
        str(cfg.da_port),
        "--data-dir",
        str(cfg.da_data),
        "--genesis",
        str(cfg.da_genesis),
        "--attestation-window",
        str(ATTESTATION_WINDOW),
        "--relay-l1-url",
        cfg.l1_url,
        "--relayer-key-file",
        str(cfg.relayer_key_file),
    ]


async def wait_da(url: str, deadline_s: float, alive: Callable[[], bool]) -> None:
    """Wait until the DA mock answers ``/health``."""
    with trio.move_on_after(deadline_s):
        async with httpx.AsyncClient(timeout=2.0) as http:
            while alive():
                try:
                    if (await http.get(url + "/health")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await trio.sleep(0.2)
    raise DevnetError(f"the DA mock did not answer at {url} within {deadline_s:.0f} s")


__all__ = [
    "da_argv",
    "l1_genesis_config",
    "namespace",
    "relayer_key",
    "wait_da",
    "write_da_genesis",
]
