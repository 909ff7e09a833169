"""The node's core-owning task (issue 13): it takes the inputs queued behind the first one in
one pass instead of one wait per input, and persists the never-sign-twice watermark in a
worker thread, so the event loop keeps serving (``/health``, the readers) during the fsync
while no signed message leaves before it is durable."""

from __future__ import annotations

import itertools
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
import trio
import trio.testing

from sequencer_node.core import api
from sequencer_node.shell import node_service
from sequencer_node.shell.node_service import Node, NodeSettings
from sequencer_node.sim.harness import Simulation
from tests.shell.test_ingress import Gossip, _txs
from tests.shell.test_store_snapshots import _genesis


class _Peers(Gossip):
    """Gossip, and the statistics the core task's gauges read."""

    def statistics(self) -> SimpleNamespace:
        return SimpleNamespace(connected=0, offenses={}, bans=0, handshake_failures=0)


class _CountingReceive:
    """The core task's input channel, counting the waits (``receive``) it does."""

    def __init__(self, inner: trio.MemoryReceiveChannel[object]) -> None:
        self.inner = inner
        self.waits = 0
        self.taken = 0

    async def receive(self) -> object:
        self.waits += 1
        item = await self.inner.receive()
        self.taken += 1
        return item

    def receive_nowait(self) -> object:
        item = self.inner.receive_nowait()
        self.taken += 1
        return item


def _open(tmp_path: Path, sim: Simulation, tick_s: float) -> Node:
    """A follower node of ``sim``'s chain, opened, with peers that take everything."""
    settings = NodeSettings(tmp_path, _genesis(sim), key=None, batcher=False, tick_s=tick_s)
    node = Node(settings)
    node.open()
    node.pm = _Peers()  # type: ignore[assignment]
    return node


@pytest.mark.parametrize(("queued", "waits"), [(10, 1), (100, 2)])
async def test_queued_inputs_are_taken_in_one_wait_per_batch(
    tmp_path: Path, queued: int, waits: int
) -> None:
    """Issue 13: the core task waited (a receive and a cancel scope) once per input; it now
    takes what is queued behind the first input in the same pass, at most 64 (so a tick is
    never late by more than that), and the input channel keeps its bound. Fails before: one
    wait per input (10 and 100)."""
    sim = Simulation(1)
    node = _open(tmp_path, sim, tick_s=3600.0)
    counting = _CountingReceive(node._recv)
    node._recv = counting  # type: ignore[assignment]
    try:
        reqs = [node._enqueue([tx]) for tx in _txs(sim, 0, queued)]
        assert node._send.statistics().max_buffer_size == node.settings.inbound_buffer
        async with trio.open_nursery() as nursery:
            nursery.start_soon(node._journal_loop)
            nursery.start_soon(node._core_loop, trio.Event())
            with trio.fail_after(20):
                for req in reqs:
                    await req.done.wait()
            nursery.cancel_scope.cancel()
        assert counting.taken == queued
        assert counting.waits == waits + 1  # + the wait that was cancelled
        assert all(len(r.results) == 1 and r.result is not None for r in reqs)
        assert node._queued_txs == 0
    finally:
        node.close()


class _SlowStore:
    """A store whose watermark write blocks (in its worker thread) until released."""

    def __init__(self) -> None:
        self.started, self.release = threading.Event(), threading.Event()
        self.written: list[bytes] = []

    def write_watermark(self, record: bytes, blocks: object = ()) -> None:
        self.started.set()
        self.release.wait(2.0)  # on the event loop (before the change) this blocks it
        self.written.append(record)


class _RecordingCore:
    def __init__(self) -> None:
        self.fed: list[object] = []

    def handle(self, event: object, now: int) -> list[api.Effect]:
        self.fed.append(event)
        return []


async def test_the_watermark_is_written_off_the_event_loop_and_released_only_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fails before: the fsync ran on the event loop, so nothing else ran during it."""
    sim = Simulation(1)
    node = Node(NodeSettings(tmp_path, _genesis(sim), key=None, batcher=False))
    node.open()
    real_store, real_core = node.store, node.core
    store, core = _SlowStore(), _RecordingCore()
    node.store, node.core = store, core  # type: ignore[assignment]
    monkeypatch.setattr(node_service, "encode", lambda record: b"record")
    try:
        done = trio.Event()

        async def carry_out() -> None:
            persist = api.PersistWatermark(None, 7)  # type: ignore[arg-type]
            await node._carry_out([persist])
            done.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(carry_out)
            with trio.fail_after(10):
                await trio.to_thread.run_sync(store.started.wait)
            # The write is in flight and this task runs: the loop is free; nothing released.
            await trio.testing.wait_all_tasks_blocked()
            assert core.fed == []
            assert store.written == []
            assert not done.is_set()
            store.release.set()
            with trio.fail_after(10):
                await done.wait()
        assert store.written == [b"record"]
        assert core.fed == [api.WatermarkPersisted(7)]  # fed back once durable, at once
    finally:
        node.store, node.core = real_store, real_core
        node.close()


async def test_requests_taken_in_one_pass_share_one_journal_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Group commit across concurrent requests (issue 13): the client transactions accepted in
    one pass of the core task are journaled in ONE fsynced store transaction, and each request
    is answered only after it returned. Fails before: the journal task ran between the first
    request and the rest (two commits for five requests)."""
    monkeypatch.setattr(node_service, "_BATCH_SLICE_S", 60.0, raising=False)  # no yield in a pass
    sim = Simulation(1)
    node = _open(tmp_path, sim, tick_s=3600.0)
    assert node.store is not None
    real_journal = node.store.journal_txs
    events: list[str] = []

    def journal(rows: list[tuple[bytes, bytes]], **kw: int) -> None:
        real_journal(rows, **kw)
        events.append(f"committed {len(rows)}")

    node.store.journal_txs = journal  # type: ignore[method-assign,assignment]
    try:
        async with trio.open_nursery() as nursery:
            results: list[api.TxResult] = []
            all_answered = trio.Event()

            async def submit(tx: object) -> None:
                [result] = await node.submit_txs([tx])  # type: ignore[list-item]
                events.append("answered")
                results.append(result)
                if len(results) == 5:
                    all_answered.set()

            for tx in _txs(sim, 0, 5):
                nursery.start_soon(submit, tx)
            await trio.testing.wait_all_tasks_blocked()  # all five queued for the core
            nursery.start_soon(node._journal_loop)
            nursery.start_soon(node._core_loop, trio.Event())
            with trio.fail_after(20):
                await all_answered.wait()
            nursery.cancel_scope.cancel()
        assert all(r.accepted for r in results)
        assert events == ["committed 5"] + ["answered"] * 5
        journaled = sorted(h for h, _ in node.store.journaled_txs())
        assert journaled == sorted(r.tx_hash for r in results)
    finally:
        node.close()


async def test_the_core_clock_ticks_between_inputs_of_a_batch(
    tmp_path: Path, mock_clock: trio.testing.MockClock
) -> None:
    """A batch of queued inputs does not hold back the core's tick (timeouts, proposing):
    when one is due, it runs between two inputs, as before the batching."""
    sim = Simulation(1)
    node = _open(tmp_path, sim, tick_s=0.5)
    core = node.core
    assert core is not None
    calls: list[str] = []
    real_tick, real_handle = core.tick, core.handle

    def tick(now: int) -> list[api.Effect]:
        calls.append("tick")
        return real_tick(now)

    def handle(event: api.Event, now: int) -> list[api.Effect]:
        calls.append(type(event).__name__)
        mock_clock.jump(1.0)  # each input takes longer than a tick
        return real_handle(event, now)

    core.tick, core.handle = tick, handle  # type: ignore[method-assign,assignment]
    try:
        reqs = [node._enqueue([tx]) for tx in _txs(sim, 0, 5)]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(node._journal_loop)
            nursery.start_soon(node._core_loop, trio.Event())
            with trio.fail_after(20):
                for req in reqs:
                    await req.done.wait()
            nursery.cancel_scope.cancel()
        submitted = [i for i, c in enumerate(calls) if c == "TxSubmitted"]
        assert len(submitted) == 5
        for a, b in itertools.pairwise(submitted):
            assert "tick" in calls[a:b]
    finally:
        node.close()


async def test_a_large_batch_of_transactions_lets_other_tasks_run_while_it_is_handled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ingress batch of hundreds of transactions was one step of 30-40 ms on the event loop
    (/health waited for it); now other tasks run between its slices. Here every slice is one
    transaction. Fails before: the batch's transactions were handled in one step."""
    monkeypatch.setattr(node_service, "_BATCH_SLICE_S", 0.0, raising=False)
    sim = Simulation(1)
    node = _open(tmp_path, sim, tick_s=3600.0)
    core = node.core
    assert core is not None
    calls: list[str] = []
    real_handle = core.handle

    def handle(event: api.Event, now: int) -> list[api.Effect]:
        calls.append("tx")
        return real_handle(event, now)

    core.handle = handle  # type: ignore[method-assign,assignment]
    try:
        txs = _txs(sim, 0, 10)
        answered = trio.Event()

        async def other() -> None:
            # Until the answer: the signatures are checked in a worker thread first, for a
            # while in which this task alone has the loop.
            while not answered.is_set():
                calls.append("other")
                await trio.lowlevel.checkpoint()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(node._journal_loop)
            nursery.start_soon(node._core_loop, trio.Event())
            nursery.start_soon(other)
            with trio.fail_after(20):
                results = await node.submit_txs(txs)
            answered.set()
            nursery.cancel_scope.cancel()
        assert [r.accepted for r in results] == [True] * 10
        first, last = calls.index("tx"), len(calls) - 1 - calls[::-1].index("tx")
        assert calls.count("tx") == 10
        assert "other" in calls[first:last]
    finally:
        node.close()
