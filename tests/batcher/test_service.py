"""Four BatcherServices (in-process, messages delivered directly) against a real L1 server:
proposal, co-signing, certificate, posting, failover, restart; a follower derives the
same state root from L1 alone."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from sequencer_node.batcher.config import BatcherConfig
from sequencer_node.batcher.messages import BatchProposal
from sequencer_node.batcher.records import BatchRecords, BatchState
from sequencer_node.batcher.service import BatcherService
from sequencer_node.clients.l1 import L1Client
from sequencer_node.derivation.deriver import Deriver
from sequencer_node.shell.store import Store
from sequencer_node.wire import kzg
from sequencer_node.wire.codec import decode, encode
from sequencer_node.wire.crypto import SigningKey
from sequencer_node.wire.messages import CertifiedBlock
from tests.batcher.helpers import (
    KEYS,
    L1_CHAIN,
    L2_CHAIN,
    STAKES,
    l2_chain,
    l2_genesis,
    running_l1,
)

#: The block store each test service reads from (the node's store in production).
stores: dict[BatcherService, Store] = {}


class Crash(Exception):
    pass


class Net:
    """Delivers every broadcast to the other services, through the wire codec."""

    def __init__(self) -> None:
        self.services: dict[bytes, BatcherService] = {}
        self.tampered: Callable[[bytes, object], object] | None = None

    def broadcaster(self, me: bytes) -> Callable[[object], None]:
        def send(msg: object) -> None:
            raw = encode(msg)
            for pk, svc in list(self.services.items()):
                if pk != me:
                    m: object = decode(raw)
                    if self.tampered is not None:
                        m = self.tampered(pk, m)
                    if svc.handles(m):
                        svc.message_received(me, m)

        return send


def make_service(
    tmp: Path,
    l1: L1Client,
    key: SigningKey | None,
    net: Net,
    *,
    da: str = "blobs",
    fault: Any = None,
    deadline: float = 30.0,
    cls: type[BatcherService] = BatcherService,
    schedule: Callable[[], list[bytes]] | None = None,
    config: BatcherConfig | None = None,
    workers: int = 0,
) -> BatcherService:
    identity = key.public_key if key is not None else bytes(32)
    store = Store.open(tmp / identity.hex()[:8], chain_id=L2_CHAIN, identity=identity)
    svc = cls(
        blocks=store,
        data_dir=tmp / identity.hex()[:8],
        config=config
        or BatcherConfig(
            da=da,  # type: ignore[arg-type]
            poll_interval_s=0.05,
            # Long by default: under a loaded machine a short deadline lets a back-up post
            # (correctly) before the leader's call is mined, which the failover test wants
            # and the others do not.
            posting_deadline_s=deadline,
            proposal_timeout_s=5.0,
            max_age_ms=0,
        ),
        l1=l1,
        key=key,
        chain_id=L2_CHAIN,
        l1_chain_id=L1_CHAIN,
        broadcast=net.broadcaster(identity),
        schedule=schedule or (lambda: [k.public_key for k in KEYS]),
        stake_view=lambda: (0, STAKES),
        worker_processes=workers,
        fault=fault,
    )
    net.services[identity] = svc
    stores[svc] = store
    return svc


def feed(svc: BatcherService, blocks: list[CertifiedBlock]) -> None:
    stores[svc].put_blocks(blocks)
    for b in blocks:
        svc.block_committed(b, b.block.header.state_root)


async def mine_until(l1: L1Client, cond: Callable[[], Any], deadline: float = 60) -> None:
    with trio.fail_after(deadline):
        while not await cond():
            await l1.dev_mine(1)
            await trio.sleep(0.05)


async def inbox_last_height(l1: L1Client) -> int:
    last = await l1.last_batch()
    return 0 if last is None else last.header.last_height


@pytest.mark.parametrize("da", ["blobs", "calldata"])
async def test_four_services_cosign_post_and_a_follower_derives_the_same_root(
    tmp_path: Path, da: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    chain = l2_chain(10, 6)
    net = Net()
    committed: list[bytes] = []  # blobs whose KZG commitment a node computed
    compute = kzg.blob_to_commitment_and_proof

    def counted(blob: bytes) -> tuple[bytes, bytes]:
        committed.append(blob)
        return compute(blob)

    monkeypatch.setattr(kzg, "blob_to_commitment_and_proof", counted)
    async with running_l1(tmp_path) as (_node, l1), trio.open_nursery() as nursery:
        services = [make_service(tmp_path, l1, k, net, da=da) for k in KEYS]
        services.append(make_service(tmp_path, l1, None, net, da=da))  # keyless observer
        for s in services:
            feed(s, chain[:6])
            await nursery.start(s.run)
        await mine_until(l1, lambda: _reached(l1, 6))
        for s in services:
            feed(s, chain[6:])
        await mine_until(l1, lambda: _reached(l1, 10))
        batches = await l1.inbox_batches(0, 10)
        assert [b.header.batch_number for b in batches] == list(range(len(batches)))
        assert all(len(b.signers) >= 3 for b in batches)
        # the follower reads only L1
        follower = Deriver(l1, l2_genesis())
        derived = await follower.derive_available()
        assert derived[-1].last_height == 10
        assert follower.state_root() == chain[-1].block.header.state_root
        assert {d.da for d in derived} == {da}
        # every node records every batch ACCEPTED with its cost
        with trio.fail_after(10):
            while True:
                if all(s.status()["inbox_next"] >= len(batches) for s in services):
                    break
                await trio.sleep(0.05)
        for s in services:
            rows = s.batches()
            assert [r["state"] for r in rows] == ["accepted"] * len(batches)
            assert sum(r["txs"] for r in rows) == 60
            assert int(s.status()["totals"]["fee_paid"]) > 0
        # issue 13: only the proposer computes commitments (~130 ms per blob); co-signers
        # check its proofs against their own blobs (they computed them too, 4x the work)
        assert len(committed) == sum(len(b.header.blob_hashes) for b in batches)
        # the leader posted everything, exactly one call per batch
        assert await l1.nonce(KEYS[0].address) == len(batches)
        assert await l1.nonce(KEYS[1].address) == 0
        loc = services[2].tx_location(_first_tx_hash(chain[0]))
        assert loc is not None
        assert loc[0] == 0
        nursery.cancel_scope.cancel()
    for s in services:
        stores.pop(s).close()


async def _reached(l1: L1Client, height: int) -> bool:
    return await inbox_last_height(l1) >= height


def _first_tx_hash(cb: CertifiedBlock) -> bytes:
    from sequencer_node.wire.messages import tx_hash

    return tx_hash(cb.block.transactions[0])


async def test_leader_crashes_before_sending_backup_posts_and_restart_posts_nothing(
    tmp_path: Path,
) -> None:
    chain = l2_chain(6, 3)
    net = Net()

    def crash(point: str) -> None:
        if point == "before_send":
            raise Crash(point)

    async def run_until_crash(svc: BatcherService) -> None:
        try:
            await svc.run()
        except* Crash:
            pass

    async with running_l1(tmp_path) as (_node, l1), trio.open_nursery() as nursery:
        services = [make_service(tmp_path, l1, KEYS[0], net, fault=crash, deadline=0.5)]
        services += [make_service(tmp_path, l1, k, net, deadline=0.5) for k in KEYS[1:]]
        for s in services:
            feed(s, chain)
        nursery.start_soon(run_until_crash, services[0])
        for s in services[1:]:
            await nursery.start(s.run)
        await mine_until(l1, lambda: _reached(l1, 6))
        assert await l1.nonce(KEYS[0].address) == 0  # the leader never got its call out
        assert await l1.nonce(KEYS[1].address) >= 1  # the first back-up posted
        # what the crashed leader left on disk (its run() closed its own records)
        left = BatchRecords.open(tmp_path / KEYS[0].public_key.hex()[:8])
        rec = left.get(0)
        left.close()
        assert rec is not None
        assert rec.state == BatchState.POSTED
        # the leader restarts over the same data directory
        stores.pop(services[0]).close()
        del net.services[KEYS[0].public_key]
        again = make_service(tmp_path, l1, KEYS[0], net, deadline=0.5)
        await nursery.start(again.run)
        with trio.fail_after(20):
            while (r := again.records.get(0)) is None or r.state != BatchState.ACCEPTED:
                await l1.dev_mine(1)
                await trio.sleep(0.05)
        assert await l1.nonce(KEYS[0].address) == 0
        assert [b.header.batch_number for b in await l1.inbox_batches(0, 10)] == list(
            range(len(await l1.inbox_batches(0, 10)))
        )
        nursery.cancel_scope.cancel()
    for s in [*services[1:], again]:
        stores.pop(s).close()


async def test_validators_refuse_a_header_that_differs_from_their_rebuild(
    tmp_path: Path,
) -> None:
    """A proposal whose state root was altered in transit gets no approval from the others,
    so no certificate forms and nothing reaches the inbox."""
    import dataclasses

    chain = l2_chain(4, 2)
    net = Net()

    def tamper(to: bytes, msg: object) -> object:
        if isinstance(msg, BatchProposal):
            bad = dataclasses.replace(msg.header, state_root=bytes(32))
            return dataclasses.replace(msg, header=bad)  # the proofs are good, the root not
        return msg

    net.tampered = tamper
    async with running_l1(tmp_path) as (_node, l1), trio.open_nursery() as nursery:
        services = [make_service(tmp_path, l1, k, net) for k in KEYS]
        for s in services:
            feed(s, chain)
            await nursery.start(s.run)
        for _ in range(10):
            await l1.dev_mine(1)
            await trio.sleep(0.1)
        assert await l1.last_batch() is None
        assert all(s.records.get(0) is None for s in services)
        nursery.cancel_scope.cancel()
    for s in services:
        stores.pop(s).close()


async def test_a_cosigner_restarted_before_the_batch_lands_proposes_the_bytes_it_approved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Co-signers accept the proposer's compressed payload without compressing (issue 13);
    the approval record keeps those bytes, so a co-signer that must propose or post the
    header later (after a restart: nothing in memory) rebuilds them from its records and its
    chain, and never compresses: another build of the compressor might give other bytes."""
    from sequencer_node.batching import codec as batching_codec

    chain = l2_chain(4, 3)
    net = Net()
    async with running_l1(tmp_path) as (_node, l1), trio.open_nursery() as nursery:
        services = [make_service(tmp_path, l1, k, net) for k in KEYS]
        for s in services:
            feed(s, chain)
            await nursery.start(s.run)
        cosigner = services[1]
        with trio.fail_after(30):  # no L1 block is mined: the batch is approved, not posted
            while (lock := cosigner.records.approval(0)) is None:  # noqa: ASYNC110 (a file)
                await trio.sleep(0.05)
        assert lock.payload is not None

        def no_compression(data: bytes, algorithm: int) -> bytes:
            raise AssertionError("the co-signer compressed the batch again")

        monkeypatch.setattr(batching_codec, "compress", no_compression)
        cosigner._open.clear()  # what a restart leaves: the records and the chain
        prepared = await cosigner._rebuild(lock.header, lock.algorithm)
        assert prepared.draft.payload == lock.payload
        assert prepared.draft.data_hash == lock.header.data_hash
        assert prepared.blob_hashes == lock.header.blob_hashes
        nursery.cancel_scope.cancel()
    for s in services:
        stores.pop(s).close()
