"""``seqctl status|leaders|evidence|batches|blob``: what a node and the L1 say about the network.

``status``, ``leaders`` and ``evidence list`` read a node's RPC (``--node-url``); ``batches``
reads the L1 inbox (enriched with a node's ``/v1/batches`` when ``--node-url`` is given);
``blob get`` reads the L1's Beacon API; ``evidence submit`` is a signed L1 call.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from sequencer_node.cli.common import (
    emit,
    format_tokens,
    l1_url_option,
    node_url_option,
    open_key,
    password_file_option,
    render_kv,
    render_table,
)
from sequencer_node.cli.runner import ask_node, run_async
from sequencer_node.cli.stake import submit_and_wait
from sequencer_node.clients.l1 import BlobsPruned, InboxBatch, L1Client, L1Rejected
from sequencer_node.clients.node import NodeClient, NodeError
from sequencer_node.system.commandline import fail, json_option
from sequencer_node.system.files import atomic_write
from sequencer_node.wire.blobs import kzg_to_versioned_hash
from sequencer_node.wire.codec import CodecError, decode
from sequencer_node.wire.crypto import SigningKey
from sequencer_node.wire.hexstr import to_hex
from sequencer_node.wire.l1calls import SubmitEvidence
from sequencer_node.wire.messages import DA_KINDS, DoubleProposal, DoubleTimeout, DoubleVote

#: At most this many batches per ``seqctl batches`` call (the L1 answers 1000 per request).
MAX_BATCHES = 1000
#: Evidence files are small (two signed messages); refuse anything absurd before decoding.
MAX_EVIDENCE_FILE = 4 * 1024 * 1024


def _dash(v: Any) -> Any:
    return "-" if v is None or v == "" else v


# --- status --------------------------------------------------------------------------------


async def _status_data(node_url: str) -> dict[str, Any]:
    """``/v1/status``, with the last batch's state from ``/v1/batches`` (status has no state)."""
    async with NodeClient(node_url) as node:
        data = await node.status()
        last = data.get("last_batch")
        if isinstance(last, dict) and last.get("number") is not None and "state" not in last:
            try:
                rows = await node.batches()
            except NodeError:
                rows = []
            states = {r.get("number"): r.get("state") for r in rows}
            data["last_batch"] = {**last, "state": states.get(last["number"])}
        return data


@click.command("status")
@node_url_option
@json_option
def status(node_url: str, as_json: bool) -> None:
    """One node's view: role, epoch and round, leader, heads (unsafe/certified/safe/finalized),
    peers, mempool, L1 head, and the last batch with its L1 block."""

    data = {"node_url": node_url, **run_async(_status_data, node_url)}

    def human(d: dict[str, Any]) -> str:
        heads = d.get("heads") or {}
        l1 = d.get("l1") or {}
        lb = d.get("last_batch")
        kv: dict[str, Any] = {
            "node": f"{d.get('node_id')} ({d.get('role')})",
            "chain id": d.get("chain_id"),
            "epoch / round": f"{d.get('epoch')} / {d.get('round')}",
            "leader": d.get("leader"),
            "heads": "  ".join(
                f"{name} {_dash((heads.get(name) or {}).get('height'))}"
                for name in ("unsafe", "certified", "safe", "finalized")
            ),
            "peers": d.get("peers"),
            "mempool": d.get("mempool_size"),
            "l1": f"head {_dash(l1.get('head'))}, finalized {_dash(l1.get('finalized'))}",
            "last batch": "none"
            if not lb or lb.get("number") is None
            else f"#{_dash(lb.get('number'))} heights {_dash(lb.get('first_height'))}-"
            f"{_dash(lb.get('last_height'))} {_dash(lb.get('state'))}, "
            f"L1 block {_dash(lb.get('l1_block'))}",
            "da": d.get("da"),
            "batching": _batching_state(lb),
        }
        out = render_kv(kv)
        peers = d.get("peer_list") or []
        if peers:
            rows = [[p.get("id"), p.get("address"), p.get("score")] for p in peers]
            out += "\n\n" + render_table(["peer", "address", "score"], rows)
        return out

    emit(data, as_json, human)


def _batching_state(lb: Any) -> str:
    """The batcher's health: a stalled batch (refused, fee above cap, no cut) and how many
    certificates it abandoned because the L1 refuses them for good."""
    if not isinstance(lb, dict):
        return "-"
    stalled = lb.get("stalled")
    abandoned = lb.get("abandoned") or 0
    note = f" ({abandoned} certificates abandoned)" if abandoned else ""
    if isinstance(stalled, dict):
        return (
            f"STALLED at batch {stalled.get('batch')} for {stalled.get('seconds')} s: "
            f"{stalled.get('reason')}{note}"
        )
    return "ok" + note


# --- leaders -------------------------------------------------------------------------------


def _runs(leaders: list[str]) -> list[tuple[int, int, str]]:
    """Consecutive positions with the same leader: (first, last, key)."""
    out: list[tuple[int, int, str]] = []
    for i, key in enumerate(leaders):
        if out and out[-1][2] == key and out[-1][1] == i - 1:
            out[-1] = (out[-1][0], i, key)
        else:
            out.append((i, i, key))
    return out


@click.command("leaders")
@node_url_option
@json_option
def leaders(node_url: str, as_json: bool) -> None:
    """The leader schedule of the current and the next epoch (from a node's /v1/schedule)."""

    data = ask_node(node_url, lambda node: node.schedule())

    def human(d: dict[str, Any]) -> str:
        rows: list[list[Any]] = []
        for which in ("current", "next"):
            sched = d.get(which)
            if not sched:
                rows.append([which, "-", "-", "-", "not known yet"])
                continue
            stakes = sched.get("stakes") or {}
            total = sum(int(v) for v in stakes.values())
            for first, last, key in _runs(list(sched.get("leaders", []))):
                pos = str(first) if first == last else f"{first}-{last}"
                share = f"{100 * int(stakes[key]) / total:.1f}%" if key in stakes and total else "-"
                rows.append([which, sched.get("epoch"), pos, key, share])
        return render_table(["schedule", "epoch", "position", "leader", "stake"], rows)

    emit(data, as_json, human)


# --- evidence ------------------------------------------------------------------------------


@click.group()
def evidence() -> None:
    """Equivocation evidence: what a node found, and submitting it to the L1 for slashing."""


@evidence.command("list")
@node_url_option
@json_option
def evidence_list(node_url: str, as_json: bool) -> None:
    """Evidence a node has found (kind, offender, round, whether it was submitted to L1)."""

    items = ask_node(node_url, lambda node: node.evidence())

    def human(d: dict[str, Any]) -> str:
        if not d["evidence"]:
            return "no evidence"
        rows = [
            [
                e.get("kind"),
                e.get("offender"),
                e.get("round"),
                e.get("submitted"),
                _dash(e.get("l1_tx")),
            ]
            for e in d["evidence"]
        ]
        return render_table(["kind", "offender", "round", "submitted", "l1 tx"], rows)

    emit({"evidence": items}, as_json, human)


def read_evidence(data: bytes, name: str) -> SubmitEvidence:
    """Evidence from a file's bytes: the canonical encoding of a DoubleProposal, DoubleVote,
    DoubleTimeout or SubmitEvidence, raw or as hex text (``0x`` optional)."""
    raw = data
    try:
        text = data.decode("ascii").strip()
        if text:
            raw = bytes.fromhex(text.removeprefix("0x"))
    except (UnicodeDecodeError, ValueError):
        raw = data
    try:
        msg: object = decode(raw)
    except CodecError as e:
        fail(
            f"{name} does not hold encoded evidence ({e}); expected the codec encoding of a "
            f"DoubleProposal, DoubleVote or DoubleTimeout, raw or as hex"
        )
    if isinstance(msg, SubmitEvidence):
        return msg
    if isinstance(msg, DoubleProposal | DoubleVote | DoubleTimeout):
        return SubmitEvidence.of(msg)
    fail(f"{name} holds a {type(msg).__name__}, not evidence (DoubleProposal/Vote/Timeout)")


@evidence.command("submit")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--from",
    "from_",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    envvar="SEQ_ACCOUNT_KEY",
    show_envvar=True,
    help="Keystore of the L1 account that signs, pays and receives the reporter's share.",
)
@password_file_option
@l1_url_option
@click.option(
    "--wait/--no-wait",
    default=True,
    show_default=True,
    help="Wait until an L1 block includes the call.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=120.0,
    show_default=True,
    help="Seconds to wait for the inclusion with --wait.",
)
@json_option
def evidence_submit(
    file: Path,
    from_: Path,
    password_file: Path | None,
    l1_url: str,
    wait: bool,
    timeout: float,
    as_json: bool,
) -> None:
    """Submit evidence from FILE (encoded, raw or hex) to the L1: the offender is slashed and
    jailed, the reporter gets a share."""
    if file.stat().st_size > MAX_EVIDENCE_FILE:
        fail(f"{file} is larger than {MAX_EVIDENCE_FILE} bytes; evidence is a few hundred bytes")
    params = read_evidence(file.read_bytes(), str(file))
    ev = params.evidence
    offender = ev.offender
    key: SigningKey = open_key(from_, password_file)

    async def go() -> dict[str, Any]:
        async with L1Client(l1_url) as l1:
            out: dict[str, Any] = {"kind": type(ev).__name__, "offender": to_hex(offender)}
            out.update(await submit_and_wait(l1, params, key, "evidence", wait, timeout))
            if wait:
                s = await l1.sequencer(offender)
                if s is not None:
                    out.update(offender_status=s.status, offender_stake=format_tokens(s.stake))
            return out

    emit(run_async(go), as_json)


# --- batches -------------------------------------------------------------------------------


async def _batch_fee(l1: L1Client, tx_hash: bytes) -> int | None:
    """What the batch's L1 transaction paid (execution gas + blob gas), in wei."""
    r = await l1.rpc("eth_getTransactionReceipt", to_hex(tx_hash))
    if r is None:
        return None
    fee = int(r["gasUsed"], 16) * int(r.get("effectiveGasPrice", "0x0"), 16)
    return fee + int(r.get("blobGasUsed", "0x0"), 16) * int(r.get("blobGasPrice", "0x0"), 16)


def _batch_row(b: InboxBatch, fee: int | None) -> dict[str, Any]:
    h = b.header
    return {
        "number": h.batch_number,
        "first_height": h.first_height,
        "last_height": h.last_height,
        "blocks": h.last_height - h.first_height + 1,
        "da": DA_KINDS[h.da_kind],
        "blobs": len(h.blob_hashes),
        "bytes": h.data_bytes,
        "stake_epoch": h.stake_epoch,
        "l1_block": b.l1_block,
        "l1_tx": to_hex(b.tx_hash),
        "signers": len(b.signers),
        "fee_wei": None if fee is None else str(fee),
        "fee": None if fee is None else format_tokens(fee),
        "txs": None,
        "payload_bytes_per_tx": None,
        "bytes_per_tx": None,
        "fee_per_tx_wei": None,
    }


async def _node_batches(node_url: str) -> dict[int, dict[str, Any]]:
    try:
        async with NodeClient(node_url) as node:
            return {int(x["number"]): x for x in await node.batches()}
    except NodeError as e:
        click.echo(f"warning: no transaction counts ({e})", err=True)
        return {}


def _add_tx_counts(row: dict[str, Any], nb: dict[str, Any] | None) -> None:
    """Per-transaction figures from the node's view of the batch (when it knows the count)."""
    if nb is None or nb.get("txs") is None:
        return
    txs = int(nb["txs"])
    row["txs"] = txs
    if not txs:
        return
    row["payload_bytes_per_tx"] = round(int(row["bytes"]) / txs, 1)
    if nb.get("bytes_per_tx") is not None:
        row["bytes_per_tx"] = float(nb["bytes_per_tx"])
    elif nb.get("bytes") is not None:
        row["bytes_per_tx"] = round(int(nb["bytes"]) / txs, 1)
    if row["fee_wei"] is not None:
        row["fee_per_tx_wei"] = str(int(row["fee_wei"]) // txs)


async def _batches_data(
    l1_url: str, node_url: str | None, last: int, start: int | None
) -> dict[str, Any]:
    async with L1Client(l1_url) as l1:
        newest = await l1.last_batch()
        if newest is None:
            batching = await _node_batching(node_url) if node_url else None
            return {"batches": [], "total": 0, "enriched": False, "batching": batching}
        total = newest.header.batch_number + 1
        first = max(0, total - last) if start is None else start
        found = await l1.inbox_batches(first, last) if first < total else []
        rows = [_batch_row(b, await _batch_fee(l1, b.tx_hash)) for b in found]
    known = await _node_batches(node_url) if node_url else {}
    for row in rows:
        _add_tx_counts(row, known.get(row["number"]))
    batching = await _node_batching(node_url) if node_url else None
    return {"batches": rows, "total": total, "enriched": bool(known), "batching": batching}


async def _node_batching(node_url: str) -> dict[str, Any] | None:
    """The node's batcher health (``stalled``, ``abandoned``) from its ``/v1/status``."""
    try:
        async with NodeClient(node_url) as node:
            lb = (await node.status()).get("last_batch")
    except NodeError:
        return None
    if not isinstance(lb, dict):
        return None
    return {"stalled": lb.get("stalled"), "abandoned": lb.get("abandoned")}


def _render_batches(d: dict[str, Any]) -> str:
    health = ""
    if d.get("batching") is not None:
        health = "\nbatching: " + _batching_state(d["batching"])
    if not d["batches"]:
        return "no batches on the L1 yet" + health
    rows = [
        [
            b["number"],
            f"{b['first_height']}-{b['last_height']}",
            f"blobs x{b['blobs']}" if b["da"] == "blobs" else b["da"],
            b["bytes"],
            b["l1_block"],
            _dash(b["fee"]),
            _dash(b["txs"]),
            _dash(b.get("payload_bytes_per_tx")),
            _dash(b["bytes_per_tx"]),
        ]
        for b in d["batches"]
    ]
    headers = ["batch", "L2 heights", "da", "payload bytes", "L1 block", "fee (tokens)", "txs"]
    table = render_table([*headers, "payload B/tx", "posted B/tx"], rows)
    note = (
        "payload bytes: the batch's compressed payload; posted B/tx: bytes the batcher posted "
        "to L1 (whole blobs) per transaction"
    )
    if not d["enriched"]:
        note += "\n(txs and bytes per tx: pass --node-url)"
    return f"{table}\n{d['total']} batches on the L1\n{note}{health}"


@click.command("batches")
@l1_url_option
@click.option(
    "--node-url",
    envvar="SEQ_NODE_URL",
    show_envvar=True,
    help="Also ask this node's /v1/batches for transaction counts and bytes per transaction.",
)
@click.option(
    "--last",
    type=click.IntRange(1, MAX_BATCHES),
    default=20,
    show_default=True,
    help="How many of the newest batches to show.",
)
@click.option(
    "--start",
    type=click.IntRange(min=0),
    help="Show batches from this batch number on (instead of the newest).",
)
@json_option
def batches(l1_url: str, node_url: str | None, last: int, start: int | None, as_json: bool) -> None:
    """The L1 batch inbox: number, L2 heights, DA (blobs/calldata), bytes, L1 block, fee paid,
    and with --node-url the transactions and bytes per transaction."""

    data = run_async(_batches_data, l1_url, node_url, last, start)

    emit(data, as_json, _render_batches)


# --- blob get ------------------------------------------------------------------------------


@click.group()
def blob() -> None:
    """Blobs from the L1's Beacon API."""


async def _blobs_data(l1_url: str, block: str, index: int | None) -> dict[str, Any]:
    async with L1Client(l1_url) as l1:
        if block.isdigit():
            try:
                head = await l1.block(int(block))
            except L1Rejected:
                fail(f"L1 block {block} does not exist yet (head is {await l1.block_number()})")
            block_id = to_hex(head.hash)
            number: int | None = head.number
        elif block in ("head", "finalized", "genesis") or block.startswith("0x"):
            block_id, number = block, None
        else:
            fail(f"{block!r} is not a block: use a number, head, finalized or a 0x block hash")
        try:
            sidecars = await l1.blob_sidecars(block_id)
        except BlobsPruned as e:
            fail(
                f"the blobs of L1 block {block} are no longer served: {e.message}. Blobs are "
                f"kept for the retention window only; read the batch from a node's data or "
                f"an archive"
            )
        except L1Rejected as e:
            fail(f"the L1's Beacon API refused block {block}: {e.reason}")
    if index is not None:
        sidecars = [s for s in sidecars if s.index == index]
        if not sidecars:
            fail(f"L1 block {block} has no blob at index {index}")
    return {
        "block": number if number is not None else block,
        "blobs": [
            {
                "index": s.index,
                "versioned_hash": to_hex(kzg_to_versioned_hash(s.kzg_commitment)),
                "kzg_commitment": to_hex(s.kzg_commitment),
                "kzg_proof": to_hex(s.kzg_proof),
                "bytes": len(s.blob),
                "used_bytes": len(s.blob.rstrip(b"\0")),
            }
            for s in sidecars
        ],
        "_data": b"".join(s.blob for s in sorted(sidecars, key=lambda s: s.index)),
    }


@blob.command("get")
@click.argument("block")
@click.option("--index", type=click.IntRange(min=0), help="Only the blob at this index.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the raw blob bytes here (several blobs: concatenated in index order; '-' for "
    "stdout).",
)
@click.option("--force", is_flag=True, help="Replace an existing --out file.")
@l1_url_option
@json_option
def blob_get(
    block: str, index: int | None, out: Path | None, force: bool, l1_url: str, as_json: bool
) -> None:
    """The blobs of an L1 BLOCK (a number, head, finalized, or a 0x block hash): index,
    versioned hash, KZG commitment and proof; --out writes the blob bytes."""

    data = run_async(_blobs_data, l1_url, block, index)
    raw: bytes = data.pop("_data")
    if out is not None:
        if str(out) == "-":
            sys.stdout.buffer.write(raw)
            sys.stdout.flush()
            return
        try:
            atomic_write(out, raw, overwrite=force)
        except FileExistsError:
            fail(f"{out} already exists; choose another --out or pass --force")
        data["out"] = str(out)
    if not data["blobs"] and index is None:
        data["note"] = "this block carries no blobs"

    def human(d: dict[str, Any]) -> str:
        if not d["blobs"]:
            return f"L1 block {d['block']}: no blobs"
        table = render_table(
            ["index", "versioned hash", "kzg commitment", "used bytes"],
            [
                [b["index"], b["versioned_hash"], b["kzg_commitment"], b["used_bytes"]]
                for b in d["blobs"]
            ],
        )
        tail = f"\nwritten to {d['out']} ({len(raw)} bytes)" if "out" in d else ""
        n = len(d["blobs"])
        return f"L1 block {d['block']}: {n} blob{'' if n == 1 else 's'}\n{table}{tail}"

    emit(data, as_json, human)
