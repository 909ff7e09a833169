"""The batcher inside the node process: four nodes with batching on post their certified
blocks to the L1 mock; the RPC reports the batches, the safe head and batched transactions.

Budget: ~30-60 s (KZG worker start-up per node; marked slow).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.node_process.helpers import USERS, Cluster, make_tx, running_cluster, tx_body

pytestmark = pytest.mark.slow


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    async with running_cluster(tmp_path) as c:
        yield c


async def test_nodes_batch_certified_blocks_to_l1(cluster: Cluster) -> None:
    c = cluster
    for i in range(4):
        c.start_node(i, "--batch-max-age-ms", "1000", batcher=True)
    all4 = [0, 1, 2, 3]
    await c.wait_height(all4, 2, limit_s=90)
    alice, bob = USERS[0], USERS[1]
    hashes = []
    for nonce in range(3):
        tx = make_tx(alice, bob.address, 10 + nonce, nonce)
        r = await c.client.post(c.nodes[nonce].rpc + "/v1/tx", json=tx_body(tx))
        assert r.status_code == 200, r.text
        hashes.append(r.json()["tx_hash"])

    async def batched() -> bool:
        for i in all4:
            doc = await c.get(i, f"/v1/tx/{hashes[-1]}")
            if doc["status"] not in ("batched", "finalized"):
                return False
        return True

    await c.wait_for("the transfers are batched on L1", batched, 120)
    doc = await c.get(2, f"/v1/tx/{hashes[-1]}")
    assert doc["batch"] is not None
    assert doc["height"] is not None

    async def safe() -> bool:
        # The safe head is the L1 watcher's view of the inbox, read at its next poll; the
        # batcher (whose view says "batched") reads the inbox on its own tick.
        st = await c.get(2, "/v1/status")
        return bool(st["heads"]["safe"]["height"] >= doc["height"])

    await c.wait_for("node 2's safe head covers the batched transfer", safe, 30)
    st = await c.get(2, "/v1/status")
    assert st["heads"]["safe"]["height"] >= doc["height"]
    assert st["last_batch"] is not None
    batches = (await c.get(2, "/v1/batches"))["batches"]
    assert batches
    assert batches[0]["number"] == 0
    metrics = (await c.client.get(c.nodes[2].rpc + "/metrics")).text
    assert "seqnet_batches" in metrics
