"""Issue 11, durability before votes, on real processes: the whole network is killed with
SIGKILL (all at once, then one by one), restarted from its data directories, and always
resumes with every acknowledged transaction kept and one chain on every node.

Before votes were durable, a restart could find every node's watermark holding a QC for a
block that no node had stored (only committed blocks were), and the chain stalled for good.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio

from tests.node_process.helpers import USERS, Cluster, make_tx, running_cluster, tx_body

ALL = [0, 1, 2, 3]


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    async with running_cluster(tmp_path) as c:
        yield c


async def _send(c: Cluster, nonce: int) -> str:
    tx = make_tx(USERS[0], USERS[1].address, 1 + nonce, nonce)
    r = await c.client.post(c.nodes[nonce % 4].rpc + "/v1/tx", json=tx_body(tx))
    assert r.status_code == 200, r.text
    return str(r.json()["tx_hash"])


async def _certified(c: Cluster, tx_hash: str) -> bool:
    doc = await c.get(0, f"/v1/tx/{tx_hash}")
    return bool(doc["status"] != "unknown" and doc["status"] != "pending")


async def _restart_all(c: Cluster, gap_s: float) -> None:
    for i in ALL:
        c.kill(i, signal.SIGKILL)
        await trio.sleep(gap_s)
    for i in ALL:
        c.start_node(i)


async def test_the_whole_network_killed_and_restarted_resumes(cluster: Cluster) -> None:
    c = cluster
    for i in ALL:
        c.start_node(i)
    await c.wait_height(ALL, 3, limit_s=90)
    acknowledged: list[str] = []
    nonce = 0
    for gap_s in (0.0, 0.3, 0.0):  # all at once, one by one, all at once again
        for _ in range(3):
            acknowledged.append(await _send(c, nonce))
            nonce += 1
        for tx_hash in acknowledged:
            await c.wait_for(f"{tx_hash} certified", lambda h=tx_hash: _certified(c, h), 60)
        top = max(await c.heights(ALL))
        await _restart_all(c, gap_s)
        await c.wait_height(ALL, top + 3, limit_s=90)
    for tx_hash in acknowledged:
        assert await _certified(c, tx_hash), tx_hash
    top = min(await c.heights(ALL))
    for height in range(1, top + 1, max(1, top // 8)):
        views = {await c.block_hash(i, height) for i in ALL}
        assert len(views) == 1, f"height {height}: {views}\n{c.logs()}"


async def test_a_transaction_acknowledged_just_before_a_crash_is_certified_after_it(
    cluster: Cluster,
) -> None:
    """The node alone has the transaction (no quorum, no peer up) when it is killed: only its
    own journal can bring it back."""
    c = cluster
    c.start_node(3)
    await c.wait_for("node3's RPC", lambda: c.status(3), 60)
    tx = make_tx(USERS[2], USERS[1].address, 7, 0)
    r = await c.client.post(c.nodes[3].rpc + "/v1/tx", json=tx_body(tx))
    assert r.status_code == 200, r.text
    tx_hash = str(r.json()["tx_hash"])
    c.kill(3, signal.SIGKILL)
    for i in ALL:
        c.start_node(i)

    async def certified() -> bool:
        try:
            return await _certified(c, tx_hash)
        except httpx.HTTPError:  # node0 is still starting
            return False

    await c.wait_for(f"{tx_hash} certified", certified, 90)
    doc = await c.get(0, f"/v1/account/0x{USERS[2].address.hex()}")
    assert doc["nonce"] == 1, doc
