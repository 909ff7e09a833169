"""Polling the devnet (each node's ``/v1/status``, the L1) and rendering what it sees.

A poll never raises: an unreachable node is reported as such, so the live view and
``seqctl devnet status`` keep working while a node restarts.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import trio
from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from sequencer_node.clients.l1 import L1Client, L1Error

#: Per request. The L1 can pause for a few seconds while it checks a blob batch's KZG proofs.
POLL_TIMEOUT_S = 5.0


@dataclass
class NodeView:
    name: str
    rpc_url: str
    status: dict[str, Any] | None = None
    error: str | None = None

    def height(self, head: str) -> int | None:
        if self.status is None:
            return None
        try:
            h = self.status["heads"][head]
            return None if h is None else int(h["height"])
        except (KeyError, TypeError, ValueError):
            return None


@dataclass
class L1View:
    url: str
    head: int | None = None
    finalized: int | None = None
    blob_base_fee: int | None = None
    batches: int | None = None
    last_batch_block: int | None = None
    error: str | None = None


@dataclass
class Snapshot:
    l1: L1View
    nodes: list[NodeView] = field(default_factory=list)
    at: float = 0.0

    def certified(self) -> int:
        return max((n.height("certified") or 0 for n in self.nodes), default=0)

    def leader_name(self, names_by_key: dict[str, str]) -> str:
        for n in self.nodes:
            if n.status is not None and n.status.get("leader"):
                key = str(n.status["leader"]).removeprefix("0x")
                return names_by_key.get(key, key[:12])
        return "?"


async def poll_node(http: httpx.AsyncClient, name: str, url: str) -> NodeView:
    view = NodeView(name, url)
    try:
        r = await http.get(f"{url}/v1/status")
        if r.status_code == 200:
            view.status = r.json()
        else:
            view.error = f"HTTP {r.status_code}"
    except httpx.HTTPError as e:
        view.error = type(e).__name__
    except ValueError:
        view.error = "bad JSON"
    return view


async def poll_l1(url: str) -> L1View:
    view = L1View(url)
    try:
        async with L1Client(url, timeout=POLL_TIMEOUT_S) as l1:
            st = await l1.status()
            view.head = int(st.get("head", 0))
            fin = st.get("finalizedBlock", st.get("finalized_block"))
            view.finalized = int(fin) if fin is not None else None
            view.blob_base_fee = await l1.blob_base_fee()
            last = await l1.last_batch()
            if last is None:
                view.batches = 0
            else:
                view.batches = int(last.header.batch_number) + 1
                view.last_batch_block = last.l1_block
    except (L1Error, ValueError, TypeError, KeyError) as e:
        view.error = str(e)[:80]
    return view


async def poll(l1_url: str, nodes: Sequence[tuple[str, str]]) -> Snapshot:
    snap = Snapshot(L1View(l1_url), [NodeView(n, u) for n, u in nodes], time.time())
    async with httpx.AsyncClient(timeout=POLL_TIMEOUT_S) as http:

        async def one(i: int, name: str, url: str) -> None:
            snap.nodes[i] = await poll_node(http, name, url)

        async def l1() -> None:
            snap.l1 = await poll_l1(l1_url)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(l1)
            for i, (name, url) in enumerate(nodes):
                nursery.start_soon(one, i, name, url)
    return snap


def _fmt(v: object) -> str:
    return "-" if v is None else str(v)


def live_view(
    snap: Snapshot, names_by_key: dict[str, str], alive: dict[str, bool], footer: str
) -> RenderableType:
    """The live view for a terminal (``rich``): the L1 and leader lines, a table of nodes."""
    l1 = snap.l1
    head = Text.assemble(
        ("L1 ", "bold"),
        f"{l1.url}  head {_fmt(l1.head)}  finalized {_fmt(l1.finalized)}  batches on L1 "
        f"{_fmt(l1.batches)}  blob base fee {_fmt(l1.blob_base_fee)} wei",
        (f"  ({l1.error})" if l1.error else "", "red"),
    )
    leader = Text.assemble(("leader ", "bold"), snap.leader_name(names_by_key))
    table = Table(box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False)
    for col in ("node", "state", "role"):
        table.add_column(col)
    for col in ("unsafe", "certified", "safe", "final", "peers", "mempool"):
        table.add_column(col, justify="right")
    for n in snap.nodes:
        up = alive.get(n.name, True)
        st = n.status or {}
        table.add_row(
            n.name,
            Text("up", "green") if up else Text("EXITED", "bold red"),
            _fmt(st.get("role") if n.status else n.error),
            *(_fmt(n.height(h)) for h in ("unsafe", "certified", "safe", "finalized")),
            _fmt(st.get("peers")),
            _fmt(st.get("mempool_size")),
        )
    return Group(head, leader, table, Text(footer, "dim"))


def one_line(snap: Snapshot, names_by_key: dict[str, str]) -> str:
    """The plain (non-TTY) form: one line per refresh."""
    heights = "/".join(_fmt(n.height("certified")) for n in snap.nodes)
    return (
        f"{time.strftime('%H:%M:%S')} certified {heights}  leader "
        f"{snap.leader_name(names_by_key)}  L1 head {_fmt(snap.l1.head)}  batches "
        f"{_fmt(snap.l1.batches)}  blob base fee {_fmt(snap.l1.blob_base_fee)}"
    )
