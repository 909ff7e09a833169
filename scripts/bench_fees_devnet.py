"""Check scripts/bench_fees.py's cost model on real processes (issue 15, "Measure").

For each fee model it starts ``seqctl devnet up --da extda --fee-model M`` (L1 mock, DA mock
with its relayer, four node processes), sends a few hundred native transfers with ``seqctl
load`` (fees from the node's estimate), waits until every one is in a batch the L1 accepted,
and sums the nodes' per-batch reports (``GET /v1/batches``: the L1's charge, the DA fee, the
posting cost, the fees the L2 collected). For each batch it also prices the batch as
bench_fees.py's model does from the batch's payload size alone (the pointer post's calldata gas
with a model proof, the DA fee at the DA block's base fee) and reports measured / model.

Writes ``bench-results/fees-devnet.json``; prints a table. About 2-3 minutes per model:
``python scripts/bench_fees_devnet.py [--txs 300] [--models flat,op-ecotone,...]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from bench_fees import OUT, pointer_proof

from l1_mock.chain.fees import calldata_gas
from l1_mock.chain.machine import CALL_EXECUTION_GAS
from sequencer_node.devnet.config import DevnetConfig
from sequencer_node.devnet.ports import free_block
from sequencer_node.wire.blobs import BLOB_SCHEDULE
from sequencer_node.wire.codec import decode
from sequencer_node.wire.da.pfb import blob_fee
from sequencer_node.wire.da.shares import shares_needed
from sequencer_node.wire.hexstr import from_hex
from sequencer_node.wire.messages import BatchHeader

SEQCTL = [sys.executable, "-m", "sequencer_node.cli"]
MODELS = ("flat", "op-ecotone", "arbitrum-l1-pricer")


def _seqctl(*args: str, timeout: float = 300) -> str:
    r = subprocess.run([*SEQCTL, *args], capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"seqctl {' '.join(args)}: {r.stdout[-2000:]} {r.stderr[-2000:]}")
    return r.stdout


def _rows(node_url: str) -> list[dict[str, Any]]:
    return list(httpx.get(node_url + "/v1/batches", timeout=10).json()["batches"])


def _settled(rows: list[dict[str, Any]], txs: int) -> bool:
    acc = [r for r in rows if r["state"] == "accepted"]
    return (
        sum(int(r["txs"] or 0) for r in acc) >= txs
        and all(r.get("l2_collected") is not None for r in acc)
        and all(r["state"] == "accepted" for r in rows)
    )


def _model_cost(row: dict[str, Any], l1_base_fee: int, da_base_fee: int, fork: str) -> int:
    """What bench_fees.py's model charges a batch of this payload size (wei, at the DA rate 1
    the devnet's L1 uses)."""
    proof = pointer_proof(int(row["payload_bytes"]))
    l1 = calldata_gas(proof, BLOB_SCHEDULE[fork], CALL_EXECUTION_GAS) * l1_base_fee
    return l1 + blob_fee(shares_needed(int(row["payload_bytes"])), da_base_fee)


def one_model(model: str, txs: int, rate: float, work: Path) -> dict[str, Any]:
    d = work / model
    base = free_block(100)
    _seqctl("devnet", "up", "--detach", "--fresh", "--da", "extda", "--fee-model", model,
            "--no-load", "--slot-time", "1", "--dir", str(d), "--l1-port", str(base),
            "--rpc-port", str(base + 10), "--p2p-port", str(base + 50),
            "--da-port", str(base + 90), timeout=300)  # fmt: skip
    try:
        cfg = DevnetConfig.read(d)
        node = cfg.rpc_url(0)
        body = {"jsonrpc": "2.0", "id": 1, "method": "seq_getConfig", "params": []}
        l1cfg = httpx.post(cfg.l1_url, json=body, timeout=10).json()["result"]
        t0 = time.monotonic()
        _seqctl("load", "--node-url", node, "--rate", str(rate), "--duration",
                f"{txs / rate:.0f}", "--quiet", "--json", timeout=600)  # fmt: skip
        deadline = time.monotonic() + 300
        while not _settled(rows := _rows(node), txs) and time.monotonic() < deadline:
            time.sleep(2)
        rows = [r for r in rows if r["state"] == "accepted" and r.get("txs")]
        l1_base = int(l1cfg["baseFeePerGas"])
        fork = str(l1cfg["forks"][-1][1])
        da = httpx.Client(base_url=cfg.da_url, timeout=10)
        per_batch = []
        for r in (r for r in rows if r["da"] == "extda"):
            ptr_h = _da_height(cfg.l1_url, int(r["number"]))
            da_fee = int(da.get(f"/v1/headers/{ptr_h}").json()["baseFeePerGas"])
            model_cost = _model_cost(r, l1_base, da_fee, fork)
            cost = int(r["total_cost"])
            per_batch.append({"number": r["number"], "txs": r["txs"],
                              "payload_bytes": r["payload_bytes"], "total_cost": cost,
                              "model_cost": model_cost,
                              "measured_over_model": round(cost / model_cost, 4)})  # fmt: skip
        return _summary(model, rows, per_batch, time.monotonic() - t0)
    finally:
        subprocess.run([*SEQCTL, "devnet", "down", "--dir", str(d)], timeout=120, check=False,
                       capture_output=True)  # fmt: skip


def _da_height(l1_url: str, batch: int) -> int:
    """The DA height of batch ``batch``'s pointer (from the L1 inbox)."""
    body = {"jsonrpc": "2.0", "id": 1, "method": "inbox_getBatches", "params": [batch, 1]}
    (row,) = httpx.post(l1_url, json=body, timeout=10).json()["result"]
    h = decode(from_hex(row["header"]), BatchHeader)
    if h.da_pointer is None:
        raise RuntimeError(f"batch {batch} is not an extda batch")
    return h.da_pointer.height


def _summary(model: str, rows: list[dict[str, Any]], per_batch: list[dict[str, Any]],
             seconds: float) -> dict[str, Any]:  # fmt: skip
    n = sum(int(r["txs"]) for r in rows) or 1
    l1 = sum(int(r["fee_paid"]) for r in rows)
    da = sum(int(r["da_fee_wei"]) for r in rows)
    got = [r["l2_collected"] for r in rows]
    base = sum(int(g["base_fee"]) for g in got)
    l1_fees = sum(int(g["l1_data_fee"]) for g in got)
    prio = sum(int(g["priority_fee"]) for g in got)
    ratios = [b["measured_over_model"] for b in per_batch]
    return {
        "model": model, "batches": len(rows), "txs": n, "seconds": round(seconds, 1),
        "kinds": sorted({r["da"] for r in rows}),
        "user_fee_per_tx": (base + l1_fees + prio) / n, "user_l1_fee_per_tx": l1_fees / n,
        "l1_cost_per_tx": l1 / n, "da_cost_per_tx": da / n,
        "posting_cost_per_tx": (l1 + da) / n,
        "sequencer_set_per_tx": (l1 + da - l1_fees) / n,
        "coverage": l1_fees / (l1 + da) if l1 + da else None,
        "measured_over_model": {"min": min(ratios, default=None),
                                "max": max(ratios, default=None)},
        "per_batch": per_batch,
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--txs", type=int, default=300, help="transfers per model")
    ap.add_argument("--rate", type=float, default=10.0, help="transfers per second")
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated fee models")
    args = ap.parse_args()
    results: list[dict[str, Any]] = []
    OUT.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-fees-devnet-") as tmp:
        for model in args.models.split(","):
            results.append(one_model(model, args.txs, args.rate, Path(tmp)))
            doc = {"about": __doc__, "txs": args.txs, "rate": args.rate, "results": results}
            (OUT / "fees-devnet.json").write_text(json.dumps(doc, indent=1) + "\n")
            x = results[-1]
            print(f"{model}: {x['txs']} txs in {x['batches']} batches {x['kinds']}; user "
                  f"{x['user_fee_per_tx']:.3g}/tx (L1 part {x['user_l1_fee_per_tx']:.3g}); "
                  f"posting {x['posting_cost_per_tx']:.3g}/tx (L1 {x['l1_cost_per_tx']:.3g}, "
                  f"DA {x['da_cost_per_tx']:.3g}); sequencer set {x['sequencer_set_per_tx']:.3g}"
                  f"/tx; coverage {x['coverage']}; measured/model "
                  f"{x['measured_over_model']}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
