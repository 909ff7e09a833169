"""L2 fee models: what a transaction pays, and to whom (pure, deterministic, no I/O).

Theory of operation
-------------------
The L2 genesis names a **fee model** (:class:`FeeParams`, ``model`` one of :data:`MODELS`)
and its parameters; the rollup's owner can replace them by a signed L1 call, applied from the
first block of the next L2 epoch. Every fee is a function of data all honest nodes agree on:

* the transaction itself (:class:`TxFeeView`: the sender's caps, the gas it uses, its size);
* the per-block :class:`FeeContext`: the L2 base fee (an EIP-1559 value carried in the
  ledger's :class:`FeeState` and updated from the parent block's gas used), the L1 origin's
  *finalized* header (execution base fee, blob base fee), and the L1 pricer's price per byte.

:func:`charge` splits what a transaction pays into a :class:`FeeCharge`: ``base`` (L2 base
fee, to the base-fee vault), ``l1`` (L1 data fee, to the L1 fee vault) and ``priority`` (to
the block's proposer). The vault addresses are fixed by the genesis (defaults: the OP Stack's
``BaseFeeVault`` and ``L1FeeVault`` predeploy addresses, see docs/fees.md).

The models:

* ``flat`` (the historical rule): the whole ``fee`` goes to the proposer, no base fee, no L1
  fee, no gas limit.
* ``op-ecotone``: L2 base fee * gas + the OP Stack Ecotone L1 data fee
  (:func:`ecotone_l1_fee`) + a priority fee.
* ``op-fjord``: the same with the OP Stack Fjord L1 data fee (:func:`fjord_l1_fee`), whose size
  estimate is a linear function of the transaction's FastLZ-compressed length
  (:func:`~sequencer_node.core.fastlz.fastlz_compressed_len`) instead of Ecotone's
  ``calldataGas / 16``.
* ``arbitrum-l1-pricer``: L2 base fee * gas + ``price_per_byte * compressed size``, where the
  price adjusts after every batch report from the L1 fee vault's surplus or deficit
  (:func:`reprice`, ArbOS's ``l1pricing`` rule).

The ledger keeps a :class:`FeeState` (in its state root): the model in force and a pending
one, the next block's L2 base fee, the last L1 origin's fee data, and the L1 pricer's state.
When a block's L1 origin moves from ``p`` to ``o``, the block consumes the :class:`L1FeeInfo`
of every L1 block in ``(p, o]`` (:meth:`FeeState.l1_needed`): the origin's base fees, the
owner's fee-model changes (pending until the next epoch) and the batches' posting costs, which
the L1 fee vault pays to the batcher account.

Transactions plug in through :class:`TxFeeView`:

* a native transfer (``Transaction.fee``) gives :meth:`TxFeeView.native`: ``fee`` is the most
  the sender pays in total; it must cover ``base_fee * gas + l1_fee`` (else the transaction
  is invalid with a clear reason) and the rest is the priority fee;
* an Ethereum EIP-1559 transaction gives :meth:`TxFeeView.eip1559` (``maxFeePerGas``,
  ``maxPriorityFeePerGas``): it pays ``min(maxFee, base + maxPriority) * gas`` plus the L1
  fee on top (as op-geth does), and ``maxFeePerGas`` must reach the base fee;
* a legacy one gives :meth:`TxFeeView.legacy` (``gasPrice`` is both caps).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace
from typing import Any

from sequencer_node.core.fastlz import fastlz_compressed_len

#: Model names, as written in the genesis and the owner's L1 call.
FLAT = "flat"
OP_ECOTONE = "op-ecotone"
ARBITRUM_L1_PRICER = "arbitrum-l1-pricer"
OP_FJORD = "op-fjord"
#: The order is part of the canonical encoding (state root): new models go at the end.
MODELS = (FLAT, OP_ECOTONE, ARBITRUM_L1_PRICER, OP_FJORD)

#: Gas a native transfer uses (Ethereum's intrinsic gas of a plain transfer).
NATIVE_TX_GAS = 21_000
#: OP Stack predeploys (``Predeploys.sol``): BaseFeeVault and L1FeeVault.
BASE_FEE_VAULT = bytes.fromhex("4200000000000000000000000000000000000019")
L1_FEE_VAULT = bytes.fromhex("420000000000000000000000000000000000001a")
#: Where the L1 fee vault sends the batcher's posting costs (the sequencer set's batcher
#: account on L2; OP's SequencerFeeVault address).
BATCHER_ACCOUNT = bytes.fromhex("4200000000000000000000000000000000000011")

#: Ecotone: the scalars are fixed-point with 6 decimals (``DECIMALS`` in GasPriceOracle.sol).
SCALAR_DECIMALS = 10**6
#: Fjord's size estimate (specs: protocol/fjord/exec-engine.md; op-geth ``rollup_cost.go``):
#: ``max(min_size * 1e6, intercept + coef * fastlzSize)``, in millionths of a byte, fitted by
#: OP Labs on past OP mainnet transactions.
FJORD_INTERCEPT = -42_585_600
FJORD_FASTLZ_COEF = 836_500
FJORD_MIN_TX_SIZE = 100
_MAX_U64 = (1 << 64) - 1
_MAX_U128 = (1 << 128) - 1


class FeeParamsError(ValueError):
    """Fee model parameters that cannot be used; the message names the field."""


@dataclass(frozen=True, slots=True)
class FeeParams:
    """A fee model and its parameters (the genesis ``fees`` section, or an owner's L1 call)."""

    model: str = FLAT
    base_fee_vault: bytes = BASE_FEE_VAULT
    l1_fee_vault: bytes = L1_FEE_VAULT
    batcher_account: bytes = BATCHER_ACCOUNT
    # --- L2 EIP-1559 base fee (op-ecotone and arbitrum-l1-pricer) -------------------------
    #: Base fee of the first block (wei per gas), and its floor.
    initial_base_fee: int = 1_000_000
    min_base_fee: int = 1_000
    #: Gas target per block; the gas limit is ``gas_target * elasticity``.
    gas_target: int = 500 * NATIVE_TX_GAS
    elasticity: int = 4
    #: The base fee moves by at most ``1 / max_change_denominator`` per block (EIP-1559: 8).
    max_change_denominator: int = 8
    # --- op-ecotone L1 data fee ---------------------------------------------------------
    base_fee_scalar: int = 1_368
    blob_base_fee_scalar: int = 810_949
    # --- arbitrum-l1-pricer ---------------------------------------------------------------
    #: Starting price of one compressed byte of L1 data (wei).
    initial_price_per_byte: int = 1_000_000
    #: Units (bytes) over which a surplus or deficit should be paid back (ArbOS: 16 M units).
    equilibration_units: int = 1_000_000
    #: How slowly the price reacts (ArbOS's ``inertia``: 10).
    inertia: int = 10

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise FeeParamsError(f"fees.model: {self.model!r} is not one of {list(MODELS)}")
        for name in ("base_fee_vault", "l1_fee_vault", "batcher_account"):
            v = getattr(self, name)
            if type(v) is not bytes or len(v) != 20:
                raise FeeParamsError(f"fees.{name}: an address has 20 bytes")
        if len({self.base_fee_vault, self.l1_fee_vault, self.batcher_account}) != 3:
            raise FeeParamsError("fees: the two vaults and the batcher account must differ")
        for f in fields(self):
            v = getattr(self, f.name)
            if f.type == "int" and (type(v) is not int or not 0 <= v <= _MAX_U128):
                raise FeeParamsError(f"fees.{f.name}: expected an integer in 0..2**128-1")
        if self.gas_target < NATIVE_TX_GAS or self.elasticity < 1:
            raise FeeParamsError("fees: gas_target must hold one transfer, elasticity >= 1")
        if self.max_change_denominator < 1 or self.equilibration_units < 1:
            raise FeeParamsError("fees: max_change_denominator and equilibration_units >= 1")
        if self.min_base_fee > self.initial_base_fee:
            raise FeeParamsError("fees: min_base_fee must not exceed initial_base_fee")

    @property
    def gas_limit(self) -> int:
        return self.gas_target * self.elasticity

    @property
    def charges_base_fee(self) -> bool:
        return self.model != FLAT

    def to_json(self) -> dict[str, Any]:
        """The genesis/RPC form: addresses as 0x-hex, amounts as decimal strings."""
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = "0x" + v.hex() if isinstance(v, bytes) else (
                str(v) if isinstance(v, int) else v)  # fmt: skip
        return out

    @staticmethod
    def from_json(data: Any) -> FeeParams:
        """Parse :meth:`to_json` output; missing fields take the defaults.

        Raises:
            FeeParamsError: an unknown field or a bad value (named).
        """
        if not isinstance(data, dict):
            raise FeeParamsError("fees: expected an object")
        known = {f.name: f for f in fields(FeeParams)}
        kwargs: dict[str, Any] = {}
        for k, v in data.items():
            f = known.get(k)
            if f is None:
                raise FeeParamsError(f"fees.{k}: unknown field (known: {sorted(known)})")
            if k == "model":
                kwargs[k] = v if isinstance(v, str) else repr(v)
            elif f.type == "bytes":
                kwargs[k] = _hex20(v, f"fees.{k}")
            else:
                kwargs[k] = _dec(v, f"fees.{k}")
        return FeeParams(**kwargs)

    def canonical(self) -> bytes:
        """Fixed-layout bytes (state root, snapshots): model index, 3 addresses, the integers
        as 16 bytes each, in field order. :meth:`from_canonical` reads them back."""
        parts: list[bytes] = [bytes([MODELS.index(self.model)])]
        for f in fields(self)[1:]:
            v = getattr(self, f.name)
            parts.append(v if isinstance(v, bytes) else v.to_bytes(16, "big"))
        return b"".join(parts)

    @staticmethod
    def from_canonical(data: bytes) -> FeeParams:
        """Inverse of :meth:`canonical`. Raises FeeParamsError on malformed bytes."""
        if len(data) != _PARAMS_BYTES or data[0] >= len(MODELS):
            raise FeeParamsError("fee params: malformed canonical bytes")
        kwargs: dict[str, Any] = {"model": MODELS[data[0]]}
        pos = 1
        for f in fields(FeeParams)[1:]:
            size = 20 if f.type == "bytes" else 16
            raw = data[pos : pos + size]
            kwargs[f.name] = raw if f.type == "bytes" else int.from_bytes(raw, "big")
            pos += size
        return FeeParams(**kwargs)


_PARAMS_BYTES = 1 + sum(20 if f.type == "bytes" else 16 for f in fields(FeeParams)[1:])


def fee_params_of(setting: object) -> FeeParams | None:
    """The fee model an owner's setting (JSON text) names, or None when the L2 cannot use it
    (not JSON, unknown model or field, bad value): every node reads it the same way."""
    if not isinstance(setting, str):
        return None
    try:
        return FeeParams.from_json(json.loads(setting))
    except (ValueError, RecursionError):  # FeeParamsError is a ValueError
        return None


def _hex20(v: Any, where: str) -> bytes:
    if not isinstance(v, str):
        raise FeeParamsError(f"{where}: expected a 0x-hex address")
    try:
        raw = bytes.fromhex(v.removeprefix("0x"))
    except ValueError:
        raise FeeParamsError(f"{where}: {v!r} is not hex") from None
    if len(raw) != 20:
        raise FeeParamsError(f"{where}: an address has 20 bytes, got {len(raw)}")
    return raw


def _dec(v: Any, where: str) -> int:
    if isinstance(v, bool):
        raise FeeParamsError(f"{where}: expected an integer")
    if isinstance(v, int):
        return v
    if isinstance(v, str) and v.strip().isdigit():
        return int(v)
    raise FeeParamsError(f"{where}: expected a decimal integer, got {v!r}")


# --- per transaction and per block -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TxFeeView:
    """What the fee rules need to know of one transaction.

    ``max_fee``: a native transaction's most total fee (None for Ethereum ones);
    ``max_fee_per_gas`` / ``max_priority_fee_per_gas``: an Ethereum transaction's caps;
    ``gas_used``: gas the execution used; ``data``: the bytes the batcher posts for it
    (its wire or RLP encoding), the input of the L1 data fee (kept for op-fjord, which
    compresses it only when that model is in force).
    """

    gas_used: int
    data_gas: int  # Ecotone's calldataGas of ``data``: 4 per zero byte, 16 per other byte
    max_fee: int | None = None
    max_fee_per_gas: int | None = None
    max_priority_fee_per_gas: int | None = None
    data: bytes = b""

    @staticmethod
    def native(fee: int, data: bytes, gas_used: int = NATIVE_TX_GAS) -> TxFeeView:
        return TxFeeView(gas_used, calldata_gas(data), max_fee=fee, data=data)

    @staticmethod
    def eip1559(
        max_fee_per_gas: int, max_priority_fee_per_gas: int, gas_used: int, data: bytes
    ) -> TxFeeView:
        return TxFeeView(
            gas_used,
            calldata_gas(data),
            max_fee_per_gas=max_fee_per_gas,
            max_priority_fee_per_gas=min(max_priority_fee_per_gas, max_fee_per_gas),
            data=data,
        )

    @staticmethod
    def legacy(gas_price: int, gas_used: int, data: bytes) -> TxFeeView:
        return TxFeeView.eip1559(gas_price, gas_price, gas_used, data)

    @property
    def compressed_size(self) -> int:
        """Ecotone's estimate of the compressed size in bytes (``calldataGas / 16``)."""
        return self.data_gas // 16

    def fjord_size_scaled(self) -> int:
        """Fjord's size estimate in millionths of a byte (from the FastLZ length)."""
        return fjord_size_scaled(fastlz_compressed_len(self.data))


def calldata_gas(data: bytes) -> int:
    """EIP-2028 calldata gas: 4 per zero byte, 16 per non-zero byte."""
    zeros = data.count(0)
    return 4 * zeros + 16 * (len(data) - zeros)


@dataclass(frozen=True, slots=True)
class FeeContext:
    """The fee inputs of one L2 block, the same at every honest node."""

    params: FeeParams
    #: L2 base fee of this block (wei per gas).
    base_fee: int
    #: The L1 origin's finalized header: execution base fee and blob base fee (wei per gas).
    l1_base_fee: int
    l1_blob_base_fee: int
    #: arbitrum-l1-pricer: the price of one compressed byte (wei).
    l1_price_per_byte: int

    def l1_fee(self, view: TxFeeView) -> int:
        """The L1 data fee of a transaction under this block's model."""
        model = self.params.model
        if model == OP_ECOTONE:
            return ecotone_l1_fee(
                view.data_gas, self.l1_base_fee, self.l1_blob_base_fee,
                self.params.base_fee_scalar, self.params.blob_base_fee_scalar,
            )  # fmt: skip
        if model == ARBITRUM_L1_PRICER:
            return view.compressed_size * self.l1_price_per_byte
        if model == OP_FJORD:
            return fjord_l1_fee(
                view.fjord_size_scaled(), self.l1_base_fee, self.l1_blob_base_fee,
                self.params.base_fee_scalar, self.params.blob_base_fee_scalar,
            )  # fmt: skip
        return 0

    def l1_price_per_byte_now(self) -> int:
        """What one compressed byte of L1 data costs a user now (for estimates)."""
        if self.params.model in (OP_ECOTONE, OP_FJORD):
            p = self.params
            return ecotone_l1_fee(16, self.l1_base_fee, self.l1_blob_base_fee,
                                  p.base_fee_scalar, p.blob_base_fee_scalar)  # fmt: skip
        if self.params.model == ARBITRUM_L1_PRICER:
            return self.l1_price_per_byte
        return 0


def ecotone_l1_fee(
    data_gas: int, l1_base_fee: int, blob_base_fee: int, base_fee_scalar: int, blob_scalar: int
) -> int:
    """The OP Stack Ecotone L1 data fee (specs: protocol/exec-engine.md, "Ecotone L1-Cost").

    ``l1_fee = (calldataGas / 16) * (16 * base_fee_scalar * l1_base_fee
    + blob_base_fee_scalar * blob_base_fee) / 1e6``, computed as op-geth does, dividing once
    at the end: ``calldataGas * (...) / 16e6``.
    """
    weighted = 16 * base_fee_scalar * l1_base_fee + blob_scalar * blob_base_fee
    return data_gas * weighted // (16 * SCALAR_DECIMALS)


def fjord_size_scaled(fastlz_size: int) -> int:
    """Fjord's ``estimatedSizeScaled``: ``max(minTransactionSize * 1e6, intercept + fastlzCoef
    * fastlzSize)`` (millionths of a byte)."""
    estimate = FJORD_INTERCEPT + FJORD_FASTLZ_COEF * fastlz_size
    return max(FJORD_MIN_TX_SIZE * SCALAR_DECIMALS, estimate)


def fjord_l1_fee(
    size_scaled: int, l1_base_fee: int, blob_base_fee: int, base_fee_scalar: int,
    blob_scalar: int,
) -> int:  # fmt: skip
    """The OP Stack Fjord L1 data fee (specs: protocol/fjord/exec-engine.md, "Fjord L1-Cost
    fee changes (FastLZ estimator)"): ``estimatedSizeScaled * (16 * base_fee_scalar *
    l1_base_fee + blob_base_fee_scalar * blob_base_fee) / 1e12``."""
    weighted = 16 * base_fee_scalar * l1_base_fee + blob_scalar * blob_base_fee
    return size_scaled * weighted // (SCALAR_DECIMALS * SCALAR_DECIMALS)


@dataclass(frozen=True, slots=True)
class FeeCharge:
    """What one transaction pays: ``base`` to the base-fee vault, ``l1`` to the L1 fee vault,
    ``priority`` to the proposer."""

    base: int = 0
    l1: int = 0
    priority: int = 0

    @property
    def total(self) -> int:
        return self.base + self.l1 + self.priority


def charge(ctx: FeeContext | None, view: TxFeeView) -> FeeCharge | str:
    """What ``view``'s transaction pays in a block with ``ctx``, or why it cannot be included.

    ``ctx`` None is the historical flat rule (no fee state in the ledger).
    """
    if ctx is None or ctx.params.model == FLAT:
        if view.max_fee is not None:
            return FeeCharge(priority=view.max_fee)
        # Base fee 0: an Ethereum transaction pays min(maxFee, 0 + maxPriorityFee) per gas
        # (its view's priority cap is already at most its max fee), all of it priority.
        price = view.max_priority_fee_per_gas or 0
        return FeeCharge(priority=price * view.gas_used)
    base = ctx.base_fee * view.gas_used
    l1 = ctx.l1_fee(view)
    if view.max_fee is not None:
        need = base + l1
        if view.max_fee < need:
            return (
                f"fee {view.max_fee} below the required {need} under {ctx.params.model} "
                f"(L2 base fee {ctx.base_fee} x {view.gas_used} gas = {base}, L1 data fee {l1})"
            )
        return FeeCharge(base, l1, view.max_fee - need)
    cap = view.max_fee_per_gas or 0
    if cap < ctx.base_fee:
        return f"max fee per gas {cap} below the L2 base fee {ctx.base_fee}"
    tip = min(view.max_priority_fee_per_gas or 0, cap - ctx.base_fee)
    return FeeCharge(base, l1, tip * view.gas_used)


#: Estimates add this much (percent) to the base and L1 parts: the base fee may rise by 1/8 per
#: block (two blocks: +27 %) and the L1 origin may move before the transaction is included.
ESTIMATE_HEADROOM_PERCENT = 30


@dataclass(frozen=True, slots=True)
class FeeEstimate:
    """A suggestion for one native transfer: the parts now, and the ``fee`` to send (the
    parts with headroom, plus the priority fee; under op-ecotone and arbitrum-l1-pricer what
    is not needed goes to the proposer as extra priority)."""

    base: int
    l1: int
    priority: int
    fee: int


def suggested_priority_per_gas(ctx: FeeContext | None) -> int:
    """A priority fee per gas that gets a transfer into the next block when blocks are not
    full: a tenth of the base fee (at least 1 wei); 1 wei per transfer's gas under flat."""
    if ctx is None or not ctx.params.charges_base_fee:
        return 0
    return max(1, ctx.base_fee // 10)


def estimate_native(ctx: FeeContext | None, view: TxFeeView) -> FeeEstimate:
    """The fee to put in a native transfer with fee view ``view`` (its bytes with the largest
    fee it may carry, so the L1 part is an upper bound). Flat: 1 (the historical default)."""
    if ctx is None or ctx.params.model == FLAT:
        return FeeEstimate(0, 0, 1, 1)
    base = ctx.base_fee * view.gas_used
    l1 = ctx.l1_fee(view)
    tip = suggested_priority_per_gas(ctx) * view.gas_used
    headroom = -(-(base + l1) * ESTIMATE_HEADROOM_PERCENT // 100)
    return FeeEstimate(base, l1, tip, min(base + l1 + headroom + tip, _MAX_U64))


def next_base_fee(params: FeeParams, base_fee: int, gas_used: int) -> int:
    """EIP-1559: the base fee of the child of a block with ``base_fee`` that used ``gas_used``.

    Moves towards the target by at most ``1 / max_change_denominator``; a rise is at least 1
    wei (as in EIP-1559); never below ``min_base_fee``.
    """
    target = params.gas_target
    d = params.max_change_denominator
    if gas_used == target:
        new = base_fee
    elif gas_used > target:
        new = base_fee + max(base_fee * (gas_used - target) // target // d, 1)
    else:
        new = base_fee - base_fee * (target - gas_used) // target // d
    return min(max(new, params.min_base_fee), _MAX_U64)


@dataclass(frozen=True, slots=True)
class BatchCost:
    """What the L1 charged for one accepted batch (read from the inbox's record)."""

    batch_number: int
    #: Wei posting the batch cost (L1 execution gas + blob gas; for an external-DA batch
    #: also the DA layer's fee, converted by the L1: docs/fees.md).
    cost: int
    #: Bytes of (compressed) L2 data the batch carried.
    data_bytes: int = 0


@dataclass(frozen=True, slots=True)
class L1FeeInfo:
    """What one finalized L1 block says for L2 fees (fed to the core as an input event).

    ``batch_costs``: the batches the inbox accepted in this block and what each cost;
    ``fee_config``: the owner's fee-model change made in this block, if any.
    """

    number: int
    base_fee: int
    blob_base_fee: int
    batch_costs: tuple[BatchCost, ...] = ()
    fee_config: FeeParams | None = field(default=None)

    def with_number(self, number: int) -> L1FeeInfo:
        return replace(self, number=number)

    @staticmethod
    def of(
        number: int,
        base_fee: int,
        blob_base_fee: int,
        batches: Iterable[tuple[int, int, int]],
        setting: str | None,
    ) -> L1FeeInfo:
        """From what the L1 serves (``seq_getL1FeeInfo``): ``batches`` as (number, cost,
        bytes), ``setting`` the owner's JSON text (:func:`fee_params_of`)."""
        costs = tuple(BatchCost(n, c, b) for n, c, b in batches)
        return L1FeeInfo(number, base_fee, blob_base_fee, costs, fee_params_of(setting))

    def to_bytes(self) -> bytes:
        """A compact encoding (the node stores the fee data it fed its core)."""
        head = b"".join(n.to_bytes(16, "big") for n in (self.number, self.base_fee,
                                                         self.blob_base_fee))  # fmt: skip
        costs = b"".join(
            b.batch_number.to_bytes(8, "big") + b.cost.to_bytes(16, "big")
            + b.data_bytes.to_bytes(8, "big")
            for b in self.batch_costs
        )  # fmt: skip
        cfg = b"" if self.fee_config is None else self.fee_config.canonical()
        return head + len(self.batch_costs).to_bytes(4, "big") + costs + cfg

    @staticmethod
    def from_bytes(data: bytes) -> L1FeeInfo:
        """Inverse of :meth:`to_bytes`. Raises FeeParamsError on malformed bytes."""
        if len(data) < 52:
            raise FeeParamsError("L1 fee info: truncated")
        number, base, blob = (int.from_bytes(data[i : i + 16], "big") for i in (0, 16, 32))
        count = int.from_bytes(data[48:52], "big")
        end = 52 + 32 * count
        if len(data) not in (end, end + _PARAMS_BYTES):
            raise FeeParamsError("L1 fee info: malformed")
        costs = tuple(
            BatchCost(int.from_bytes(data[p : p + 8], "big"),
                      int.from_bytes(data[p + 8 : p + 24], "big"),
                      int.from_bytes(data[p + 24 : p + 32], "big"))
            for p in range(52, end, 32)
        )  # fmt: skip
        cfg = FeeParams.from_canonical(data[end:]) if len(data) > end else None
        return L1FeeInfo(number, base, blob, costs, cfg)


@dataclass(frozen=True, slots=True)
class FeeState:
    """The fee part of the L2 state after a block (committed to by the state root)."""

    params: FeeParams
    #: L2 base fee of the next block.
    base_fee: int
    #: The last L1 block whose :class:`L1FeeInfo` was consumed (None before the first block).
    l1_origin: int | None = None
    l1_base_fee: int = 0
    l1_blob_base_fee: int = 0
    #: arbitrum-l1-pricer: price of one compressed byte, bytes sold since the last batch
    #: report, and the surplus (vault funds minus what is owed) after that report.
    price_per_byte: int = 0
    bytes_since_report: int = 0
    last_surplus: int = 0
    #: Posting costs the L1 fee vault could not pay yet (paid first from later fees).
    owed: int = 0
    #: Running totals since genesis (reporting: what the L2 collected per batch, what the L1
    #: fee vault paid the batcher): base fees, L1 data fees, priority fees, reimbursements.
    collected_base: int = 0
    collected_l1: int = 0
    collected_priority: int = 0
    paid_to_batcher: int = 0
    #: A model set by the owner on L1, in force from the next epoch's first block.
    pending: FeeParams | None = None

    @staticmethod
    def genesis(params: FeeParams) -> FeeState:
        return FeeState(
            params, params.initial_base_fee, price_per_byte=params.initial_price_per_byte
        )

    def context(self) -> FeeContext:
        """The fee context of a block built on this state (after its L1 data was consumed)."""
        return FeeContext(self.params, self.base_fee, self.l1_base_fee, self.l1_blob_base_fee,
                          self.price_per_byte)  # fmt: skip

    def l1_needed(self, l1_origin: int) -> range:
        """The L1 block numbers whose :class:`L1FeeInfo` a block with ``l1_origin`` needs."""
        if self.l1_origin is None:
            return range(l1_origin, l1_origin + 1)
        return range(self.l1_origin + 1, l1_origin + 1)

    def canonical(self) -> bytes:
        """Fixed-layout bytes for the state root and the snapshot (:meth:`from_canonical`)."""
        nums = (
            self.base_fee, -1 if self.l1_origin is None else self.l1_origin, self.l1_base_fee,
            self.l1_blob_base_fee, self.price_per_byte, self.bytes_since_report,
            self.last_surplus, self.owed, self.collected_base, self.collected_l1,
            self.collected_priority, self.paid_to_batcher,
        )  # fmt: skip
        body = b"".join(n.to_bytes(_NUM_BYTES, "big", signed=True) for n in nums)
        pending = b"" if self.pending is None else self.pending.canonical()
        return self.params.canonical() + body + pending

    @staticmethod
    def from_canonical(data: bytes) -> FeeState:
        """Inverse of :meth:`canonical`. Raises FeeParamsError on malformed bytes."""
        n = _PARAMS_BYTES + _NUMS * _NUM_BYTES
        if len(data) not in (n, n + _PARAMS_BYTES):
            raise FeeParamsError("fee state: malformed canonical bytes")
        params = FeeParams.from_canonical(data[:_PARAMS_BYTES])
        nums = [
            int.from_bytes(data[i : i + _NUM_BYTES], "big", signed=True)
            for i in range(_PARAMS_BYTES, n, _NUM_BYTES)
        ]
        if min(nums[0], nums[1] + 1, *nums[2:6], *nums[7:]) < 0:
            raise FeeParamsError("fee state: negative amount")
        pending = FeeParams.from_canonical(data[n:]) if len(data) > n else None
        return FeeState(
            params, nums[0], None if nums[1] < 0 else nums[1], l1_base_fee=nums[2],
            l1_blob_base_fee=nums[3], price_per_byte=nums[4], bytes_since_report=nums[5],
            last_surplus=nums[6], owed=nums[7], collected_base=nums[8], collected_l1=nums[9],
            collected_priority=nums[10], paid_to_batcher=nums[11], pending=pending,
        )  # fmt: skip


_NUM_BYTES = 17
_NUMS = 12


def reprice(state: FeeState, surplus: int, units: int) -> int:
    """ArbOS's L1 price update after a batch report (``l1pricing.go``, UpdateForBatchPoster-
    Spending): the price moves so that the surplus would vanish over ``equilibration_units``
    bytes, minus the surplus's own trend, damped by ``inertia``::

        desired = -surplus / equil;  actual = (surplus - last_surplus) / units
        price += (desired - actual) * units / (equil / inertia + units)

    ``units``: compressed bytes sold since the previous report. Never below zero.
    """
    p = state.params
    if units <= 0:
        return state.price_per_byte
    equil = p.equilibration_units
    inertia_units = equil // max(p.inertia, 1)
    desired = _div(-surplus, equil)
    actual = _div(surplus - state.last_surplus, units)
    change = _div((desired - actual) * units, inertia_units + units)
    return min(max(state.price_per_byte + change, 0), _MAX_U64)


def _div(a: int, b: int) -> int:
    """Division rounding towards zero (Go's big.Int Quo), not Python's floor."""
    q = abs(a) // b
    return q if a >= 0 else -q


__all__ = [
    "ARBITRUM_L1_PRICER",
    "BASE_FEE_VAULT",
    "BATCHER_ACCOUNT",
    "FLAT",
    "L1_FEE_VAULT",
    "MODELS",
    "NATIVE_TX_GAS",
    "FJORD_FASTLZ_COEF",
    "FJORD_INTERCEPT",
    "FJORD_MIN_TX_SIZE",
    "OP_ECOTONE",
    "OP_FJORD",
    "BatchCost",
    "FeeCharge",
    "FeeContext",
    "FeeEstimate",
    "FeeParams",
    "FeeParamsError",
    "FeeState",
    "L1FeeInfo",
    "TxFeeView",
    "calldata_gas",
    "charge",
    "ecotone_l1_fee",
    "fee_params_of",
    "estimate_native",
    "fjord_l1_fee",
    "fjord_size_scaled",
    "next_base_fee",
    "reprice",
    "suggested_priority_per_gas",
]
