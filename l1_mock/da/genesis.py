"""DA genesis files (JSON): the DA chain's configuration, funded accounts and the attestation
committee.

Amounts are decimal strings in the DA token's smallest unit (10**18 per token); keys and
addresses are 0x-hex. The dev genesis funds the same ten deterministic dev keys as the L1's dev
genesis (``SigningKey.deterministic("dev-0")`` ... ``"dev-9"``), so one dev key pays on both,
and seats a committee of four deterministic keys (``"da-committee-0"`` ...) with stakes
40/30/20/10: for devnets and tests only.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from l1_mock.da.chain import TOKEN, DAConfig, DAGenesis
from sequencer_node.wire.crypto import ADDRESS_BYTES, PUBLIC_KEY_BYTES, SigningKey

DEV_ACCOUNTS = 10
DEV_BALANCE = 1_000_000 * TOKEN
DEV_COMMITTEE_STAKES = (40, 30, 20, 10)


def dev_committee_key(i: int) -> SigningKey:
    return SigningKey.deterministic(f"da-committee-{i}")


def dev_genesis(config: DAConfig) -> DAGenesis:
    balances = tuple(
        (SigningKey.deterministic(f"dev-{i}").address, DEV_BALANCE) for i in range(DEV_ACCOUNTS)
    )
    committee = tuple(
        (dev_committee_key(i).public_key, s) for i, s in enumerate(DEV_COMMITTEE_STAKES)
    )
    return DAGenesis(config, balances, committee)


def _unhex(s: Any, n: int, what: str) -> bytes:
    if not isinstance(s, str):
        raise ValueError(f"DA genesis: {what} must be a 0x-hex string")
    try:
        raw = bytes.fromhex(s.removeprefix("0x"))
    except ValueError:
        raise ValueError(f"DA genesis: {what} {s!r} is not hex") from None
    if len(raw) != n:
        raise ValueError(f"DA genesis: {what} {s!r} must have {n} bytes, has {len(raw)}")
    return raw


def _amount(v: Any, what: str) -> int:
    if not isinstance(v, str) or not v.isascii() or not v.isdigit():
        raise ValueError(f"DA genesis: {what} must be a decimal string, got {v!r}")
    return int(v)


def to_json(genesis: DAGenesis) -> dict[str, Any]:
    return {
        "config": dataclasses.asdict(genesis.config),
        "balances": [{"address": "0x" + a.hex(), "amount": str(v)} for a, v in genesis.balances],
        "committee": [{"key": "0x" + k.hex(), "stake": str(s)} for k, s in genesis.committee],
    }


def from_json(obj: Any) -> DAGenesis:
    if not isinstance(obj, dict) or set(obj) != {"config", "balances", "committee"}:
        raise ValueError("DA genesis: expected an object with config, balances and committee")
    fields = {f.name for f in dataclasses.fields(DAConfig)}
    cfg = obj["config"]
    if not isinstance(cfg, dict) or not set(cfg) <= fields:
        raise ValueError(f"DA genesis: config keys must be among {sorted(fields)}")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in cfg.values()):
        raise ValueError("DA genesis: config values are non-negative integers")
    config = DAConfig(**cfg)
    balances = tuple(
        (_unhex(b.get("address"), ADDRESS_BYTES, "address"), _amount(b.get("amount"), "amount"))
        for b in obj["balances"]
    )
    committee = tuple(
        (_unhex(c.get("key"), PUBLIC_KEY_BYTES, "committee key"), _amount(c.get("stake"), "stake"))
        for c in obj["committee"]
    )
    if any(s <= 0 for _, s in committee) or len({k for k, _ in committee}) != len(committee):
        raise ValueError("DA genesis: committee keys are distinct with positive stake")
    return DAGenesis(config, balances, committee)


def dumps(genesis: DAGenesis) -> str:
    return json.dumps(to_json(genesis), indent=2, sort_keys=True) + "\n"


def load(path: Path) -> DAGenesis:
    try:
        return from_json(json.loads(path.read_text()))
    except (OSError, json.JSONDecodeError, AttributeError, TypeError) as e:
        raise ValueError(f"cannot read DA genesis {path}: {e}") from None
