"""Genesis files: the chain configuration, prefunded accounts and genesis sequencers (JSON).

Amounts in the file are decimal strings in wei (10**18 wei = 1 token); keys and addresses are
0x-hex. The dev genesis funds ten deterministic dev accounts (``SigningKey.deterministic(
"dev-0")`` ... ``"dev-9"``) with 1,000,000 tokens each, and makes ``dev-9`` the rollup owner
(``rollup_owner``: the address that may set the L2 fee model): for devnets and tests only.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from l1_mock.chain import TOKEN, ChainConfig, Genesis, GenesisSequencer
from sequencer_node.wire.crypto import SigningKey
from sequencer_node.wire.hexstr import from_hex, to_hex

DEV_ACCOUNTS = 10
DEV_BALANCE = 1_000_000 * TOKEN


def dev_key(i: int) -> SigningKey:
    return SigningKey.deterministic(f"dev-{i}")


#: The dev account that owns the rollup (may set the L2 fee model) in a dev genesis.
DEV_ROLLUP_OWNER = 9


def dev_genesis(config: ChainConfig, sequencers: tuple[GenesisSequencer, ...] = ()) -> Genesis:
    if not config.rollup_owner:
        config = dataclasses.replace(config, rollup_owner=dev_key(DEV_ROLLUP_OWNER).address)
    balances = tuple((dev_key(i).address, DEV_BALANCE) for i in range(DEV_ACCOUNTS))
    return Genesis(config, balances, sequencers)


def to_json(genesis: Genesis) -> dict[str, Any]:
    cfg = dataclasses.asdict(genesis.config)
    cfg["forks"] = [list(f) for f in genesis.config.forks]
    cfg["da_namespace"] = to_hex(genesis.config.da_namespace)
    cfg["da_committee"] = [{"key": to_hex(k), "stake": str(s)} for k, s in cfg["da_committee"]]
    for k in ("min_stake", "max_stake", "reward_per_block", "base_fee_per_gas"):
        cfg[k] = str(cfg[k])
    cfg["rollup_owner"] = to_hex(genesis.config.rollup_owner) if genesis.config.rollup_owner else ""
    return {
        "config": cfg,
        "balances": {to_hex(a): str(b) for a, b in genesis.balances},
        "sequencers": [
            {
                "signing_key": to_hex(s.signing_key),
                "owner": to_hex(s.owner),
                "p2p_address": s.p2p_address,
                "rpc_address": s.rpc_address,
                "stake": str(s.stake),
            }
            for s in genesis.sequencers
        ],
    }


def from_json(data: dict[str, Any]) -> Genesis:
    fields = {f.name: f for f in dataclasses.fields(ChainConfig)}
    raw = dict(data.get("config", {}))
    unknown = set(raw) - set(fields)
    if unknown:
        raise ValueError(f"genesis: unknown config keys {sorted(unknown)}")
    cfg: dict[str, Any] = {}
    for k, v in raw.items():
        cfg[k] = _config_value(k, v)
    config = ChainConfig(**cfg)
    config.validate()
    balances = tuple(
        (from_hex(a, 20, "genesis: address"), int(b))
        for a, b in dict(data.get("balances", {})).items()
    )
    seqs = tuple(
        GenesisSequencer(
            from_hex(s["signing_key"], 32, "genesis: signing_key"),
            from_hex(s["owner"], 20, "genesis: owner"),
            str(s.get("p2p_address", "")),
            str(s.get("rpc_address", "")),
            int(s["stake"]),
        )
        for s in data.get("sequencers", [])
    )
    return Genesis(config, balances, seqs)


def _config_value(key: str, v: Any) -> Any:
    if key == "forks":
        return tuple((int(n), str(f)) for n, f in v)
    if key == "rollup_owner":
        return from_hex(v, 20, "genesis: rollup_owner") if v else b""
    if key == "da_namespace":
        return from_hex(v, None, "genesis: da_namespace")
    if key == "da_committee":
        what = "genesis: da_committee key"
        return tuple((from_hex(m["key"], 32, what), int(m["stake"])) for m in v)
    return int(v)


def load(path: Path) -> Genesis:
    try:
        return from_json(json.loads(path.read_text()))
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"cannot read genesis file {path}: {e}") from None


def dumps(genesis: Genesis) -> str:
    return json.dumps(to_json(genesis), indent=2) + "\n"
