"""External DA end to end, in process: four BatcherServices post batch data to a DA mock (a
relayer in it brings the committee's attestations to the L1), co-sign after fetching and
checking the blob, post extda batches the L1 proves against attested roots; a follower rebuilds
L2 from L1 + DA alone and refuses withheld or forged data; when the DA layer dies, batches
fail over to blobs and come back once it returns, and no certified block is lost."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from l1_mock.chain import TOKEN
from l1_mock.da import genesis as da_genesis_mod
from l1_mock.da.chain import DAConfig, DAGenesis
from l1_mock.da.server import DANode, DASettings, serve
from l1_mock.server import L1Service, L1Settings
from l1_mock.server import serve as serve_l1
from sequencer_node.batcher.config import BatcherConfig
from sequencer_node.batcher.service import BatcherService
from sequencer_node.clients.da import DAClient
from sequencer_node.clients.l1 import L1Client
from sequencer_node.derivation.deriver import Deriver, InvalidBatch
from sequencer_node.wire.crypto import SigningKey
from sequencer_node.wire.da.pfb import blob_fee
from sequencer_node.wire.da.shares import user_namespace
from sequencer_node.wire.messages import DA_EXTERNAL, CertifiedBlock
from tests.batcher.helpers import KEYS, l1_genesis, l2_chain, l2_genesis
from tests.batcher.test_service import Net, feed, make_service, mine_until, stores

NAMESPACE = user_namespace(b"rollup-901")
RELAYER = SigningKey.deterministic("extda-relayer")
COMMITTEE_KEYS = tuple(da_genesis_mod.dev_committee_key(i) for i in range(4))


def _da_genesis() -> DAGenesis:
    now = int(time.time())
    g = da_genesis_mod.dev_genesis(DAConfig(chain_id=7_000, genesis_time=now, slot_time=1))
    return dataclasses.replace(g, balances=tuple((k.address, 10**24) for k in KEYS))


@asynccontextmanager
async def running(tmp: Path) -> AsyncIterator[tuple[L1Client, str, Any]]:
    """An L1 that knows the DA committee and namespace, and a way to start/stop the DA."""
    dag = _da_genesis()
    g = l1_genesis()
    g = dataclasses.replace(
        g,
        config=dataclasses.replace(
            g.config, da_chain_id=7_000, da_committee=dag.committee, da_namespace=NAMESPACE
        ),
        balances=(*g.balances, (RELAYER.address, 1_000 * TOKEN)),
    )
    node = L1Service.open(g, L1Settings(tmp / "l1", 2, auto_mine=False))
    try:
        async with trio.open_nursery() as nursery:
            l1_url = await nursery.start(serve_l1, node, "127.0.0.1", 0)
            da = _DA(tmp / "da", dag, l1_url)
            await da.start(nursery)
            async with L1Client(l1_url, timeout=60) as client:
                yield client, da.url, da
            nursery.cancel_scope.cancel()
    finally:
        node.store.close()


class _DA:
    """The DA mock with its relayer, which the test can kill and bring back on its port."""

    def __init__(self, path: Path, genesis: DAGenesis, l1_url: str) -> None:
        self.path, self.genesis, self.l1_url = path, genesis, l1_url
        self.url = ""
        self.scope: trio.CancelScope | None = None

    async def start(self, nursery: trio.Nursery) -> None:
        port = int(self.url.rsplit(":", 1)[1]) if self.url else 0
        settings = DASettings(
            self.path, 1_000, True, False, 2, COMMITTEE_KEYS, self.l1_url, RELAYER
        )
        node = DANode.open(self.genesis, settings)

        async def run(task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
            with trio.CancelScope() as scope:
                self.scope = scope
                try:
                    await serve(node, "127.0.0.1", port, task_status=task_status)
                finally:
                    node.store.close()

        self.url = await nursery.start(run)

    def kill(self) -> None:
        assert self.scope is not None
        self.scope.cancel()


def _services(tmp: Path, l1: L1Client, da_url: str, net: Net) -> list[BatcherService]:
    config = BatcherConfig(
        da="extda",
        poll_interval_s=0.05,
        posting_deadline_s=30.0,
        proposal_timeout_s=5.0,
        max_age_ms=0,
        da_failover_s=1.0,
        da_attest_timeout_s=20.0,
    )
    out = []
    for k in KEYS:
        svc = make_service(tmp, l1, k, net, config=config)
        svc.da = DAClient(da_url, b"", key=k)
        out.append(svc)
    return out


async def _reached(l1: L1Client, height: int) -> bool:
    last = await l1.last_batch()
    return last is not None and last.header.last_height >= height


async def _feed_and_land(
    l1: L1Client, services: list[BatcherService], blocks: list[CertifiedBlock]
) -> None:
    for s in services:
        feed(s, blocks)
    await mine_until(l1, lambda: _reached(l1, blocks[-1].block.header.height), deadline=90)


class LyingDA(DAClient):
    """A DA node that withholds the batch's blob, or serves other bytes in its place."""

    def __init__(self, url: str, how: str) -> None:
        super().__init__(url, b"")
        self.how = how

    async def _get(self, path: str) -> Any:
        body = await super()._get(path)
        if path.startswith("/v1/blobs/") and body.get("blobs"):
            if self.how == "withhold":
                body["blobs"] = []
            else:
                b = body["blobs"][0]
                b["data"] = b["data"][:-2] + ("00" if b["data"][-2:] != "00" else "01")
        return body


async def test_extda_batches_land_and_a_follower_derives_from_l1_and_da(tmp_path: Path) -> None:
    chain = l2_chain(8, 6)
    net = Net()
    async with running(tmp_path) as (l1, da_url, _da), trio.open_nursery() as nursery:
        services = _services(tmp_path, l1, da_url, net)
        for s in services:
            await nursery.start(s.run)
        await _feed_and_land(l1, services, chain)
        batches = await l1.inbox_batches(0, 10)
        assert batches
        assert {b.header.da_kind for b in batches} == {DA_EXTERNAL}
        assert all(b.da_tuple is not None for b in batches)
        async with DAClient(da_url, b"") as reader:
            follower = Deriver(l1, l2_genesis(), da=reader)
            derived = await follower.derive_available()
        assert derived[-1].last_height == 8
        assert follower.state_root() == chain[-1].block.header.state_root
        assert {d.da for d in derived} == {"extda"}
        for how in ("withhold", "forge"):
            async with LyingDA(da_url, how) as liar:
                with pytest.raises(InvalidBatch, match="does not verify"):
                    await Deriver(l1, l2_genesis(), da=liar).derive_available()
        without_da = Deriver(l1, l2_genesis())
        with pytest.raises(Exception, match="--da-url"):
            await without_da.derive_available()
        rows = services[0].batches()
        assert {r["state"] for r in rows} == {"accepted"}
        await _check_da_fees(l1, da_url, rows)
        nursery.cancel_scope.cancel()
    for s in services:
        stores.pop(s).close()


async def _check_da_fees(l1: L1Client, da_url: str, rows: list[dict[str, Any]]) -> None:
    """Each extda batch's report carries the DA fee of its DA receipt (the attested base fee
    gives the same), in wei at the L1's rate (1 here), beside the L1 charge."""
    accepted = {b.header.batch_number: b for b in await l1.inbox_batches(0, 100)}
    async with DAClient(da_url, b"") as reader:
        for r in rows:
            ib = accepted[r["number"]]
            ptr = ib.header.da_pointer
            assert r["da"] == "extda"
            assert ptr is not None
            assert ib.da_tuple is not None
            fee = await reader.blob_fee(ptr)
            assert fee == blob_fee(ptr.end - ptr.start, ib.da_tuple.base_fee) > 0
            assert int(r["da_fee"]) == int(r["da_fee_wei"]) == fee
            assert int(r["total_cost"]) == int(r["fee_paid"]) + fee


async def test_a_dead_da_layer_fails_over_to_blobs_and_back_losing_nothing(
    tmp_path: Path,
) -> None:
    chain = l2_chain(30, 3)
    net = Net()
    async with running(tmp_path) as (l1, da_url, da), trio.open_nursery() as nursery:
        services = _services(tmp_path, l1, da_url, net)
        for s in services:
            await nursery.start(s.run)
        await _feed_and_land(l1, services, chain[:10])
        da.kill()  # the DA process dies mid-run
        await _feed_and_land(l1, services, chain[10:20])
        assert "failover" in services[0].status()["da_active"]
        await da.start(nursery)  # back on its port, from its data directory
        await _feed_and_land(l1, services, chain[20:])
        batches = await l1.inbox_batches(0, 100)
        kinds = [b.header.da_kind for b in batches]
        assert kinds[0] == DA_EXTERNAL
        assert kinds[-1] == DA_EXTERNAL
        assert any(b.header.blob_hashes for b in batches)  # the failover batches
        async with DAClient(da_url, b"") as reader:
            follower = Deriver(l1, l2_genesis(), da=reader)
            derived = await follower.derive_available()
        # every certified block, in order, in the derived chain
        starts = [d.first_height for d in derived]
        assert starts == [1, *(d.last_height + 1 for d in derived[:-1])]
        assert derived[-1].last_height == 30
        assert follower.state_root() == chain[-1].block.header.state_root
        assert {d.da for d in derived} == {"extda", "blobs"}
        nursery.cancel_scope.cancel()
    for s in services:
        stores.pop(s).close()
