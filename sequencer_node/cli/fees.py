"""``seqctl fees show|batches|set-model``: the L2 fee model in force and what a transfer costs
(from a node's ``/v1/fees``), what each batch cost to post (L1 and DA layer) against what the
L2 collected for it (from ``/v1/batches``), and the rollup owner's L1 call that changes the
model (docs/fees.md).

``set-model`` sends ``setFeeModel`` signed by the owner's keystore (the L1 refuses anyone
else); the L2 applies it from the first block of the L2 epoch after the L2 chain's L1 origin
passes the call's (finalized) L1 block.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from sequencer_node.cli.common import (
    emit,
    l1_url_option,
    node_url_option,
    open_key,
    password_file_option,
    render_kv,
    render_table,
)
from sequencer_node.cli.runner import ask_node, run_async
from sequencer_node.cli.stake import submit_and_wait
from sequencer_node.clients.l1 import L1Client
from sequencer_node.core.fees import MODELS, FeeParams, FeeParamsError
from sequencer_node.system.commandline import fail, json_option
from sequencer_node.wire.l1calls import SetFeeModel


@click.group()
def fees() -> None:
    """The L2 fee model: what a transfer costs now, and the owner's model change."""


@fees.command("show")
@node_url_option
@json_option
def fees_show(node_url: str, as_json: bool) -> None:
    """The model in force, the L2 base fee, the L1 data price, and a transfer's estimate."""

    doc = ask_node(node_url, lambda node: node.fees())
    if doc is None:
        fail(f"the node at {node_url} has no /v1/fees (an older node: flat fees)")

    def human(d: dict[str, Any]) -> str:
        t = d.get("native_transfer", {})
        return render_kv({
            "model": d.get("model"),
            "pending model": (d.get("pending_model") or {}).get("model", "-"),
            "at height": d.get("at_height"),
            "L2 base fee per gas": d.get("base_fee_per_gas"),
            "L1 origin": d.get("l1_origin"),
            "L1 base fee": d.get("l1_base_fee"),
            "L1 blob base fee": d.get("l1_blob_base_fee"),
            "L1 data price per byte": d.get("l1_data_price_per_byte"),
            "suggested priority per gas": d.get("suggested_priority_fee_per_gas"),
            "transfer: base fee": t.get("base_fee"),
            "transfer: L1 data fee": t.get("l1_data_fee"),
            "transfer: suggested fee": t.get("suggested_fee"),
        })  # fmt: skip

    emit(doc, as_json, human)


@fees.command("batches")
@node_url_option
@click.option("--last", type=click.IntRange(min=1), default=20, show_default=True,
              help="Show the newest N batches the node knows.")  # fmt: skip
@json_option
def fees_batches(node_url: str, last: int, as_json: bool) -> None:
    """Per batch: what the L1 charged (and, for external DA, the DA layer), what the L2
    collected for its blocks, and whether the L1 data fees covered the posting cost."""

    rows = ask_node(node_url, lambda node: node.batches())
    accepted = [r for r in rows if r.get("state") == "accepted"][-last:]
    emit(accepted, as_json, _render_fee_batches)


def _render_fee_batches(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no accepted batches known to this node yet"
    table = []
    for r in rows:
        got = r.get("l2_collected") or {}
        table.append([
            r["number"], f"{r['first_height']}-{r['last_height']}", r.get("da") or "-",
            _dash(r.get("fee_paid")), _dash(r.get("da_fee")), _dash(r.get("total_cost")),
            _dash(got.get("l1_data_fee")), _dash(r.get("l1_fee_covered")),
        ])  # fmt: skip
    headers = ["batch", "L2 heights", "da", "L1 charged (wei)", "DA fee (DA units)",
               "posting cost (wei)", "L1 data fees collected", "covered"]  # fmt: skip
    note = (
        "posting cost: the L1's charge plus the DA layer's fee in wei at the L1's rate "
        "(what the L1 fee vault pays the batcher account); covered: collected / cost"
    )
    return f"{render_table(headers, table)}\n{note}"


def _dash(v: Any) -> str:
    return "-" if v is None else str(v)


def parse_model(model: str, params: tuple[str, ...]) -> FeeParams:
    """``--model`` and ``--param NAME=VALUE`` as fee parameters (exit 2 naming a bad one)."""
    doc: dict[str, Any] = {"model": model}
    for p in params:
        name, sep, value = p.partition("=")
        if not sep:
            raise click.BadParameter(f"{p!r}: expected NAME=VALUE", param_hint="--param")
        doc[name.strip()] = value.strip()
    try:
        return FeeParams.from_json(doc)
    except FeeParamsError as e:
        raise click.BadParameter(str(e), param_hint="--param") from None


@fees.command("set-model")
@click.option(
    "--from",
    "from_",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    envvar="SEQ_ACCOUNT_KEY",
    show_envvar=True,
    help="Keystore of the rollup owner's L1 account (rollup_owner in the L1 genesis).",
)
@click.option("--model", type=click.Choice(MODELS), required=True, help="The fee model.")
@click.option(
    "--param",
    "params",
    multiple=True,
    help="A model parameter NAME=VALUE (repeatable; docs/fees.md lists them; the others "
    "take their defaults).",
)
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="Wait until an L1 block includes the call.")  # fmt: skip
@click.option("--timeout", type=click.FloatRange(min=0.1), default=120.0, show_default=True,
              help="Seconds to wait with --wait.")  # fmt: skip
@password_file_option
@l1_url_option
@json_option
def fees_set_model(
    from_: Path,
    model: str,
    params: tuple[str, ...],
    wait: bool,
    timeout: float,
    password_file: Path | None,
    l1_url: str,
    as_json: bool,
) -> None:
    """Set the L2 fee model (the rollup owner's signed L1 call); the L2 applies it from the
    next epoch once the call's L1 block is finalized."""
    fee_params = parse_model(model, params)
    key = open_key(from_, password_file)
    call = SetFeeModel(json.dumps(fee_params.to_json()))

    async def go() -> dict[str, Any]:
        async with L1Client(l1_url) as l1:
            out = await submit_and_wait(l1, call, key, "fee-model change", wait, timeout)
        return {**out, "model": model, "params": fee_params.to_json()}

    data = run_async(go)
    emit(data, as_json, lambda d: render_kv({k: v for k, v in d.items() if k != "params"}))
