"""How many HTTP exchanges the node's L1 readers make (issue 13, scaling): an exchange costs
each side about 1.5 ms of CPU, so the follower reads everything of one poll in ONE JSON-RPC
batch, and the batcher reads the L1 head and the next inbox page in one per tick. Also
the client's batch call: results in order, a refused call raised, a malformed answer refused."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import trio
import trio.lowlevel
import trio.testing

from sequencer_node.batcher.config import BatcherConfig
from sequencer_node.batcher.poster import Poster
from sequencer_node.clients.l1 import (
    InboxBatch,
    L1Client,
    L1Poll,
    L1Rejected,
    L1Unavailable,
    SequencerInfo,
)
from sequencer_node.core import api
from sequencer_node.shell.l1_watcher import L1Watcher
from sequencer_node.shell.metrics import NodeMetrics
from tests.batcher.helpers import KEYS, L1_CHAIN, running_l1
from tests.batcher.test_service import Net, make_service
from tests.l1 import helpers as l1_helpers


class CountingL1(L1Client):
    """Counts HTTP exchanges (one per POST, whatever it carries) and the calls in them."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.posts = 0
        self.calls: list[str] = []

    async def _post(self, body: object) -> Any:
        self.posts += 1
        for call in body if isinstance(body, list) else [body]:
            assert isinstance(call, dict)
            self.calls.append(str(call["method"]))
        return await super()._post(body)


async def test_a_follower_poll_is_one_http_exchange(tmp_path: Path) -> None:
    # Before: head, finalized, forced queue, fee data and inbox were five exchanges a poll.
    async with running_l1(tmp_path) as (_node, client):
        await client.dev_mine(100)  # past the first finalized blocks
        send, recv = trio.open_memory_channel[Any](100)
        async with CountingL1(client.url) as l1:
            watcher = L1Watcher(l1, events=send, key=None, genesis_stake_epoch=0, fee_start=0)
            await watcher.poll_once()  # the first poll also reads snapshots and sequencers
            l1.posts, l1.calls = 0, []
            await watcher.poll_once()
            assert l1.posts == 1
            assert sorted(l1.calls) == sorted(
                ["eth_getBlockByNumber", "eth_getBlockByNumber", "inbox_getForcedQueue",
                 "inbox_getBatches", "seq_getL1FeeInfo"]
            )  # fmt: skip
            head = await l1.head()
            fin = await l1.finalized()
        assert (watcher.head, watcher.finalized) == (head.number, fin.number)
        events = []
        while True:
            try:
                events.append(recv.receive_nowait())
            except trio.WouldBlock:
                break
        assert any(isinstance(e, api.L1HeadChanged) for e in events)
        # The fee data of every finalized block up to the finalized one reached the core.
        fee_blocks = [i.number for e in events if isinstance(e, api.L1FeeInfoSeen) for i in e.infos]
        assert fin.number > 0
        assert fee_blocks == list(range(fin.number + 1))


async def test_the_poll_reads_what_the_separate_calls_read(tmp_path: Path) -> None:
    async with running_l1(tmp_path) as (_node, client):
        await client.dev_mine(3)
        poll = await client.poll(forced_from=0, inbox_from=0, fee_from=0)
        assert poll.head == await client.head()
        assert poll.finalized == await client.finalized()
        assert poll.forced == await client.forced_queue(0, 100)
        assert poll.inbox == await client.inbox_batches(0, 100)
        assert poll.fees == await client.l1_fee_info(0, 256)
        assert all(r.number <= poll.finalized.number for r in poll.fees)
        assert not poll.full_fee_page
        none = await client.poll(forced_from=0, inbox_from=0, fee_from=None)
        assert none.fees == []


async def test_the_registry_and_the_blob_fee_ride_on_every_tenth_poll(tmp_path: Path) -> None:
    # Before: every tenth poll read the registered sequencers and the blob base fee in two
    # more exchanges of their own. Now they are two more calls in that poll's one exchange.
    metrics = NodeMetrics()
    told: list[dict[bytes, SequencerInfo]] = []
    async with running_l1(tmp_path) as (_node, client):
        await client.dev_mine(100)
        send, _recv = trio.open_memory_channel[Any](1000)
        async with CountingL1(client.url) as l1:
            watcher = L1Watcher(
                l1, events=send, key=None, genesis_stake_epoch=0, fee_start=0, metrics=metrics,
                sequencers_every=3, on_sequencers=told.append,
            )  # fmt: skip
            await watcher.poll_once()  # the first poll also reads the stake snapshots
            seqs, fee = await l1.sequencers(), await l1.blob_base_fee()
            seen = []
            for _ in range(6):
                l1.posts, l1.calls = 0, []
                await watcher.poll_once()
                seen.append((l1.posts, "staking_getSequencers" in l1.calls,
                             "eth_blobBaseFee" in l1.calls))  # fmt: skip
    assert seen == [(1, False, False), (1, False, False), (1, True, True)] * 2
    assert len(seqs) == len(KEYS)
    assert watcher.registered == {s.signing_key: s for s in seqs}
    assert told == [watcher.registered]  # told once: the registry did not change after
    assert f"seqnet_l1_blob_base_fee_wei {float(fee)}" in metrics.render().decode()


async def test_a_malformed_registry_in_the_poll_is_the_l1_unavailable() -> None:
    def answer(body: list[dict[str, Any]]) -> list[dict[str, Any]]:
        head = {"number": "0x1", "hash": "0x" + "11" * 32, "timestamp": "0x1", "slot": "0x1",
                "baseFeePerGas": "0x1", "blobGasUsed": "0x0", "excessBlobGas": "0x0"}  # fmt: skip
        results: dict[str, Any] = {
            "eth_getBlockByNumber": head, "inbox_getForcedQueue":
            {"length": 0, "consumed": 0, "entries": []}, "inbox_getBatches": [],
            "staking_getSequencers": [{"signingKey": "0x00"}], "eth_blobBaseFee": "0x1",
        }  # fmt: skip
        return [{"jsonrpc": "2.0", "id": c["id"], "result": results[c["method"]]} for c in body]

    l1 = _mock(answer)
    plain = await l1.poll(forced_from=0, inbox_from=0, fee_from=None)
    assert (plain.sequencers, plain.blob_base_fee) == (None, None)
    with pytest.raises(L1Unavailable, match="malformed sequencer list"):
        await l1.poll(forced_from=0, inbox_from=0, fee_from=None, registry=True)
    await l1.aclose()


async def test_a_batcher_tick_is_one_exchange_with_the_l1(tmp_path: Path) -> None:
    # Before: the head (seq_status), then the inbox, then the inbox again until a page came
    # back empty: two or three exchanges a tick. Now the head and the next inbox page share
    # one, and a page that is not full is the end.
    async with running_l1(tmp_path) as (_node, client), CountingL1(client.url) as l1:
        svc = make_service(tmp_path, l1, None, Net())
        await svc._tick()  # the first also reads the inbox's settings (seq_getConfig)
        l1.posts, l1.calls = 0, []
        for _ in range(3):
            await svc._tick()
            await client.dev_mine(1)
        assert l1.posts == 3
        assert l1.calls == ["seq_status", "inbox_getBatches"] * 3
        assert svc.judge.head == (await client.head()).number - 1  # read before the mine


def _mock(answer: Any) -> L1Client:
    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        return httpx.Response(200, json=answer(body))

    client = L1Client("http://l1.invalid")
    client._http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return client


async def test_a_batch_answers_in_call_order_whatever_the_order_of_the_answers() -> None:
    l1 = _mock(lambda body: [{"jsonrpc": "2.0", "id": c["id"], "result": c["method"]}
                             for c in reversed(body)])  # fmt: skip
    assert await l1.rpc_batch([("a", ()), ("b", (1,)), ("c", (2, 3))]) == ["a", "b", "c"]
    assert await l1.rpc_batch([]) == []
    await l1.aclose()


async def test_a_refused_call_in_a_batch_is_raised() -> None:
    def answer(body: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{"jsonrpc": "2.0", "id": body[0]["id"], "result": 1},
                {"jsonrpc": "2.0", "id": body[1]["id"],
                 "error": {"code": -32000, "message": "no such range"}}]  # fmt: skip

    l1 = _mock(answer)
    with pytest.raises(L1Rejected, match="no such range"):
        await l1.rpc_batch([("a", ()), ("b", ())])
    await l1.aclose()


@pytest.mark.parametrize(
    "answer",
    [
        lambda body: {"jsonrpc": "2.0", "id": body[0]["id"], "result": 1},  # not a list
        lambda body: [{"jsonrpc": "2.0", "id": body[0]["id"], "result": 1}],  # one missing
        lambda body: [{"jsonrpc": "2.0", "result": 1}, {"jsonrpc": "2.0", "result": 2}],  # no ids
    ],
)
async def test_a_malformed_batch_answer_is_the_l1_unavailable(answer: Any) -> None:
    l1 = _mock(answer)
    with pytest.raises(L1Unavailable, match="malformed JSON-RPC batch"):
        await l1.rpc_batch([("a", ()), ("b", ())])
    await l1.aclose()


async def test_every_l1_exchange_is_counted_by_method_in_the_node_metrics(
    tmp_path: Path,
) -> None:
    metrics = NodeMetrics()
    async with (
        running_l1(tmp_path) as (_node, client),
        L1Client(client.url, observer=metrics) as l1,
    ):
        await l1.block_number()
        await l1.rpc_batch([("eth_blockNumber", []), ("eth_chainId", [])])
        with pytest.raises(L1Rejected):
            await l1.rpc("no_suchMethod")  # answered: an error, but a usable answer
    async with L1Client("http://127.0.0.1:9", observer=metrics, timeout=2.0) as dead:
        with pytest.raises(L1Unavailable):
            await dead.block_number()
    text = metrics.render().decode()
    assert 'seqnet_l1_requests_total{outcome="ok"} 3.0' in text
    assert 'seqnet_l1_requests_total{outcome="failed"} 1.0' in text
    assert 'seqnet_l1_calls_total{method="eth_blockNumber"} 3.0' in text  # the batch's too
    assert 'seqnet_l1_calls_total{method="eth_chainId"} 1.0' in text
    assert 'seqnet_l1_calls_total{method="no_suchMethod"} 1.0' in text
    assert "seqnet_l1_request_seconds_count 4.0" in text


def test_the_method_label_is_bounded() -> None:
    metrics = NodeMetrics()
    for i in range(NodeMetrics.MAX_L1_METHODS + 10):
        metrics.l1_exchange([f"m{i}"], 0.001, True)
    text = metrics.render().decode()
    assert text.count("seqnet_l1_calls_total{") == NodeMetrics.MAX_L1_METHODS + 1
    assert 'seqnet_l1_calls_total{method="other"} 10.0' in text


# --- the batcher takes the follower's poll (one L1 read a second per node, not two) ----------


def _inbox(n: int) -> list[InboxBatch]:
    """``n`` inbox batches 0..n-1 of 10 L2 blocks each (the batcher reads their fields)."""
    h0 = l1_helpers.batch_header(l1_helpers.new_chain())
    return [
        InboxBatch(
            dataclasses.replace(
                h0, batch_number=i, first_height=10 * i + 1, last_height=10 * i + 10
            ),
            l1_block=5 + i,
            tx_hash=bytes([i + 1]) * 32,
            signers=(),
        )
        for i in range(n)
    ]


async def _polled(client: L1Client, inbox_from: int) -> L1Poll:
    return await client.poll(forced_from=0, inbox_from=inbox_from, fee_from=None)


async def test_a_batcher_tick_takes_the_follower_s_fresh_poll(tmp_path: Path) -> None:
    async with running_l1(tmp_path) as (_node, client), CountingL1(client.url) as l1:
        svc = make_service(tmp_path, l1, None, Net())
        await svc._tick()  # reads the inbox's settings and the head itself
        await client.dev_mine(3)
        poll = await _polled(client, svc._inbox_next)
        l1.posts, l1.calls = 0, []
        svc.l1_polled(poll, svc._inbox_next)
        await svc._tick()
        assert l1.posts == 0  # the head and the inbox came with the poll
        assert svc.judge.head == poll.head.number
        assert svc.judge.finalized == poll.finalized.number
        # Used once: the next tick without a new poll reads the L1 itself.
        await svc._tick()
        assert l1.calls == ["seq_status", "inbox_getBatches"]


async def test_a_stale_poll_or_one_that_misses_the_next_batch_is_not_used(
    tmp_path: Path,
) -> None:
    async with running_l1(tmp_path) as (_node, client), CountingL1(client.url) as l1:
        svc = make_service(tmp_path, l1, None, Net())
        await svc._tick()
        now = [1_000.0]
        svc._clock = lambda: now[0]
        stale = await _polled(client, svc._inbox_next)
        svc.l1_polled(stale, svc._inbox_next)
        now[0] += svc.config.poll_interval_s * 2  # older than a poll interval at the tick
        ahead = await _polled(client, svc._inbox_next + 5)
        behind = dataclasses.replace(
            ahead, head=dataclasses.replace(ahead.head, number=svc.judge.head - 1)
        )
        cases = ((stale, svc._inbox_next), (ahead, svc._inbox_next + 5), (behind, 0))
        for poll, inbox_from in cases:
            if poll is not stale:
                # fresh, but its page starts past our next batch / its head is older than ours
                svc.l1_polled(poll, inbox_from)
            l1.posts, l1.calls = 0, []
            await svc._tick()
            assert l1.calls == ["seq_status", "inbox_getBatches"]


async def test_the_shared_page_is_taken_from_the_batcher_s_next_batch(tmp_path: Path) -> None:
    async with running_l1(tmp_path) as (_node, client), CountingL1(client.url) as l1:
        svc = make_service(tmp_path, l1, None, Net())
        svc.poster = Poster(  # what run() starts: records each accepted batch and its cost
            records=svc.records, l1=l1, key=None, l1_chain_id=L1_CHAIN, config=svc.config,
            rebuild=svc._rebuild,
        )  # fmt: skip
        await svc._tick()
        await client.dev_mine(10)  # the blocks the batches say they landed in (5-7)
        base = await _polled(client, 0)
        batches = _inbox(3)
        # The follower read from batch 0; the batcher already had none: it takes all three.
        svc.l1_polled(dataclasses.replace(base, inbox=batches), 0)
        l1.posts, l1.calls = 0, []
        await svc._tick()
        assert svc._inbox_next == 3
        # Nothing but each batch's cost: its receipt and its block, in one exchange.
        assert l1.calls == ["eth_getTransactionReceipt", "eth_getBlockByNumber"] * 3
        assert l1.posts == 3
        # A full page from the follower: more may follow, so the batcher reads the next page.
        svc.l1_polled(dataclasses.replace(base, inbox=[], full_inbox_page=True), 3)
        l1.calls = []
        await svc._tick()
        assert l1.calls == ["inbox_getBatches"]


async def test_once_polls_are_shared_a_tick_follows_each_poll_within_bounds(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    l1 = L1Client("http://l1.invalid")  # never asked: only the waits are under test
    svc = make_service(tmp_path, l1, None, Net(), config=BatcherConfig(poll_interval_s=2.0))
    poll = cast(L1Poll, None)

    async def waited(poll_after: float | None = None) -> float:
        start = trio.current_time()
        async with trio.open_nursery() as nursery:
            if poll_after is not None:

                async def later() -> None:
                    await trio.sleep(poll_after)
                    svc.l1_polled(poll, 0)

                nursery.start_soon(later)
            await svc._wait_for_next_tick()
            nursery.cancel_scope.cancel()
        return trio.current_time() - start

    assert await waited() == pytest.approx(2.0)  # no poll shared yet: the plain interval
    svc.l1_polled(poll, 0)
    assert await waited() == pytest.approx(0.0)  # it already arrived
    assert await waited(poll_after=1.4) == pytest.approx(1.4)  # the tick follows the poll
    # A poll sooner than half an interval after the last tick waits for that half.
    assert await waited(poll_after=0.2) == pytest.approx(1.0)
    # No poll (the follower backing off from a dead L1): on its own after 1.5 intervals.
    assert await waited() == pytest.approx(3.0)
    await l1.aclose()
