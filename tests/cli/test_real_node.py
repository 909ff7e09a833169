"""``seqctl`` against real node processes (three of tests/node_process's four validators) and
the L1 mock: status, leaders, sequencers, tx send/status and a short load.

Budget: about 15-25 s on 2 cores (process start-up dominates); marked slow.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from sequencer_node.clients.node import NodeClient, NodeTxResult, encode_tx_batch
from sequencer_node.keystore import save_keystore
from sequencer_node.wire.messages import tx_hash
from tests.cli.conftest import seqctl
from tests.node_process.helpers import KEYS, PASSWORD, USERS, Cluster, make_tx

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    c.prepare()
    try:
        c.start_l1()
        for i in range(3):  # 30 + 25 + 25 % of the stake: a quorum
            c.start_node(i)

        async def ready() -> None:
            try:
                await c.wait_height([0, 1, 2], 2, limit_s=90)
            finally:
                await c.client.aclose()

        trio.run(ready)
        yield c
    finally:
        c.teardown()


def test_commands_against_real_nodes(cluster: Cluster, tmp_path: Path) -> None:
    c = cluster
    node = ["--node-url", c.nodes[0].rpc]
    r = seqctl("status", *node, "--json")
    assert r.exit_code == 0, r.output
    st = json.loads(r.stdout)
    assert st["chain_id"] == 901
    assert st["heads"]["certified"]["height"] >= 2
    assert st["role"] in ("leader", "validator")

    r = seqctl("leaders", *node, "--json")
    assert r.exit_code == 0, r.output
    leaders = set(json.loads(r.stdout)["current"]["leaders"])
    assert leaders <= {"0x" + k.public_key.hex() for k in KEYS}

    r = seqctl("sequencers", "--l1-url", c.l1_url, "--json")
    assert r.exit_code == 0, r.output
    assert {s["signing_key"] for s in json.loads(r.stdout)["sequencers"]} == {
        "0x" + k.public_key.hex() for k in KEYS
    }

    alice = tmp_path / "alice.json"
    save_keystore(alice, USERS[0], PASSWORD, scrypt_n=1 << 10)
    env = {"SEQ_PASSWORD": PASSWORD}
    r = seqctl("tx", "send", "--from", str(alice), "--to", "0x" + USERS[1].address.hex(),
               "--amount", "7", "--wait", "--timeout", "30", *node, "--json", env=env)  # fmt: skip
    assert r.exit_code == 0, r.output
    sent = json.loads(r.stdout)
    assert sent["status"] in ("certified", "batched", "finalized")
    # another node knows it too
    r = seqctl("tx", "status", sent["tx_hash"], "--node-url", c.nodes[1].rpc, "--wait",
               "certified", "--timeout", "30", "--json")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["height"] == sent["height"]
    # two sends in a row: the second takes the pending nonce (issue 14, friction 3)
    nonces = []
    for _ in range(2):
        r = seqctl("tx", "send", "--from", str(alice), "--to", "0x" + USERS[1].address.hex(),
                   "--amount", "1", *node, "--json", env=env)  # fmt: skip
        assert r.exit_code == 0, r.output
        nonces.append(json.loads(r.stdout)["nonce"])
    assert nonces[1] == nonces[0] + 1

    r = seqctl("load", "--node-url", f"{c.nodes[1].rpc},{c.nodes[2].rpc}", "--rate", "20",
               "--duration", "1", "--accounts", "4", "--fund-from", str(alice), "--fund-amount",
               "1000", "--drain", "30", "--quiet", "--json", env=env)  # fmt: skip
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["submitted"] == 20
    assert out["certified"] == out["accepted"] == 20
    assert out["latency_s"]["p50"] is not None

    # POST /v1/txs goes through the node's one submit path: the same transaction twice in a
    # batch is accepted once, then refused as a duplicate; a bad signature is refused
    tx = make_tx(USERS[2], USERS[0].address, 5, 0)
    forged = dataclasses.replace(make_tx(USERS[2], USERS[0].address, 6, 1), signature=bytes(64))

    async def batch() -> list[NodeTxResult]:
        async with NodeClient(c.nodes[0].rpc) as client:
            return await client.send_txs(encode_tx_batch([tx, tx, forged]))

    results = trio.run(batch)
    assert [r["accepted"] for r in results] == [True, False, False]
    assert [r.get("code") for r in results[1:]] == ["DUPLICATE", "BAD_SIGNATURE"]
    assert results[0]["tx_hash"] == "0x" + tx_hash(tx).hex()
