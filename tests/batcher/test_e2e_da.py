"""End to end: the L1 mock, four ``sequencer_node run`` processes with their batchers, a
transfer load, and a follower that reads only L1 reaching the sequencers' state root, with
``--da blobs`` and ``--da calldata``.

Budget: about 40-60 s per DA mode on 2 cores (marked slow).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from sequencer_node.clients.l1 import L1Client, L1Unavailable
from sequencer_node.derivation.deriver import DerivationGenesis, DerivedBatch, Deriver
from sequencer_node.genesis import load_genesis
from tests.node_process.helpers import USERS, Cluster, make_tx, running_cluster, tx_body

pytestmark = pytest.mark.slow


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    async with running_cluster(tmp_path) as c:
        yield c


async def derive_all(follower: Deriver) -> list[DerivedBatch]:
    """Derive everything, asking again after transient L1 errors (bounded)."""
    out: list[DerivedBatch] = []
    for _ in range(5):
        try:
            out += await follower.derive_available()
            return out
        except L1Unavailable:
            await trio.sleep(0.5)
    raise AssertionError("the L1 kept failing")


@pytest.mark.parametrize("da", ["blobs", "calldata"])
async def test_l1_four_nodes_load_and_a_follower_reach_the_same_state_root(
    cluster: Cluster, da: str
) -> None:
    for i in range(4):
        cluster.start_node(i, "--da", da, batcher=True)
    await cluster.wait_height([0, 1, 2, 3], 2, limit_s=60)
    # load: 3 users send 15 transfers each, round robin over the nodes
    sent = 0
    for nonce in range(15):
        for u, user in enumerate(USERS):
            to = USERS[(u + 1) % len(USERS)].address
            body = tx_body(make_tx(user, to, 1000 + nonce, nonce))
            r = await cluster.client.post(cluster.nodes[sent % 4].rpc + "/v1/tx", json=body)
            assert r.status_code == 200, r.text
            sent += 1

    async def all_included() -> int | None:
        for user in USERS:  # every user's 15 transfers, not only the first user's
            acct = await cluster.get(0, "/v1/account/0x" + user.address.hex())
            if acct["nonce"] != 15:
                return None
        st = await cluster.status(0)  # read after: its certified head includes them all
        return None if st is None else int(st["heads"]["certified"]["height"])

    height = await cluster.wait_for("all transfers certified", all_included, 60)
    assert cluster.genesis_path is not None
    genesis = DerivationGenesis.from_l2(load_genesis(cluster.genesis_path))
    async with L1Client(cluster.l1_url) as l1:

        async def batched() -> bool:
            try:
                last = await l1.last_batch()
            except L1Unavailable:  # a keep-alive connection closed under load: ask again
                return False
            return last is not None and last.header.last_height >= height

        await cluster.wait_for(f"a batch covering height {height}", batched, 90)
        follower = Deriver(l1, genesis)
        derived = await derive_all(follower)
        assert {d.da for d in derived} == {da}
        assert sum(d.txs for d in derived) >= 45
        block = await cluster.get(1, f"/v1/blocks/{follower.height}")
        assert follower.state_root().hex() == block["state_root"].removeprefix("0x")
        for b in await l1.inbox_batches(0, 100):
            assert len(b.signers) >= 3  # > 2/3 of 30/25/25/20 % needs three signers
    # the nodes report the batches and their cost (each node notices acceptance on its own
    # inbox sync, a moment after the L1 has it)

    async def node_recorded() -> list[dict[str, object]] | None:
        rows = (await cluster.get(0, "/v1/batches"))["batches"]
        accepted = [r for r in rows if r["state"] == "accepted"]
        return accepted if accepted and accepted[-1]["last_height"] >= height else None

    accepted = await cluster.wait_for("node 0 records the batches as accepted", node_recorded, 30)
    assert accepted[-1]["last_height"] >= height
    assert all(int(r["fee_paid"]) > 0 for r in accepted)
    with trio.fail_after(5):
        st = await cluster.status(2)
    assert st is not None
    assert st["da"] == da
