"""The poster against a real in-process L1: durable in-flight state, crash points,
failover between posters, cost accounting."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

from sequencer_node.batcher.builder import make_header
from sequencer_node.batcher.config import BatcherConfig, max_fee_per_blob_gas
from sequencer_node.batcher.kzg_worker import KzgWorker, Prepared
from sequencer_node.batcher.poster import Poster, PostOutcome
from sequencer_node.batcher.records import BatchRecords, BatchState
from sequencer_node.clients.l1 import L1Client
from sequencer_node.wire.codec import encode
from sequencer_node.wire.crypto import SigningKey
from sequencer_node.wire.messages import ZERO_HASH, BatchCertificate, CertifiedBlock, batch_hash
from tests.batcher.helpers import KEYS, L1_CHAIN, L2_CHAIN, certify, l2_chain, running_l1


class Crash(Exception):
    """Stands for the process dying at a fault point."""


@dataclass
class Env:
    l1: L1Client
    worker: KzgWorker
    chain: list[CertifiedBlock]
    tmp: Path


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async with running_l1(tmp_path) as (_node, client), KzgWorker(processes=0) as worker:
        yield Env(client, worker, l2_chain(12, 4), tmp_path)


async def prepare(env: Env, first: int, last: int, da: str = "blobs") -> Prepared:
    blocks = [encode(b) for b in env.chain[first - 1 : last]]
    return await env.worker.prepare(blocks, algorithm=3, da=da, max_payload=10**6, fit=False)


def open_poster(
    env: Env, key: SigningKey, name: str, fault: object = None, da: str = "blobs"
) -> tuple[Poster, BatchRecords]:
    records = BatchRecords.open(env.tmp / name)

    async def rebuild(header: object, algorithm: int) -> Prepared:
        return await prepare(env, header.first_height, header.last_height, da)  # type: ignore[attr-defined]

    def hook(point: str) -> None:
        if fault == point:
            raise Crash(point)

    poster = Poster(
        records=records,
        l1=env.l1,
        key=key,
        l1_chain_id=L1_CHAIN,
        config=BatcherConfig(da=da),  # type: ignore[arg-type]
        rebuild=rebuild,
        fault=hook,
    )
    return poster, records


async def certified_batch(
    env: Env, number: int, first: int, last: int, parent: bytes, da: str = "blobs"
) -> tuple[BatchCertificate, Prepared]:
    p = await prepare(env, first, last, da)
    header = make_header(
        p.draft,
        chain_id=L2_CHAIN,
        batch_number=number,
        parent_batch_hash=parent,
        stake_epoch=0,
        blob_hashes=p.blob_hashes,
    )
    return certify(header), p


async def inbox_numbers(l1: L1Client) -> list[int]:
    return [b.header.batch_number for b in await l1.inbox_batches(0, 100)]


def close(*things: BatchRecords) -> None:
    for records in things:
        records.close()


def test_fee_policy_margin_and_cap() -> None:
    assert max_fee_per_blob_gas(1, 1.0, 10**12) == 2
    assert max_fee_per_blob_gas(1000, 0.25, 10**12) == 1250
    assert max_fee_per_blob_gas(1000, 0.0, 10**12) == 1001  # always above the base fee
    assert max_fee_per_blob_gas(10**9, 1.0, 5 * 10**8) == 5 * 10**8  # capped


@pytest.mark.parametrize("point", ["before_send", "after_send"])
async def test_crash_between_signing_posting_recording_posts_each_batch_once(
    env: Env, point: str
) -> None:
    """Crash at each point for two consecutive batches; after each restart the inbox holds
    every batch exactly once, in order, and the poster's key sent exactly one call each."""
    ranges = [(1, 5), (6, 12)]
    parent = ZERO_HASH
    for number, (first, last) in enumerate(ranges):
        cert, prepared = await certified_batch(env, number, first, last, parent)
        poster, records = open_poster(env, KEYS[0], "n0", fault=point)
        await poster.certified(cert, prepared)
        assert records.get(number).state == BatchState.SIGNED  # type: ignore[union-attr]
        with pytest.raises(Crash):
            await poster.post(number)
        rec = records.get(number)
        assert rec is not None
        assert rec.state == BatchState.POSTED
        assert rec.l1_tx_hash
        recorded = rec.l1_tx_hash
        close(records)
        # restart: a fresh poster over the same data directory, no fault
        poster, records = open_poster(env, KEYS[0], "n0")
        first_try = await poster.post(number)
        if point == "before_send":
            # the call never left: the very same call (same hash) is sent now
            assert (first_try.outcome, first_try.tx_hash) == (PostOutcome.SENT, recorded)
        else:
            assert (first_try.outcome, first_try.tx_hash) == (PostOutcome.WAITING, recorded)
        await env.l1.dev_mine(1)
        done = await poster.post(number)
        assert done.outcome is PostOutcome.ACCEPTED
        assert records.get(number).state == BatchState.ACCEPTED  # type: ignore[union-attr]
        # posting again is a no-op
        assert (await poster.post(number)).outcome is PostOutcome.ACCEPTED
        close(records)
        parent = batch_hash(cert.header)
    assert await inbox_numbers(env.l1) == [0, 1]
    # one call per batch from this key, no duplicates burned
    assert await env.l1.nonce(KEYS[0].address, pending=True) == 2


async def test_failover_next_poster_posts_and_the_first_does_not_post_again(env: Env) -> None:
    cert, prepared = await certified_batch(env, 0, 1, 6, ZERO_HASH)
    first, d1 = open_poster(env, KEYS[0], "n0", fault="before_send")
    await first.certified(cert, prepared)
    with pytest.raises(Crash):
        await first.post(0)
    close(d1)
    # the next in order posts the same certified batch
    backup, d2 = open_poster(env, KEYS[1], "n1")
    await backup.certified(cert, prepared)
    assert (await backup.post(0)).outcome is PostOutcome.SENT
    await env.l1.dev_mine(1)
    assert (await backup.post(0)).outcome is PostOutcome.ACCEPTED
    # the first poster restarts: the inbox already has it, it sends nothing
    first, d1 = open_poster(env, KEYS[0], "n0")
    result = await first.post(0)
    assert result.outcome is PostOutcome.ACCEPTED
    assert await env.l1.nonce(KEYS[0].address, pending=True) == 0
    assert await inbox_numbers(env.l1) == [0]
    rec = d1.get(0)
    assert rec is not None
    assert rec.state == BatchState.ACCEPTED
    assert rec.l1_tx_hash == result.tx_hash
    costs = d1.costs()
    assert [c.by_us for c in costs] == [False]
    assert d2.costs()[0].by_us
    close(d1, d2)


async def test_duplicate_submission_is_refused_cleanly_and_counts_as_accepted(env: Env) -> None:
    cert, prepared = await certified_batch(env, 0, 1, 6, ZERO_HASH)
    a, d1 = open_poster(env, KEYS[0], "n0")
    b, d2 = open_poster(env, KEYS[1], "n1")
    for p in (a, b):
        await p.certified(cert, prepared)
    assert (await a.post(0)).outcome is PostOutcome.SENT
    await env.l1.dev_mine(1)
    # b has not looked at L1 yet; its post sees the inbox and records acceptance
    assert (await b.post(0)).outcome is PostOutcome.ACCEPTED
    assert await inbox_numbers(env.l1) == [0]
    close(d1, d2)


class _GatedL1:
    """Delegates to the real client, but a second ``nonce`` lookup waits until the first
    call was sent: the interleaving in which an unserialized ``post`` sends twice."""

    def __init__(self, l1: L1Client) -> None:
        self._l1 = l1
        self._nonce_calls = 0
        self._sent = trio.Event()

    def __getattr__(self, name: str) -> object:
        return getattr(self._l1, name)

    async def nonce(self, address: bytes, pending: bool = True) -> int:
        self._nonce_calls += 1
        if self._nonce_calls > 1:
            await self._sent.wait()
        return await self._l1.nonce(address, pending)

    async def send_call(self, call: object) -> object:
        try:
            return await self._l1.send_call(call)  # type: ignore[arg-type]
        finally:
            self._sent.set()


@pytest.mark.parametrize("da", ["blobs", "calldata"])
async def test_concurrent_posts_of_one_batch_send_one_call(env: Env, da: str) -> None:
    """The service posts from its periodic loop and when a certificate completes: both may
    ask for the same batch at once. Exactly one call may leave."""
    cert, prepared = await certified_batch(env, 0, 1, 6, ZERO_HASH, da)
    poster, records = open_poster(env, KEYS[0], "n0", da=da)
    poster.l1 = _GatedL1(env.l1)  # type: ignore[assignment]
    await poster.certified(cert, prepared)
    outcomes: list[str] = []

    async def post() -> None:
        outcomes.append((await poster.post(0)).outcome.value)

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(post)
            nursery.start_soon(post)
    assert sorted(outcomes) == ["sent", "waiting"]
    await env.l1.dev_mine(1)
    assert await inbox_numbers(env.l1) == [0]
    assert await env.l1.nonce(KEYS[0].address) == 1  # one call, not one per post()
    close(records)


async def test_out_of_order_batch_waits_for_its_turn(env: Env) -> None:
    cert0, p0 = await certified_batch(env, 0, 1, 6, ZERO_HASH)
    cert1, p1 = await certified_batch(env, 1, 7, 12, batch_hash(cert0.header))
    poster, records = open_poster(env, KEYS[0], "n0")
    await poster.certified(cert1, p1)
    assert (await poster.post(1)).outcome is PostOutcome.NOT_NEXT
    await poster.certified(cert0, p0)
    assert (await poster.post(0)).outcome is PostOutcome.SENT
    await env.l1.dev_mine(1)
    assert (await poster.post(1)).outcome is PostOutcome.SENT
    await env.l1.dev_mine(1)
    assert (await poster.post(0)).outcome is PostOutcome.ACCEPTED
    assert (await poster.post(1)).outcome is PostOutcome.ACCEPTED
    assert await inbox_numbers(env.l1) == [0, 1]
    close(records)


@pytest.mark.parametrize("da", ["blobs", "calldata"])
async def test_cost_accounting_per_batch(env: Env, da: str) -> None:
    cert, prepared = await certified_batch(env, 0, 1, 12, ZERO_HASH, da)
    poster, records = open_poster(env, KEYS[0], "n0", da=da)
    await poster.certified(cert, prepared)
    assert (await poster.post(0)).outcome is PostOutcome.SENT
    await env.l1.dev_mine(1)
    assert (await poster.post(0)).outcome is PostOutcome.ACCEPTED
    [cost] = records.costs()
    assert cost.txs == 48
    assert cost.payload_bytes == len(prepared.draft.payload)
    if da == "blobs":
        assert (cost.blobs, cost.posted_bytes) == (1, 131072)
        assert cost.blob_fee == 131072  # blob base fee 1 wei at genesis
    else:
        assert (cost.blobs, cost.posted_bytes, cost.blob_fee) == (0, cost.payload_bytes, 0)
    assert cost.fee_paid > cost.blob_fee
    assert cost.fee_per_tx == cost.fee_paid / 48
    close(records)


async def test_process_worker_matches_the_in_thread_path() -> None:
    """The process pool path works and its result matches the in-thread path."""
    chain = l2_chain(3, 2)
    blocks = [encode(b) for b in chain]
    async with KzgWorker(processes=1) as w, KzgWorker(processes=0) as t:
        with trio.fail_after(60):
            a = await w.prepare(blocks, algorithm=3, da="blobs", max_payload=10**6, fit=False)
        b = await t.prepare(blocks, algorithm=3, da="blobs", max_payload=10**6, fit=False)
    assert a == b
    assert len(a.commitments) == 1


async def test_blob_fee_above_the_cap_waits_and_a_spike_is_priced_with_the_margin(
    env: Env,
) -> None:
    """The L1's blob base fee is read through a client whose answer the test controls
    (everything else is the real L1): above the cap nothing is sent or recorded as posted;
    once under it, the call's maxFeePerBlobGas is base fee x (1 + margin)."""
    quoted = {"fee": 2 * 10**12}

    class SpikyL1(L1Client):
        async def blob_base_fee(self) -> int:
            return quoted["fee"]

    cert, prepared = await certified_batch(env, 0, 1, 6, ZERO_HASH)
    poster, records = open_poster(env, KEYS[0], "n0")
    async with SpikyL1(env.l1.url) as spiky:
        poster.l1 = spiky
        await poster.certified(cert, prepared)
        result = await poster.post(0)
        assert result.outcome is PostOutcome.FEE_ABOVE_CAP
        assert "above the cap" in result.detail
        assert records.get(0).state == BatchState.SIGNED  # type: ignore[union-attr]
        assert records.inflight(0) is None
        quoted["fee"] = 3 * 10**11  # the market calms down below the cap of 10**12
        assert (await poster.post(0)).outcome is PostOutcome.SENT
        inflight = records.inflight(0)
        assert inflight is not None
        assert inflight.max_fee == 6 * 10**11  # margin 1.0
        await env.l1.dev_mine(1)
        assert (await poster.post(0)).outcome is PostOutcome.ACCEPTED
    close(records)
