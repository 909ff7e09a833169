"""Four node processes and the L1 mock on loopback: agreement, RPC, leader failover, restart.

Budget: about 60-90 s on 2 cores (marked slow).
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.node_process.helpers import USERS, Cluster, make_tx, running_cluster, tx_body

pytestmark = pytest.mark.slow


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    async with running_cluster(tmp_path) as c:
        yield c


async def test_four_nodes_agree_fail_over_and_catch_up(cluster: Cluster) -> None:
    c = cluster
    for i in range(4):
        c.start_node(i)
    all4 = [0, 1, 2, 3]
    await c.wait_height(all4, 3, limit_s=60)

    # Transactions through the RPC of different nodes.
    alice, bob = USERS[0], USERS[1]
    hashes = []
    for nonce in range(6):
        node = nonce % 4
        tx = make_tx(alice, bob.address, 1000 + nonce, nonce)
        r = await c.client.post(c.nodes[node].rpc + "/v1/tx", json=tx_body(tx))
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "pending"
        hashes.append(r.json()["tx_hash"])
    # A replay of nonce 0 is refused with a clear code.
    r = await c.client.post(c.nodes[1].rpc + "/v1/tx", json=tx_body(make_tx(alice, bob.address,
                                                                             1000, 0)))  # fmt: skip
    assert r.status_code == 422
    assert r.json()["error"]["code"] in ("NONCE_TOO_LOW", "DUPLICATE")
    r = await c.client.post(c.nodes[1].rpc + "/v1/tx", json={"tx": "0xdeadbeef"})
    assert r.status_code == 400

    async def all_applied() -> bool:
        for i in all4:
            acct = await c.get(i, "/v1/account/0x" + alice.address.hex())
            if acct["nonce"] != 6:
                return False
        return True

    await c.wait_for("all nodes apply the 6 transfers", all_applied, 30)
    for h in hashes:
        st = await c.get(2, f"/v1/tx/{h}")
        assert st["status"] == "certified"
        assert st["height"] >= 1
    bal = await c.get(3, "/v1/account/0x" + bob.address.hex())
    assert int(bal["balance"]) == 10**15 + sum(1000 + n for n in range(6))
    # The proposals that carried them went out as compact blocks, rebuilt by the receivers
    # from the TxBatch frames they had (issue 13).
    assert await _metric_sum(c, all4, "seqnet_compact_blocks_sent_total") >= 1
    assert await _metric_sum(c, all4, "seqnet_compact_blocks_resolved_total") >= 1

    # Every node certified the same blocks with the same state roots.
    top = min(await c.heights(all4))
    for height in range(1, top + 1):
        views = {await c.block_hash(i, height) for i in all4}
        assert len(views) == 1, f"height {height}: {views}\n{c.logs()}"
        assert None not in views

    # Status, schedule and metrics.
    st = await c.get(0, "/v1/status")
    assert st["peers"] == 3
    assert st["role"] in ("leader", "validator")
    assert set(st["heads"]) == {"unsafe", "certified", "safe", "finalized"}
    assert st["heads"]["unsafe"]["height"] >= st["heads"]["certified"]["height"]
    sched = await c.get(0, "/v1/schedule")
    assert len(sched["current"]["leaders"]) >= 1
    metrics = (await c.client.get(c.nodes[0].rpc + "/metrics")).text
    assert "seqnet_head_height" in metrics
    assert "seqnet_certificate_latency_seconds_bucket" in metrics

    # Kill the leader with SIGKILL: the others move on under a new leader.
    leader = st["leader"]
    victim = next(n.index for n in c.nodes if "0x" + n.key.public_key.hex() == leader)
    others = [i for i in all4 if i != victim]
    before = max(await c.heights(others))
    c.kill(victim, signal.SIGKILL)

    async def new_leader() -> bool:
        s = await c.status(others[0])
        return s is not None and s["leader"] not in (None, leader)

    await c.wait_for("a new leader", new_leader, 30)
    await c.wait_height(others, before + 5, limit_s=40)
    tx = make_tx(alice, bob.address, 7, 6)
    r = await c.client.post(c.nodes[others[0]].rpc + "/v1/tx", json=tx_body(tx))
    assert r.status_code == 200, r.text

    # Restart the killed node from its data directory: it catches up.
    c.start_node(victim)
    target = max(await c.heights(others))
    await c.wait_height([victim], target + 2, limit_s=60)
    for height in (1, target // 2, target):
        views = {await c.block_hash(i, height) for i in all4}
        assert len(views) == 1, f"height {height}: {views}\n{c.logs()}"

    # The L1 dies (SIGKILL) and comes back from its data directory: the nodes keep certifying
    # meanwhile and their followers reconnect.
    assert c.l1_proc is not None
    c.l1_proc.kill()
    c.l1_proc.wait(timeout=10)

    async def l1_down() -> bool:
        s = await c.status(others[0])
        return s is not None and s["l1"]["up"] is False

    await c.wait_for("the nodes notice the L1 outage", l1_down, 20)
    top = max(await c.heights(all4))
    await c.wait_height(all4, top + 3, limit_s=30)
    c.start_l1()

    async def l1_back() -> bool:
        for i in all4:
            s = await c.status(i)
            if s is None or s["l1"]["up"] is not True:
                return False
        return True

    await c.wait_for("the nodes reconnect to the L1", l1_back, 30)

    # A graceful stop exits 0.
    assert c.kill(others[1], signal.SIGTERM) == 0


async def _metric_sum(c: Cluster, nodes: list[int], name: str) -> float:
    """The sum of a metric without labels over ``nodes`` (their /metrics text)."""
    total = 0.0
    for i in nodes:
        text = (await c.client.get(c.nodes[i].rpc + "/metrics")).text
        total += sum(float(line.split()[1]) for line in text.splitlines()
                     if line.startswith(name + " "))  # fmt: skip
    return total
