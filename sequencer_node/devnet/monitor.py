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


def render(snap: Snapshot, names_by_key: dict[str, str], alive: dict[str, bool]) -> list[str]:
    """The live view: one line for the L1, one per node."""
    l1 = snap.l1
    lines = [
        f"L1 {l1.url}  head {_fmt(l1.head)}  finalized {_fmt(l1.finalized)}  "
        f"batches on L1 {_fmt(l1.batches)}  blob base fee {_fmt(l1.blob_base_fee)} wei"
        + (f"  ({l1.error})" if l1.error else ""),
        f"leader {snap.leader_name(names_by_key)}",
        f"{'node':<8} {'state':<8} {'role':<10} {'unsafe':>7} {'certified':>9} {'safe':>6} "
        f"{'final':>6} {'peers':>5} {'mempool':>7}",
    ]
    for n in snap.nodes:
        state = "up" if alive.get(n.name, True) else "EXITED"
        st = n.status or {}
        lines.append(
            f"{n.name:<8} {state:<8} {_fmt(st.get('role') if n.status else n.error):<10} "
            f"{_fmt(n.height('unsafe')):>7} {_fmt(n.height('certified')):>9} "
            f"{_fmt(n.height('safe')):>6} {_fmt(n.height('finalized')):>6} "
            f"{_fmt(st.get('peers')):>5} {_fmt(st.get('mempool_size')):>7}"
        )
    return lines


def one_line(snap: Snapshot, names_by_key: dict[str, str]) -> str:
    """The plain (non-TTY) form: one line per refresh."""
    heights = "/".join(_fmt(n.height("certified")) for n in snap.nodes)
    return (
        f"{time.strftime('%H:%M:%S')} certified {heights}  leader "
        f"{snap.leader_name(names_by_key)}  L1 head {_fmt(snap.l1.head)}  batches "
        f"{_fmt(snap.l1.batches)}  blob base fee {_fmt(snap.l1.blob_base_fee)}"
    )
