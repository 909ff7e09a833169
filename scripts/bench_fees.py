"""Benchmark the L2 fee models against the L1 cost of posting (issue 15, "Measure").

For each L1 fork (Cancun, and the newest in the schedule, BPO2), DA mode (blobs, calldata,
external DA), blob market (quiet; congested: other rollups fill every block's blobs for a
while; for external DA also a congested *DA* market) and fee model (flat, op-ecotone,
arbitrum-l1-pricer, op-fjord) it runs, in process and deterministically:

* the L1 blob fee market of the pure L1 model (``l1_mock.chain.fees``: excess blob gas,
  ``fake_exponential``) with competing blob demand, 12 s slots, the mock L1's 1 gwei execution
  base fee, and finality two epochs (64 blocks) behind the head, as the mock L1;
* the L2 ledger (``sequencer_node.core.ledger`` with the fee model), 2 s blocks, users sending
  native transfers whose fee is the node's estimate (``/v1/fees``: :func:`estimate_native` at the
  newest finalized L1 data); blocks take their L1 origin at the finalized head and consume the
  L1 fee data of the blocks they pass (base fees, batch posting costs), as the nodes do;
* the batcher: batch payload bytes per transfer measured with the real batch codec and
  compression; a blob batch (one blob) when a blob is full or 25 L1 blocks passed, a calldata
  batch every 10 L1 blocks; its L1 cost as the mock L1 charges it (21,000 + 50,000 execution gas
  + calldata gas at the execution base fee, plus blob gas at the blob base fee);
* external DA: extda batches cut as blob batches are (the same payload per batch); the L1 cost
  of one is the pointer post (21,000 +
  50,000 + the calldata gas of the real pointer proof, built with ``wire.da.attest`` for a blob
  of that size in a DA block beside another rollup's blob, attestation window 10), its DA cost
  what the DA mock charges (``pfb.blob_fee``: 65,000 + 8 gas per share byte, times the DA
  block's base fee under the DA mock's own EIP-1559 rule, 2 s DA blocks, from its floor 1,
  where a DA chain without other traffic settles), converted
  at ``--da-wei-per-unit`` wei per DA fee unit; the L1 reports their sum as the batch's
  posting cost, as ``seq_getL1FeeInfo`` does. The congested DA market: other DA users fill
  every DA block from minute 60 until its base fee is 100x the floor, hold it there until
  minute 140, then stop.

Writes ``bench-results/fees.json`` and PNG plots ``bench-results/fees-*.png``; prints a table.
Run: ``python scripts/bench_fees.py [--minutes 180] [--rate 2]`` (about 4 minutes of CPU).
The congested market: from minute 60 (the L1 pricer has converged by then) to minute 140 the
other rollups fill every block's blobs until the blob base fee reaches 10 gwei, then hold it
there; after minute 140 they stop.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from l1_mock.chain.fees import blob_base_fee, calc_excess_blob_gas, calldata_gas
from l1_mock.chain.machine import CALL_EXECUTION_GAS
from l1_mock.da.chain import DAConfig, next_base_fee
from sequencer_node.batching.codec import Batch, encode_payload
from sequencer_node.batching.sample import sample_chain
from sequencer_node.core.fees import (
    ARBITRUM_L1_PRICER,
    FLAT,
    OP_ECOTONE,
    OP_FJORD,
    BatchCost,
    FeeParams,
    L1FeeInfo,
    estimate_native,
)
from sequencer_node.core.ledger import FeeInput, Ledger
from sequencer_node.shell.fee_views import pricing_context, widest_view
from sequencer_node.wire.blobs import BLOB_SCHEDULE, GAS_PER_BLOB, BlobParams
from sequencer_node.wire.codec import encode
from sequencer_node.wire.crypto import SigningKey
from sequencer_node.wire.da import nmt
from sequencer_node.wire.da.attest import DataRootTuple, make_commitment, prove_pointer
from sequencer_node.wire.da.pfb import blob_fee, share_gas
from sequencer_node.wire.da.shares import layout, shares_needed, user_namespace
from sequencer_node.wire.messages import Transaction

OUT = Path(__file__).resolve().parent.parent / "bench-results"
L1_SLOT_S = 12
L2_BLOCK_S = 2
L1_BASE_FEE = 10**9  # the mock L1's execution base fee
FINALITY_LAG = 64  # L1 blocks: the mock finalizes two 32-slot epochs behind the head
USABLE_BLOB_BYTES = 130_044
BLOB_MAX_WAIT = 25  # L1 blocks a partly filled blob waits at most
CALLDATA_EVERY = 10  # L1 blocks between calldata batches
DA_SLOT_S = 2  # the DA mock's default block time
DA = DAConfig()
#: Wei per DA fee unit (default of ``--da-wei-per-unit``): Celestia's minimum gas price, 0.002
#: utia per gas, with TIA at 1/600 ETH (about $5 and $3,000) is 3.3e6 wei per gas; the DA
#: mock's floor is 1 unit per gas, so one unit is priced 3.3e6 wei.
DA_WEI_PER_UNIT = 3_333_333
DA_SPIKE_CAP = 100 * DA.min_base_fee
SPIKE_START_MIN = 60
SPIKE_MINUTES = 80
#: Other rollups post full blocks until the blob base fee reaches this (wei per blob gas, 10
#: gwei, the order of 2024's blob spikes), then hold it there until the spike ends.
SPIKE_CAP = 10**10
USERS = 64
PROPOSER = SigningKey.deterministic("bench-fees-proposer").public_key
MODELS = {
    FLAT: FeeParams(model=FLAT),
    OP_ECOTONE: FeeParams(model=OP_ECOTONE, initial_base_fee=10_000, min_base_fee=1_000),
    ARBITRUM_L1_PRICER: FeeParams(
        model=ARBITRUM_L1_PRICER,
        initial_base_fee=10_000,
        min_base_fee=1_000,
        initial_price_per_byte=10**6,
        equilibration_units=200_000,
        inertia=10,
    ),
    OP_FJORD: FeeParams(model=OP_FJORD, initial_base_fee=10_000, min_base_fee=1_000),
}


def payload_bytes_per_tx(txs_per_block: int) -> float:
    """Compressed batch payload per transfer, from the real codec on a sample chain."""
    _, blocks = sample_chain(accounts=USERS, blocks=60, txs_per_block=txs_per_block)
    payload = encode_payload(Batch.from_certified(blocks))
    return len(payload) / (60 * txs_per_block)


@dataclass
class L1Market:
    """The L1 blob fee market, one block per slot (pure functions of the L1 model)."""

    params: BlobParams
    congested: bool
    excess: int = 0
    used: int = 0
    number: int = 0
    fees: list[int] = field(default_factory=list)

    def next_block(self, our_blobs: int) -> int:
        """Make the next L1 block with our blobs and the others'; return its blob base fee."""
        self.excess = calc_excess_blob_gas(self.excess, self.used, L1_BASE_FEE, self.params)
        fee = blob_base_fee(self.excess, self.params)
        minute = self.number * L1_SLOT_S / 60
        spike = self.congested and SPIKE_START_MIN <= minute < SPIKE_START_MIN + SPIKE_MINUTES
        if not spike:
            others = max(self.params.target - 1, 0) if minute < SPIKE_START_MIN else 0
        elif fee < SPIKE_CAP:
            others = self.params.max - our_blobs
        else:
            others = max(self.params.target - our_blobs, 0)
        self.used = (our_blobs + others) * GAS_PER_BLOB
        self.number += 1
        self.fees.append(fee)
        return fee


class DAMarket:
    """The DA chain's fee market (the DA mock's EIP-1559 rule), one DA block per 2 s."""

    def __init__(self, congested: bool) -> None:
        self.congested = congested
        self.base_fee = DA.min_base_fee  # where a DA chain without other traffic settles
        self.t = 0

    def until(self, t_s: int, our_gas: int) -> int:
        """Make the DA blocks up to time ``t_s``; our blob (``our_gas``) goes in the first;
        return the base fee it paid."""
        paid = self.base_fee
        first = True
        while self.t < t_s:
            minute = self.t / 60
            spike = self.congested and SPIKE_START_MIN <= minute < SPIKE_START_MIN + SPIKE_MINUTES
            others = 0
            if spike:
                others = DA.block_gas_limit if self.base_fee < DA_SPIKE_CAP else DA.gas_target
            used = min(DA.block_gas_limit, others + (our_gas if first else 0))
            if first:
                paid, first = self.base_fee, False
            self.base_fee = next_base_fee(self.base_fee, used, DA)
            self.t += DA_SLOT_S
        return paid


_PROOFS: dict[int, bytes] = {}


def pointer_proof(payload_len: int) -> bytes:
    """The encoded pointer proof of a ``payload_len``-byte blob (what an extda batch
    posts as calldata): a real proof, the blob beside another rollup's in its DA block,
    attestation window 10."""
    shares = shares_needed(payload_len)
    if shares not in _PROOFS:
        ours, other = user_namespace(b"bench-l2-a"), user_namespace(b"bench-l2-b")
        blk, placed = layout([(other, b"o" * 4_000), (ours, b"p" * payload_len)])
        p = next(x for x in placed if x.namespace == ours)
        tuples = [DataRootTuple(h, len(blk), nmt.root(blk), 1) for h in range(1, 11)]
        _, proof = prove_pointer(blk, 1, p.start, p.end, tuples, make_commitment(0, tuples))
        _PROOFS[shares] = encode(proof)
    return _PROOFS[shares]


def _calldata(n: int, seed: int) -> bytes:
    """``n`` bytes that look like compressed data (deterministic)."""
    out = bytearray()
    c = 0
    while len(out) < n:
        out += hashlib.sha256(seed.to_bytes(8, "big") + c.to_bytes(8, "big")).digest()
        c += 1
    return bytes(out[:n])


@dataclass
class Run:
    fork: str
    da: str
    market: str
    model: str
    rate: float
    minutes: int
    bytes_per_tx: float
    da_wei_per_unit: int = DA_WEI_PER_UNIT
    series: list[dict[str, float]] = field(default_factory=list)
    result: dict[str, Any] = field(default_factory=dict)


def run(r: Run) -> Run:
    params = BLOB_SCHEDULE[r.fork]
    market = L1Market(params, r.market == "congested")
    da_market = DAMarket(r.market == "da-congested")
    da_cost = da_paid = da_wei = 0
    da_fees: list[int] = []
    users = [SigningKey.deterministic(f"bench-fees-user-{i}") for i in range(USERS)]
    ledger = Ledger.genesis({u.address: 10**24 for u in users}, MODELS[r.model])
    nonces = [0] * USERS
    infos: list[L1FeeInfo] = []
    per_block = max(1, round(r.rate * L2_BLOCK_S))
    pending_bytes = 0.0
    pending_txs = 0
    waited = 0
    l1_cost = txs_total = refused = 0
    user_fees = [0, 0, 0]
    pre_spike_fee: float | None = None
    react_s: float | None = None
    blob_x2_s: float | None = None
    spike_at = SPIKE_START_MIN * 60
    for l1 in range((r.minutes * 60) // L1_SLOT_S):
        # --- the batcher posts at this L1 block? ------------------------------------------
        blobs, cost = 0, 0
        waited += 1
        post = False
        if r.da in ("blobs", "extda"):  # extda batches are cut as blob batches are
            post = pending_bytes >= USABLE_BLOB_BYTES or (
                waited >= BLOB_MAX_WAIT and pending_txs > 0
            )
        else:
            post = waited >= CALLDATA_EVERY and pending_txs > 0
        fee = market.next_block(1 if post and r.da == "blobs" else 0)
        if r.da == "extda":
            shares = shares_needed(int(pending_bytes)) if post else 0
            da_paid = da_market.until((l1 + 1) * L1_SLOT_S, share_gas(shares) if post else 0)
            da_fees.append(da_paid)
        if post:
            if r.da == "blobs":
                blobs = 1
                gas = calldata_gas(b"", params, CALL_EXECUTION_GAS)
                cost = gas * L1_BASE_FEE + GAS_PER_BLOB * fee
            elif r.da == "extda":
                proof = pointer_proof(int(pending_bytes))
                cost = calldata_gas(proof, params, CALL_EXECUTION_GAS) * L1_BASE_FEE
                da_wei = blob_fee(shares, da_paid) * r.da_wei_per_unit
                da_cost += da_wei
            else:
                data = _calldata(int(pending_bytes), l1)
                cost = calldata_gas(data, params, CALL_EXECUTION_GAS) * L1_BASE_FEE
            l1_cost += cost
            if r.da == "extda":
                cost += da_wei  # the L1 reports L1 gas + DA fee as the posting cost
            posted = USABLE_BLOB_BYTES if blobs else pending_bytes
            pending_bytes = max(0.0, pending_bytes - posted)
            pending_txs = 0
            waited = 0
        batch = (BatchCost(len(infos), cost, 0),) if post else ()
        infos.append(L1FeeInfo(l1, L1_BASE_FEE, fee, batch))
        # --- the L2 blocks of this slot ----------------------------------------------------
        finalized = max(0, l1 - FINALITY_LAG)
        for _ in range(L1_SLOT_S // L2_BLOCK_S):
            state = ledger.fee_state()
            assert state is not None
            ctx = pricing_context(state, infos[finalized])
            est = estimate_native(ctx, widest_view())
            txs = []
            for k in range(per_block):
                u = (txs_total + k) % USERS
                sig = hashlib.sha512(users[u].public_key + nonces[u].to_bytes(8, "big")).digest()
                txs.append(Transaction(users[u].public_key, users[(u + 1) % USERS].address,
                                       1 + k, nonces[u], est.fee, sig))  # fmt: skip
            need = ledger.l1_needed(finalized)
            fin = FeeInput(finalized, tuple(infos[n] for n in need))
            ledger, included, receipts, dropped = ledger.build_block(
                txs, [], proposer=PROPOSER, fee_input=fin
            )
            refused += len(dropped)
            for tx in included:
                assert isinstance(tx, Transaction)  # the run submits native transfers only
                nonces[(txs.index(tx) + txs_total) % USERS] += 1
            for rc in receipts:
                user_fees[0] += rc.base_fee_paid
                user_fees[1] += rc.l1_fee_paid
                user_fees[2] += rc.fee_paid - rc.base_fee_paid - rc.l1_fee_paid
            txs_total += len(included)
            pending_txs += len(included)
            pending_bytes += len(included) * r.bytes_per_tx
        # --- the series and the reaction to the spike ---------------------------------------
        t = l1 * L1_SLOT_S
        charged_l1 = float(est.l1)
        watched = da_fees if r.market == "da-congested" else market.fees
        if t >= spike_at and blob_x2_s is None and watched[-1] >= 2 * max(watched[0], 1):
            blob_x2_s = t - spike_at
        if t < spike_at:  # the highest before the spike: the pricer's own swings are not it
            pre_spike_fee = max(pre_spike_fee or 0.0, charged_l1)
        elif (
            react_s is None
            and pre_spike_fee is not None
            and charged_l1 >= 2 * max(pre_spike_fee, 1.0)
        ):
            react_s = t - spike_at
        state = ledger.fee_state()
        assert state is not None
        vault = ledger.balance(state.params.l1_fee_vault)
        r.series.append({
            "t_min": t / 60, "blob_base_fee": fee, "l1_fee_per_tx": charged_l1,
            "base_fee_per_tx": float(est.base), "surplus": float(vault - state.owed),
            "l1_cost": float(l1_cost + da_cost), "l1_collected": float(state.collected_l1),
            "da_base_fee": float(da_fees[-1]) if da_fees else 0.0,
        })  # fmt: skip
    state = ledger.fee_state()
    assert state is not None
    n = max(txs_total, 1)
    r.result = {
        "fork": r.fork, "da": r.da, "market": r.market, "model": r.model,
        "txs": txs_total, "refused": refused,
        "user_fee_per_tx": sum(user_fees) / n,
        "user_base_fee_per_tx": user_fees[0] / n,
        "user_l1_fee_per_tx": user_fees[1] / n,
        "user_priority_per_tx": user_fees[2] / n,
        "l1_cost_per_tx": l1_cost / n,
        "da_cost_per_tx": da_cost / n,
        "posting_cost_per_tx": (l1_cost + da_cost) / n,
        "sequencer_set_per_tx": (l1_cost + da_cost - state.collected_l1) / n,
        "l1_cost_total": l1_cost,
        "da_cost_total": da_cost,
        "l1_fees_collected": state.collected_l1,
        "coverage": state.collected_l1 / (l1_cost + da_cost) if l1_cost + da_cost else None,
        "vault_owed_at_end": state.owed,
        "max_blob_base_fee": max(market.fees),
        "max_da_base_fee": max(da_fees) if da_fees else None,
        # the blob base fee's doubling; under "da-congested" the DA base fee's
        "blob_fee_x2_s": blob_x2_s if r.market != "quiet" else None,
        "l1_fee_x2_s": react_s if r.market != "quiet" else None,
    }  # fmt: skip
    return r


def plot(runs: list[Run]) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plots (pip install matplotlib)")
        return []
    files = []
    for fork, da, market in sorted({(r.fork, r.da, r.market) for r in runs}):
        sel = [r for r in runs if (r.fork, r.da, r.market) == (fork, da, market)]
        if market == "quiet":
            continue
        key = "da_base_fee" if market == "da-congested" else "blob_base_fee"
        what = (
            "DA base fee (DA units/gas)" if key == "da_base_fee" else "L1 blob base fee (wei/gas)"
        )
        fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 7), sharex=True)
        t = [p["t_min"] for p in sel[0].series]
        ax1.semilogy(t, [max(p[key], 1) for p in sel[0].series], color="black")
        ax1.set_ylabel(what)
        ax1.set_title(f"{fork}, {da}: {what.split(' (')[0]} spike at {SPIKE_START_MIN} min "
                      f"for {SPIKE_MINUTES} min")  # fmt: skip
        for r in sel:
            ratio = [p["l1_collected"] / p["l1_cost"] if p["l1_cost"] else 0.0
                     for p in r.series]  # fmt: skip
            ax2.plot(t, ratio, label=r.model)
        ax2.axhline(1.0, color="grey", lw=0.5)
        ax2.set_ylabel("L1 fees collected / posting cost (cumulative)")
        ax2.set_xlabel("minutes")
        ax2.legend()
        name = f"fees-{fork}-{da}{'-da-spike' if market == 'da-congested' else ''}.png"
        fig.tight_layout()
        fig.savefig(OUT / name, dpi=90)
        plt.close(fig)
        files.append(name)
    return files


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=int, default=180, help="simulated time per run")
    ap.add_argument("--rate", type=float, default=2.0, help="L2 transfers per second")
    ap.add_argument("--da-wei-per-unit", type=int, default=DA_WEI_PER_UNIT,
                    help="wei per DA fee unit (external DA)")  # fmt: skip
    ap.add_argument("--only-da", choices=("blobs", "calldata", "extda"), action="append",
                    help="run only these DA modes (repeatable; default all)")  # fmt: skip
    args = ap.parse_args()
    OUT.mkdir(exist_ok=True)
    t0 = time.monotonic()
    bpt = payload_bytes_per_tx(max(1, round(args.rate * L2_BLOCK_S)))
    runs = []
    for fork in ("cancun", "bpo2"):
        for da in args.only_da or ("blobs", "calldata", "extda"):
            markets = (
                ("quiet", "congested", "da-congested") if da == "extda" else ("quiet", "congested")
            )
            for market in markets:
                for model in MODELS:
                    runs.append(run(Run(fork, da, market, model, args.rate, args.minutes, bpt,
                                        args.da_wei_per_unit)))  # fmt: skip
    files = plot(runs)
    settings = {
        "minutes": args.minutes, "rate_tx_s": args.rate, "l1_slot_s": L1_SLOT_S,
        "l2_block_s": L2_BLOCK_S, "l1_base_fee": L1_BASE_FEE, "finality_lag_blocks": FINALITY_LAG,
        "payload_bytes_per_tx": round(bpt, 1), "spike_start_min": SPIKE_START_MIN,
        "spike_minutes": SPIKE_MINUTES, "spike_cap_wei": SPIKE_CAP,
        "da_slot_s": DA_SLOT_S, "da_wei_per_unit": args.da_wei_per_unit,
        "da_spike_cap": DA_SPIKE_CAP, "da_min_base_fee": DA.min_base_fee,
        "models": {k: v.to_json() for k, v in MODELS.items()},
    }  # fmt: skip
    results = [r.result for r in runs]
    doc = {
        "about": __doc__,
        "settings": settings,
        "results": results,
        "plots": files,
        "seconds": round(time.monotonic() - t0, 1),
    }
    (OUT / "fees.json").write_text(json.dumps(doc, indent=1) + "\n")
    print(f"payload {bpt:.1f} B/tx; {len(runs)} runs in {doc['seconds']} s")
    head = ("fork", "da", "market", "model", "user fee/tx", "L1 fee/tx", "L1 cost/tx",
            "DA cost/tx", "sequencers/tx", "coverage", "fee x2 s", "L1 fee x2 s")  # fmt: skip
    print(" | ".join(head))
    for x in results:
        cov = "-" if x["coverage"] is None else f"{x['coverage']:.2f}"
        print(f"{x['fork']} | {x['da']} | {x['market']} | {x['model']} | "
              f"{x['user_fee_per_tx']:.3g} | {x['user_l1_fee_per_tx']:.3g} | "
              f"{x['l1_cost_per_tx']:.3g} | {x['da_cost_per_tx']:.3g} | "
              f"{x['sequencer_set_per_tx']:.3g} | {cov} | {x['blob_fee_x2_s']} | "
              f"{x['l1_fee_x2_s']}")  # fmt: skip


if __name__ == "__main__":
    main()
