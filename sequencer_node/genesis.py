"""The L2 genesis file: chain ids, the genesis validators and balances, protocol parameters.

Every node of one network starts from the same file. ``load_genesis`` checks it field by field
and names the bad field in its error; ``write_genesis`` writes one (atomically). Amounts are
decimal strings because stakes in wei exceed 2**53 (JSON numbers lose precision there)::

    {"chain_id": 901, "l1_chain_id": 31337, "timestamp_ms": 0,
     "stake_epoch": 0, "seed": "0x<32 bytes hex>",
     "validators": [{"public_key": "0x..", "stake": "40000000000000000000000"}],
     "balances": {"0x<20-byte address>": "1000000000000000000000"},
     "params": {"block_time_ms": 1000, "timeout_base_ms": 4000, "epoch_length": 100,
                "sequencing_window": 100}}

``params`` may hold any :class:`~sequencer_node.core.api.CoreConfig` protocol field (not
``chain_id``/``key``); missing ones take the core's defaults.

``fees`` (optional) names the L2 fee model and its parameters (docs/fees.md), e.g.
``{"model": "op-ecotone", "base_fee_scalar": "1368", "blob_base_fee_scalar": "810949"}``;
missing fields take :class:`~sequencer_node.core.fees.FeeParams`'s defaults. Without it the
chain keeps the historical flat rule with no fee state.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sequencer_node.core.api import CoreConfig, Genesis, StakeSnapshot
from sequencer_node.core.fees import FeeParams, FeeParamsError
from sequencer_node.system.files import atomic_write
from sequencer_node.wire.crypto import SigningKey
from sequencer_node.wire.hexstr import to_hex

#: CoreConfig fields a genesis file may set (the rest are per node: key, chain id).
PARAM_FIELDS = frozenset(f.name for f in dataclasses.fields(CoreConfig)) - {"chain_id", "key"}
_MAX_VALIDATORS = 1024


class GenesisError(ValueError):
    """The genesis file is unreadable or invalid; the message names the file and the field."""


@dataclass(frozen=True, slots=True)
class L2Genesis:
    chain_id: int
    l1_chain_id: int
    validators: tuple[tuple[bytes, int], ...]  # (Ed25519 public key, stake in wei)
    balances: tuple[tuple[bytes, int], ...] = ()  # (20-byte address, amount)
    timestamp_ms: int = 0
    stake_epoch: int = 0
    seed: bytes = bytes(32)
    params: dict[str, int] = field(default_factory=dict)
    #: The L2 fee model (None: the historical flat rule, no fee state).
    fees: FeeParams | None = None

    @classmethod
    def of_core(
        cls, genesis: Genesis, chain_id: int, params: dict[str, int], l1_chain_id: int = 1
    ) -> L2Genesis:
        """The file form of a core genesis (the inverse of :meth:`core_genesis`): a simulated
        chain run by a real node, in tests and benchmarks."""
        snap = genesis.snapshot
        return cls(chain_id=chain_id, l1_chain_id=l1_chain_id, validators=snap.stakes,
                   balances=genesis.balances, timestamp_ms=genesis.timestamp_ms,
                   stake_epoch=snap.l1_epoch, seed=snap.seed, params=params,
                   fees=genesis.fees)  # fmt: skip

    def core_genesis(self) -> Genesis:
        snapshot = StakeSnapshot(self.stake_epoch, self.validators, self.seed)
        return Genesis(self.balances, snapshot, self.timestamp_ms, self.fees)

    def core_config(self, key: SigningKey | None, **local: int) -> CoreConfig:
        """The core configuration for this chain; ``local`` overrides node-local bounds
        (e.g. ``mempool_max_txs``)."""
        return CoreConfig(chain_id=self.chain_id, key=key, **{**self.params, **local})

    def validator_keys(self) -> frozenset[bytes]:
        return frozenset(pk for pk, _ in self.validators)

    def to_json(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "l1_chain_id": self.l1_chain_id,
            "timestamp_ms": self.timestamp_ms,
            "stake_epoch": self.stake_epoch,
            "seed": to_hex(self.seed),
            "validators": [
                {"public_key": to_hex(pk), "stake": str(stake)} for pk, stake in self.validators
            ],
            "balances": {to_hex(a): str(v) for a, v in self.balances},
            "params": dict(self.params),
            **({} if self.fees is None else {"fees": self.fees.to_json()}),
        }


def _hex_field(value: Any, size: int, where: str) -> bytes:
    if not isinstance(value, str):
        raise GenesisError(f"{where}: expected a 0x-hex string of {size} bytes, got {value!r}")
    try:
        raw = bytes.fromhex(value.removeprefix("0x"))
    except ValueError:
        raise GenesisError(f"{where}: {value!r} is not hex") from None
    if len(raw) != size:
        raise GenesisError(f"{where}: must be {size} bytes, got {len(raw)}")
    return raw


def _int(value: Any, where: str, *, positive: bool = False) -> int:
    # Decimal strings for amounts; plain JSON integers accepted for small numbers.
    if isinstance(value, bool):
        raise GenesisError(f"{where}: expected an integer, got {value!r}")
    if isinstance(value, int):
        n = value
    elif isinstance(value, str) and value.strip().isdigit():
        n = int(value)
    else:
        raise GenesisError(f"{where}: expected a decimal integer (string), got {value!r}")
    if n < 0 or (positive and n == 0):
        raise GenesisError(f"{where}: must be {'positive' if positive else 'non-negative'}")
    return n


def parse_genesis(data: Any) -> L2Genesis:
    """Validate a decoded genesis document. Raises GenesisError naming the bad field."""
    if not isinstance(data, dict):
        raise GenesisError("genesis: the document must be a JSON object")
    known = {"chain_id", "l1_chain_id", "timestamp_ms", "stake_epoch", "seed", "validators",
             "balances", "params", "fees"}  # fmt: skip
    unknown = sorted(set(data) - known)
    if unknown:
        raise GenesisError(f"genesis: unknown field(s) {unknown}")
    for required in ("chain_id", "l1_chain_id", "validators"):
        if required not in data:
            raise GenesisError(f"genesis: missing field {required!r}")
    chain_id = _int(data["chain_id"], "chain_id", positive=True)
    l1_chain_id = _int(data["l1_chain_id"], "l1_chain_id", positive=True)
    if chain_id == l1_chain_id:
        raise GenesisError("chain_id: the L2 chain id must differ from l1_chain_id")
    vals = data["validators"]
    if not isinstance(vals, list) or not vals or len(vals) > _MAX_VALIDATORS:
        raise GenesisError(f"validators: expected a list of 1..{_MAX_VALIDATORS} validators")
    validators: list[tuple[bytes, int]] = []
    for i, v in enumerate(vals):
        if not isinstance(v, dict) or set(v) != {"public_key", "stake"}:
            raise GenesisError(f"validators[{i}]: expected {{'public_key', 'stake'}}")
        pk = _hex_field(v["public_key"], 32, f"validators[{i}].public_key")
        validators.append((pk, _int(v["stake"], f"validators[{i}].stake", positive=True)))
    if len({pk for pk, _ in validators}) != len(validators):
        raise GenesisError("validators: a public key appears twice")
    raw_bal = data.get("balances", {})
    if not isinstance(raw_bal, dict):
        raise GenesisError("balances: expected an object {address: amount}")
    balances = tuple(
        (_hex_field(a, 20, f"balances[{a!r}]"), _int(b, f"balances[{a!r}]"))
        for a, b in raw_bal.items()
    )
    params_raw = data.get("params", {})
    if not isinstance(params_raw, dict):
        raise GenesisError("params: expected an object")
    params: dict[str, int] = {}
    for k, v in params_raw.items():
        if k not in PARAM_FIELDS:
            raise GenesisError(f"params.{k}: unknown parameter (known: {sorted(PARAM_FIELDS)})")
        params[k] = _int(v, f"params.{k}")
    genesis = L2Genesis(
        chain_id=chain_id,
        l1_chain_id=l1_chain_id,
        validators=tuple(validators),
        balances=balances,
        timestamp_ms=_int(data.get("timestamp_ms", 0), "timestamp_ms"),
        stake_epoch=_int(data.get("stake_epoch", 0), "stake_epoch"),
        seed=_hex_field(data.get("seed", "0x" + "00" * 32), 32, "seed"),
        params=params,
        fees=_fees_section(data.get("fees")),
    )
    try:
        genesis.core_config(None)
    except (ValueError, TypeError) as e:
        raise GenesisError(f"params: {e}") from None
    return genesis


def _fees_section(raw: Any) -> FeeParams | None:
    """The genesis ``fees`` section (None when absent). Raises GenesisError naming the field."""
    if raw is None:
        return None
    try:
        return FeeParams.from_json(raw)
    except FeeParamsError as e:
        raise GenesisError(str(e)) from None


def load_genesis(path: Path) -> L2Genesis:
    """Read and validate the genesis file at ``path``."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise GenesisError(f"{path}: no such genesis file") from None
    except OSError as e:
        raise GenesisError(f"{path}: cannot read the genesis file ({e.strerror})") from None
    try:
        data = json.loads(text)
    except ValueError as e:
        raise GenesisError(f"{path}: not valid JSON ({e})") from None
    try:
        return parse_genesis(data)
    except GenesisError as e:
        raise GenesisError(f"{path}: {e}") from None


def write_genesis(path: Path, genesis: L2Genesis, *, overwrite: bool = True) -> None:
    """Write ``genesis`` as JSON (atomic, fsynced)."""
    data = (json.dumps(genesis.to_json(), indent=2) + "\n").encode()
    atomic_write(Path(path), data, mode=0o644, overwrite=overwrite)


__all__ = ["GenesisError", "L2Genesis", "load_genesis", "parse_genesis", "write_genesis"]
