"""``seqctl load``: the load generator (signed L2 transfers at a rate, followed to L1).

Senders are the devnet's deterministic load accounts
:func:`~sequencer_node.devnet.accounts.load_account_key` ``(0 .. --accounts-1)``,
which the devnet's L2 genesis prefunds (``sequencer_node.devnet`` funds the first 32), or any
accounts when ``--fund-from KEYSTORE`` first pays each of them ``--fund-amount``.

How it works (Trio + httpx, bounded): the load generator must not be the bottleneck, so the
transactions are signed and encoded *before* the timed part (up to ``PRESIGN_AHEAD_S`` seconds
of them; a longer run keeps signing that far ahead in the background), and they go out in
batches over ``POST /v1/txs``. The arrival is open-loop: transaction ``n`` is due at
``start + n / rate`` whatever the answers; accounts take turns round robin and each is pinned
to one node (round robin over ``--node-url``). One lane per node sends, one request at a time,
every transaction that became due since its last request (so a slow node gets larger
batches, never more requests, and each account's nonces arrive in order), and with
``--request-interval-ms`` at most one request per interval (as a gateway that coalesces its
users' transactions would; latency still counts from when each transaction was due, so the
wait is in the figures; the summary counts the requests); a lane with more
than ``--max-in-flight`` transactions due and unanswered skips the new ones (counted as
``skipped``), so the client never queues without bound. After a refusal or a lost answer the
account's nonce is re-read from ``/v1/account`` and its next transactions are signed again;
after ``OVERLOADED`` or ``CATCHING_UP`` (shed before it was decoded) the refused nonces are
the account's next ones, lowest first, and a nonce the node took after a refused one is not
sent again (nodes shed a batch's last transactions, so usually the account just resumes at its
first refused nonce). A transaction the node answers ``DUPLICATE`` (Ethereum: *already
known*) is in its pool: it counts as pending (``already_known``), not as refused.
Latency is measured from the moment a transaction was due (not from when it went out), so a
slow client or node cannot hide queueing.

A follower reads every new certified block (``/v1/blocks/{h}``) and the batches
(``/v1/batches``) from the first node (the next one after an error): a transaction is
*certified* when it appears in a block (latency = due -> block seen, polled every 100 ms) and
*in L1* when a batch with an L1 block covers its height (latency = due -> batch seen, polled
every second). After the sending phase it waits up to ``--drain`` seconds for the accepted
transactions to be certified (and in L1 with ``--wait-l1``). The summary reports the client's
own CPU time (``client``), so a benchmark can tell whether the client kept up.

The kind of transaction is a seam (:class:`TxKind`, ``--kind``): ``native`` (alias
``transfer``) signs native L2 transfers and sends them over ``POST /v1/txs``; ``eth`` signs
EIP-1559 transfers from each load account's Ethereum twin
(:func:`~sequencer_node.devnet.accounts.eth_load_private_key`, funded by the devnet) and sends
them as JSON-RPC batches of ``eth_sendRawTransaction`` at ``POST /``.
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TextIO

import click
import trio
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from sequencer_node.cli.common import emit, open_key, password_file_option, render_kv, render_table
from sequencer_node.cli.runner import run_async
from sequencer_node.cli.tx import (
    U64_MAX,
    make_transfer,
    pending_nonce,
    suggested_fee_of_any,
    wait_certified,
)
from sequencer_node.clients.node import (
    NodeClient,
    NodeError,
    NodeRejected,
    NodeUnavailable,
    encode_tx_batch,
)
from sequencer_node.devnet.accounts import (
    LOAD_ACCOUNTS,
    eth_load_address,
    eth_load_private_key,
    load_account_key,
)
from sequencer_node.system.commandline import EXIT_FAILED, fail, json_option
from sequencer_node.system.terminal import on_terminal
from sequencer_node.wire.codec import encode
from sequencer_node.wire.crypto import SigningKey
from sequencer_node.wire.eth import EthTransaction, eth_tx_hash, sign_dynamic_fee
from sequencer_node.wire.hexstr import to_hex
from sequencer_node.wire.messages import tx_hash

MAX_ACCOUNTS = 10_000
#: Seconds of transactions signed before the timed part (and kept ahead in a longer run).
PRESIGN_AHEAD_S = 60.0
#: Most transactions in one ``POST /v1/txs`` (the node's bound).
MAX_BATCH = 1024
#: Refusals made before the node decoded the transaction (it did not take it): 429 from a
#: full ingress, 503 from a node catching up.
_SHED_CODES = frozenset({"OVERLOADED", "CATCHING_UP"})
#: The shortest sleep between two hand-outs of due transactions.
TICK_MIN_S = 0.01
#: Default least time between two requests of one lane (``--request-interval-ms``): none.
REQUEST_INTERVAL_MS = 0
#: The steady-state window starts this far into the sending time.
STEADY_FROM = 0.25
#: Latency samples kept (beyond that, the percentiles are over the first ones).
MAX_SAMPLES = 1_000_000
FOLLOW_POLL = 0.1
BATCH_POLL = 1.0


def percentile(sorted_values: list[float], p: float) -> float | None:
    """Nearest-rank percentile of an ascending list (None when empty)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass
class LoadStats:
    """Counters of a run. Pure: times are passed in (seconds on any monotonic clock)."""

    submitted: int = 0
    accepted: int = 0
    skipped: int = 0
    #: sends the node answered DUPLICATE: it holds that very transaction (not a refusal)
    already_known: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    #: tx hash -> submit time, for transactions sent and not yet seen in a block
    pending: dict[bytes, float] = field(default_factory=dict)
    #: tx hash -> height, once seen in a certified block
    certified: dict[bytes, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    #: every height up to this one is in a batch that has an L1 block
    l1_height: int = -1
    #: submit -> seen in an L1 batch
    l1_latencies: list[float] = field(default_factory=list)
    #: when each transaction was seen certified (for the steady-state rate)
    cert_times: list[float] = field(default_factory=list)
    #: when the sending started (same clock as the other times)
    start: float = 0.0
    #: (height, submit time) of certified transactions not yet covered by an L1 batch
    _to_l1: deque[tuple[int, float]] = field(default_factory=deque)

    def sending(self, h: bytes, now: float) -> None:
        self.submitted += 1
        self.pending.setdefault(h, now)  # a resend of a pending one keeps its first due time

    def known(self, h: bytes) -> None:
        """The node already holds ``h`` (a resend of one it took): still pending."""
        self.already_known += 1

    def accepted_tx(self) -> None:
        self.accepted += 1

    def refused(self, h: bytes, reason: str) -> None:
        self.pending.pop(h, None)
        self.rejected[reason] += 1

    def block_seen(self, height: int, hashes: list[bytes], now: float) -> None:
        for h in hashes:
            t0 = self.pending.pop(h, None)
            if t0 is None:
                continue  # not ours (or already counted)
            self.certified[h] = height
            if len(self.latencies) < MAX_SAMPLES:
                self.latencies.append(now - t0)
                self.cert_times.append(now)
                self._to_l1.append((height, t0))

    def l1_covers(self, height: int, now: float | None = None) -> None:
        """Heights up to ``height`` are in L1 batches (seen at ``now``, if given: the
        submit -> L1 latency of the transactions they cover)."""
        self.l1_height = max(self.l1_height, height)
        if now is None:
            return
        # In height order (blocks are seen in order): a pop per covered transaction. The
        # follower calls this for every batch of every poll, and scanning the whole list
        # each time kept the generator busy for minutes after a long overloaded run.
        waiting = self._to_l1
        while waiting and waiting[0][0] <= self.l1_height:
            self.l1_latencies.append(now - waiting.popleft()[1])

    @property
    def in_l1(self) -> int:
        return sum(1 for h in self.certified.values() if h <= self.l1_height)

    def steady_rate(self, elapsed: float) -> float:
        """Certified transactions per second over the last three quarters of the sending
        time (the first quarter fills the pipeline)."""
        lo, hi = self.start + elapsed * STEADY_FROM, self.start + elapsed
        n = sum(1 for t in self.cert_times if lo <= t <= hi)
        return n / (hi - lo) if hi > lo else 0.0

    def summary(self, elapsed: float, rate: float) -> dict[str, Any]:
        lat = sorted(self.latencies)
        l1 = sorted(self.l1_latencies)
        return {
            "duration_s": round(elapsed, 3),
            "target_rate": rate,
            "achieved_rate": round(self.accepted / elapsed, 2) if elapsed > 0 else 0.0,
            "certified_rate_steady": round(self.steady_rate(elapsed), 2),
            "submitted": self.submitted,
            "accepted": self.accepted,
            "certified": len(self.certified),
            "in_l1": self.in_l1,
            "not_certified": self.accepted - len(self.certified),
            "rejected": dict(sorted(self.rejected.items())),
            "rejected_total": sum(self.rejected.values()),
            "already_known": self.already_known,
            "skipped_max_in_flight": self.skipped,
            "latency_s": {
                "samples": len(lat),
                "p50": _round(percentile(lat, 50)),
                "p90": _round(percentile(lat, 90)),
                "p99": _round(percentile(lat, 99)),
                "max": _round(lat[-1] if lat else None),
            },
            "l1_latency_s": {
                "samples": len(l1),
                "p50": _round(percentile(l1, 50)),
                "p99": _round(percentile(l1, 99)),
            },
        }


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


@dataclass
class LoadAccount:
    key: SigningKey
    node: int
    to: bytes
    #: the nonce of this account's next transaction (None: re-read it from the node first)
    nonce: int | None = None
    #: the nonce of its first presigned transaction
    first_nonce: int = 0
    #: nonces shed (OVERLOADED) below one the node took: sent again first, lowest first
    holes: set[int] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class Signed:
    """A transaction ready to send: its hash, its nonce and what goes on the wire."""

    tx_hash: bytes
    nonce: int
    raw: bytes


class TxKind(Protocol):
    """What kind of transaction the load sends: how one is signed, how a batch is sent."""

    name: str

    def address(self, acct: LoadAccount) -> bytes:
        """The account the transactions of ``acct`` are sent from (nonce, balance)."""
        ...

    def sign(self, acct: LoadAccount, nonce: int, cfg: LoadConfig, chain_id: int) -> Signed: ...

    async def send(self, client: NodeClient, batch: list[Signed]) -> list[str | None]:
        """Send ``batch`` (one account's transactions in nonce order); one entry per
        transaction: None if accepted, else the refusal code. Raises NodeError when the
        whole batch failed."""
        ...


class TransferKind:
    """Native L2 transfers (:func:`~sequencer_node.cli.tx.make_transfer`) over
    ``POST /v1/txs``."""

    name = "transfer"

    def address(self, acct: LoadAccount) -> bytes:
        return acct.key.address

    def sign(self, acct: LoadAccount, nonce: int, cfg: LoadConfig, chain_id: int) -> Signed:
        tx = make_transfer(acct.key, acct.to, cfg.amount, nonce, cfg.fee, chain_id)
        return Signed(tx_hash(tx), nonce, encode(tx))

    async def send(self, client: NodeClient, batch: list[Signed]) -> list[str | None]:
        results = await client.send_txs(encode_tx_batch([s.raw for s in batch]))
        if len(results) != len(batch):
            raise NodeUnavailable(
                f"node at {client.url} answered {len(results)} results for {len(batch)} txs",
                "BAD_ANSWER",
            )
        return [None if r["accepted"] else str(r.get("code") or "REJECTED") for r in results]


class EthKind:
    """EIP-1559 value transfers signed with eth-account from each load account's Ethereum
    twin, sent as JSON-RPC batches of ``eth_sendRawTransaction`` (``POST /``). ``--fee`` is
    the priority fee per gas (wei, at least 1); the max fee per gas is that plus
    :data:`ETH_LOAD_BASE_FEE_ROOM`."""

    name = "eth"

    def address(self, acct: LoadAccount) -> bytes:
        return eth_load_address(acct.key)

    def sign(self, acct: LoadAccount, nonce: int, cfg: LoadConfig, chain_id: int) -> Signed:
        tip = max(1, cfg.fee)
        raw = sign_dynamic_fee(
            eth_load_private_key(acct.key), chain_id=chain_id, nonce=nonce, to=acct.to,
            value=cfg.amount, max_priority_fee_per_gas=tip,
            max_fee_per_gas=tip + ETH_LOAD_BASE_FEE_ROOM,
        )  # fmt: skip
        return Signed(eth_tx_hash(EthTransaction(raw)), nonce, raw)

    async def send(self, client: NodeClient, batch: list[Signed]) -> list[str | None]:
        out: list[str | None] = []
        for i in range(0, len(batch), ETH_RPC_BATCH):
            out += await client.eth_send_raw([s.raw for s in batch[i : i + ETH_RPC_BATCH]])
        return out


#: What an Ethereum load transaction may pay per gas above its tip (room for a base fee).
ETH_LOAD_BASE_FEE_ROOM = 10**9
#: Requests in one JSON-RPC batch (the node's limit).
ETH_RPC_BATCH = 100

#: ``--kind``: the transaction kinds the load can send (``transfer`` is ``native``'s old name).
KINDS: dict[str, Callable[[], TxKind]] = {
    "native": TransferKind,
    "transfer": TransferKind,
    "eth": EthKind,
}


@dataclass(frozen=True)
class LoadConfig:
    node_urls: tuple[str, ...]
    rate: float
    duration: float
    accounts: int
    max_in_flight: int
    amount: int
    fee: int
    drain: float
    wait_l1: bool
    chain_id: int | None
    fund_from: SigningKey | None
    fund_amount: int
    kind: str = "transfer"
    #: least seconds between two requests to one node (due transactions wait and go together)
    request_interval_s: float = REQUEST_INTERVAL_MS / 1000


@dataclass
class _Due:
    """A transaction that is due: which account, when, and its pre-signed form."""

    acct: int
    at: float
    signed: Signed | None


class _Lane:
    """The sender of one node: due transactions queue here and go out in batches."""

    def __init__(self, client: NodeClient) -> None:
        self.client = client
        self.queue: list[_Due] = []
        self.in_flight = 0
        self.wake = trio.Event()
        #: when the lane's last request went out (trio clock), and how many it sent
        self.last_sent = -math.inf
        self.requests = 0

    def push(self, due: _Due) -> None:
        self.queue.append(due)
        self.wake.set()


class LoadRun:
    """One run of the load generator (see the module docstring)."""

    def __init__(self, cfg: LoadConfig, progress: TextIO | None) -> None:
        self.cfg = cfg
        self.kind = KINDS[cfg.kind]()
        self.stats = LoadStats()
        self.progress = progress
        self.sending_done = False
        self.start = 0.0
        self.follow_errors = 0
        self.resigned = 0
        self.started_at_unix = 0.0
        #: presigned transactions, in the order they fall due (index n -> account n % accounts)
        self._signed: list[Signed] = []
        self._lanes: list[_Lane] = []
        self.accounts: list[LoadAccount] = []
        self.chain_id = 0
        #: set (and replaced) after every poll of the follower
        self._followed = trio.Event()
        self._tick_scope = trio.CancelScope()
        self._drain_scope = trio.CancelScope()
        self.interrupted = False

    @property
    def in_flight(self) -> int:
        return sum(lane.in_flight + len(lane.queue) for lane in self._lanes)

    @property
    def total(self) -> int:
        return max(1, round(self.cfg.rate * self.cfg.duration))

    async def run(self) -> dict[str, Any]:
        cfg = self.cfg
        clients = [NodeClient(u, max_connections=4) for u in cfg.node_urls]
        try:
            return await self._run(clients)
        finally:
            for c in clients:
                await c.__aexit__(None, None, None)

    async def _run(self, clients: list[NodeClient]) -> dict[str, Any]:
        cfg = self.cfg
        status = await self._first_status(clients)
        self.chain_id = cfg.chain_id if cfg.chain_id is not None else int(status["chain_id"])
        start_height = int(status["heads"]["certified"]["height"])
        keys = [load_account_key(i) for i in range(cfg.accounts)]
        if cfg.fund_from is not None:
            await self._fund(clients[0], cfg.fund_from, keys, self.chain_id)
        # each account pays the next one (a single account pays the next dev account)
        nxt = [*keys[1:], keys[0] if len(keys) > 1 else load_account_key(1)]
        self.accounts = [LoadAccount(k, i % len(clients), nxt[i].address)
                         for i, k in enumerate(keys)]  # fmt: skip
        await self._check_balances(clients, self.accounts)
        for acct in self.accounts:
            acct.first_nonce = acct.nonce if acct.nonce is not None else 0
        cpu0, t0 = time.process_time(), time.perf_counter()
        await self._presign(min(self.total, self._ahead()))
        presign_cpu = time.process_time() - cpu0
        presign_s = time.perf_counter() - t0
        self._lanes = [_Lane(c) for c in clients]
        elapsed, cpu = await self._timed(start_height)
        if self.progress is not None and self.progress.isatty():
            self.progress.write("\n")
        out = self.stats.summary(elapsed, cfg.rate)
        requests = sum(lane.requests for lane in self._lanes)
        out.update(
            nodes=list(cfg.node_urls),
            accounts=cfg.accounts,
            chain_id=self.chain_id,
            kind=self.kind.name,
            started_at_unix=round(self.started_at_unix, 3),
            follow_errors=self.follow_errors,
            interrupted=self.interrupted,
            client={
                "presigned": min(self.total, self._ahead()),
                "presign_s": round(presign_s, 3),
                "presign_cpu_s": round(presign_cpu, 3),
                "resigned": self.resigned,
                "cpu_s": round(cpu, 3),
                "cpu_us_per_tx": round(cpu * 1e6 / max(1, self.stats.submitted), 1),
                "requests": requests,
                "txs_per_request": round(self.stats.submitted / max(1, requests), 1),
                "request_interval_ms": round(cfg.request_interval_s * 1000, 1),
            },
        )
        return out

    def _ahead(self) -> int:
        return max(1, round(self.cfg.rate * PRESIGN_AHEAD_S))

    async def _presign(self, upto: int) -> None:
        """Sign transactions ``len(self._signed) .. upto-1`` (yielding now and then)."""
        n_acc = len(self.accounts)
        for n in range(len(self._signed), upto):
            acct = self.accounts[n % n_acc]
            nonce = acct.first_nonce + n // n_acc
            self._signed.append(self.kind.sign(acct, nonce, self.cfg, self.chain_id))
            if n % 256 == 255:
                await trio.lowlevel.checkpoint()

    async def _timed(self, start_height: int) -> tuple[float, float]:
        """The sending phase and the drain; (sending seconds, client CPU seconds)."""
        cfg = self.cfg
        cpu0 = time.process_time()
        self.start = self.stats.start = trio.current_time()
        self.started_at_unix = time.time()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._follow, [lane.client for lane in self._lanes], start_height)
            if self.progress is not None:
                nursery.start_soon(self._report)
            if threading.current_thread() is threading.main_thread():
                nursery.start_soon(self._interrupts)
            if self.total > len(self._signed):
                nursery.start_soon(self._keep_signing)
            # Cancelling the tick loop (Ctrl-C) stops new sends; the ones queued finish.
            async with trio.open_nursery() as senders:
                for lane in self._lanes:
                    senders.start_soon(self._lane_loop, lane)
                with self._tick_scope:
                    await self._tick()
                for lane in self._lanes:
                    lane.wake.set()  # the lanes end once their queues are empty
                self.sending_done = True
            sent_at = trio.current_time()
            with self._drain_scope:
                self._drain_scope.deadline = trio.current_time() + cfg.drain
                while not self._drained():
                    await self._followed.wait()
            nursery.cancel_scope.cancel()
        return sent_at - self.start, time.process_time() - cpu0

    async def _keep_signing(self) -> None:
        """A long run signs ``PRESIGN_AHEAD_S`` ahead of the due transactions."""
        interval = 1.0 / self.cfg.rate
        while len(self._signed) < self.total:
            due = int((trio.current_time() - self.start) / interval)
            await self._presign(min(self.total, due + self._ahead()))
            await trio.sleep(1.0)

    @staticmethod
    async def _first_status(clients: list[NodeClient]) -> dict[str, Any]:
        """``/v1/status`` of the first node that answers (raises the last error if none)."""
        for i, client in enumerate(clients):
            try:
                return await client.status()
            except NodeUnavailable:
                if i == len(clients) - 1:
                    raise
        raise AssertionError("no node URL")

    async def _interrupts(self) -> None:
        """First Ctrl-C: stop sending and drain; second: stop draining. SIGTERM (``docker
        stop``, ``seqctl devnet down``): stop sending and draining at once. The summary is
        printed either way."""
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                self.interrupted = True
                if signum == signal.SIGTERM:
                    self._say("\nterminated: stopped sending, summary follows\n")
                    self._tick_scope.cancel()
                    self._drain_scope.cancel()
                    for lane in self._lanes:
                        lane.queue.clear()
                elif not self._tick_scope.cancel_called:
                    self._tick_scope.cancel()
                    self._say("\ninterrupted: stopped sending, draining (Ctrl-C again to stop)\n")
                else:
                    self._drain_scope.cancel()

    def _say(self, text: str) -> None:
        if self.progress is not None:
            self.progress.write(text)

    def _drained(self) -> bool:
        if self.stats.pending:
            return False
        if self.cfg.wait_l1:
            return self.stats.in_l1 == len(self.stats.certified)
        return True

    async def _tick(self) -> None:
        """Hand every due transaction to its node's lane (open loop: due times do not wait
        for answers); a lane over ``--max-in-flight`` skips what falls due."""
        interval = 1.0 / self.cfg.rate
        n_acc = len(self.accounts)
        n = 0
        while n < self.total:
            now = trio.current_time()
            due_until = min(self.total, int((now - self.start) / interval) + 1)
            for k in range(n, due_until):
                acct = k % n_acc
                lane = self._lanes[self.accounts[acct].node]
                if lane.in_flight + len(lane.queue) >= self.cfg.max_in_flight:
                    self.stats.skipped += 1
                    continue
                signed = self._signed[k] if k < len(self._signed) else None
                lane.push(_Due(acct, self.start + k * interval, signed))
            n = due_until
            if n < self.total:
                await trio.sleep_until(max(self.start + n * interval, now + TICK_MIN_S))

    async def _lane_loop(self, lane: _Lane) -> None:
        """Send the lane's queue in batches, one request at a time, until sending is done."""
        while True:
            if not lane.queue:
                if self.sending_done:
                    return
                await lane.wake.wait()
                lane.wake = trio.Event()
                continue
            # What falls due before the interval is over goes out with what waits now.
            await trio.sleep_until(lane.last_sent + self.cfg.request_interval_s)
            batch, lane.queue = lane.queue[:MAX_BATCH], lane.queue[MAX_BATCH:]
            lane.last_sent = trio.current_time()
            lane.requests += 1
            lane.in_flight = len(batch)
            try:
                await self._send_batch(lane.client, batch)
            finally:
                lane.in_flight = 0

    async def _send_batch(self, client: NodeClient, batch: list[_Due]) -> None:
        """Send ``batch`` (re-signing what a nonce change made stale) and count the answers."""
        items: list[tuple[_Due, Signed]] = []
        for due in batch:
            signed = await self._ready(client, due)
            if signed is not None:
                items.append((due, signed))
        if not items:
            return
        for due, signed in items:
            self.stats.sending(signed.tx_hash, due.at)
        codes: list[str | None]
        try:
            codes = await self.kind.send(client, [s for _, s in items])
        except NodeError as e:
            failed = e.code if isinstance(e, NodeRejected | NodeUnavailable) else "ERROR"
            codes = [failed or "ERROR"] * len(items)
        for (due, signed), code in zip(items, codes, strict=True):
            acct = self.accounts[due.acct]
            if code is None:
                self.stats.accepted_tx()
                continue
            if code == "DUPLICATE":
                self.stats.known(signed.tx_hash)  # this very transaction is in the pool
                continue
            self.stats.refused(signed.tx_hash, code)
            if code in _SHED_CODES and acct.nonce is not None:
                # Shed by a full ingress (or a node catching up) before it was decoded: the
                # node did not take it, so
                # its nonce is sent again, before new ones (re-reading it cost the loaded node
                # a request; a node that took later nonces of the batch keeps them).
                acct.holes.add(signed.nonce)
                continue
            # The node may or may not have taken it: re-read the nonce before the account's
            # next transaction.
            acct.nonce = None
            acct.holes.clear()
        for i in {due.acct for due, _ in items}:
            _rewind(self.accounts[i])

    async def _ready(self, client: NodeClient, due: _Due) -> Signed | None:
        """The transaction to send for ``due`` with its account's current nonce (None, and
        counted, when that nonce cannot be read)."""
        acct = self.accounts[due.acct]
        if acct.nonce is None:
            try:
                acct.nonce = await pending_nonce(client, self.kind.address(acct))
            except (NodeError, KeyError, ValueError, TypeError) as e:
                self.stats.submitted += 1  # a send attempt that failed before its POST
                code = e.code if isinstance(e, NodeUnavailable) else "NONCE_UNKNOWN"
                self.stats.rejected[code] += 1
                return None
        if acct.holes:
            nonce = min(acct.holes)
            acct.holes.discard(nonce)
        else:
            nonce = acct.nonce
            acct.nonce += 1
        signed = due.signed
        if signed is None or signed.nonce != nonce:
            signed = self.kind.sign(acct, nonce, self.cfg, self.chain_id)
            self.resigned += 1
        return signed

    async def _follow(self, clients: list[NodeClient], height: int) -> None:
        """Read new certified blocks and batches; after an error, follow the next node."""
        next_batches = 0.0
        which = 0
        while True:
            client = clients[which % len(clients)]
            try:
                st = await client.status()
                top = int(st["heads"]["certified"]["height"])
                while height < top:
                    block = await client.block(height + 1)
                    height += 1
                    txs = [*block["transactions"], *block.get("eth_transactions", ())]
                    hashes = [bytes.fromhex(t["hash"][2:]) for t in txs]
                    self.stats.block_seen(height, hashes, trio.current_time())
                if trio.current_time() >= next_batches:
                    next_batches = trio.current_time() + BATCH_POLL
                    for b in await client.batches():
                        if b.get("l1_block") is not None and b.get("last_height") is not None:
                            self.stats.l1_covers(int(b["last_height"]), trio.current_time())
            except (NodeError, KeyError, ValueError, TypeError):
                self.follow_errors += 1
                which += 1
            self._followed.set()
            self._followed = trio.Event()
            await trio.sleep(FOLLOW_POLL)

    def _line(self) -> str:
        s = self.stats
        lat = sorted(s.latencies)
        p50 = percentile(lat, 50)
        rej = sum(s.rejected.values())
        return (
            f"t={trio.current_time() - self.start:6.1f}s sent {s.submitted} ok {s.accepted} "
            f"rejected {rej} certified {len(s.certified)} in-L1 {s.in_l1} "
            f"in-flight {self.in_flight} p50 {'-' if p50 is None else f'{p50:.2f}s'}"
            + (" (draining)" if self.sending_done else "")
        )

    def _short_line(self) -> str:
        """:meth:`_line` for the progress bar (fits beside it on 100 columns)."""
        s = self.stats
        p50 = percentile(sorted(s.latencies), 50)
        return (
            f"sent {s.submitted} ok {s.accepted} rej {sum(s.rejected.values())} "
            f"cert {len(s.certified)} L1 {s.in_l1} p50 {'-' if p50 is None else f'{p50:.2f}s'}"
        )

    async def _report(self) -> None:
        """A progress bar over the sending time on a terminal; else a line every 5 s."""
        assert self.progress is not None
        if on_terminal(self.progress):
            await self._report_bar(self.progress)
        while True:
            await trio.sleep(5.0)
            self.progress.write(self._line() + "\n")
            self.progress.flush()

    async def _report_bar(self, stream: TextIO) -> None:
        columns = (
            TextColumn("{task.description:<8}"),
            BarColumn(bar_width=16),
            TimeElapsedColumn(),
            TextColumn("{task.fields[line]}"),
        )
        # refreshed from this task, not from rich's thread: the sender keeps the CPU
        with Progress(*columns, console=Console(file=stream), auto_refresh=False) as bar:
            task = bar.add_task("sending", total=self.cfg.duration, line="")
            while True:
                await trio.sleep(0.5)
                phase = "draining" if self.sending_done else "sending"
                elapsed = trio.current_time() - self.start
                bar.update(task, completed=min(elapsed, self.cfg.duration), description=phase,
                           line=self._short_line(), refresh=True)  # fmt: skip

    async def _check_balances(self, clients: list[NodeClient], accounts: list[LoadAccount]) -> None:
        empty: list[int] = []
        limiter = trio.CapacityLimiter(16)

        async def one(i: int, acct: LoadAccount) -> None:
            async with limiter:
                try:
                    info = await clients[acct.node].account(self.kind.address(acct))
                except NodeUnavailable:
                    return  # counted when its sends fail; another node may be up
            acct.nonce = int(info.get("pending_nonce", info["nonce"]))
            if int(info["balance"]) < self.cfg.amount + self.cfg.fee:
                empty.append(i)

        async with trio.open_nursery() as nursery:
            for i, acct in enumerate(accounts):
                nursery.start_soon(one, i, acct)
        if len(empty) == len(accounts):
            fail(
                f"none of the {len(accounts)} load accounts has an L2 balance: the devnet "
                f"genesis funds load accounts 0..{LOAD_ACCOUNTS - 1}; on another "
                f"network pass --fund-from KEYSTORE"
            )
        if empty and self.progress is not None:
            self.progress.write(
                f"warning: {len(empty)} of {len(accounts)} load accounts have no balance "
                f"(first: #{min(empty)}); their sends will be refused\n"
            )

    async def _fund(
        self, client: NodeClient, funder: SigningKey, keys: list[SigningKey], chain_id: int
    ) -> None:
        nonce = await pending_nonce(client, funder.address)
        sent: list[bytes] = []
        for k in keys:
            to = self.kind.address(LoadAccount(k, 0, k.address))  # the account that sends
            tx = make_transfer(funder, to, self.cfg.fund_amount, nonce, self.cfg.fee, chain_id)
            try:
                await client.send_tx(tx)
            except NodeRejected as e:
                fail(f"funding load account {to_hex(to)} was refused: {e}")
            sent.append(tx_hash(tx))
            nonce += 1
        if self.progress is not None:
            self.progress.write(f"funding {len(keys)} accounts; waiting until certified\n")
        with trio.move_on_after(max(30.0, self.cfg.drain)) as scope:
            for h in sent:
                await wait_certified(client, h, poll=FOLLOW_POLL)
        if scope.cancelled_caught:
            fail(
                "the funding transfers were not certified in time; is the network producing blocks?"
            )


def _rewind(acct: LoadAccount) -> None:
    """Shed nonces at the top of what the account sent make its next nonce the lowest of them
    (only those below a nonce the node took stay holes)."""
    while acct.nonce is not None and acct.nonce - 1 in acct.holes:
        acct.nonce -= 1
        acct.holes.discard(acct.nonce)


def _parse_duration(text: str) -> float:
    units = {"s": 1.0, "m": 60.0, "h": 3600.0}
    t = text.strip().lower()
    mult = 1.0
    if t and t[-1] in units:
        mult, t = units[t[-1]], t[:-1]
    try:
        value = float(t) * mult
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a duration like 30, 30s, 5m or 1h") from None
    if not 0 < value <= 7 * 86400:
        raise click.BadParameter(f"{text!r}: a duration between 0 and 7 days")
    return value


def _human(d: dict[str, Any]) -> str:
    lat, client = d["latency_s"], d["client"]

    def sec(x: float | None) -> str:
        return "-" if x is None else f"{x:.3f} s"

    kv = {
        "duration": f"{d['duration_s']} s (target {d['target_rate']} tx/s, achieved "
        f"{d['achieved_rate']} tx/s)",
        "submitted": d["submitted"],
        "accepted": d["accepted"],
        "certified": d["certified"],
        "in L1": d["in_l1"],
        "not certified": d["not_certified"],
        "rejected": d["rejected_total"],
        "already known": f"{d.get('already_known', 0)} (resent, the node had them: pending)",
        "skipped": f"{d['skipped_max_in_flight']} (max in flight reached)",
        "latency": f"p50 {sec(lat['p50'])}  p90 {sec(lat['p90'])}  p99 {sec(lat['p99'])}  "
        f"max {sec(lat['max'])}  ({lat['samples']} samples, submit -> certified)",
        "latency to L1": f"p50 {sec(d['l1_latency_s']['p50'])}  p99 {sec(d['l1_latency_s']['p99'])}"
        f"  ({d['l1_latency_s']['samples']} samples, submit -> batch on L1)",
        "client CPU": f"{client['cpu_s']} s, {client['cpu_us_per_tx']} us/tx "
        f"({client['presigned']} signed before sending in {client['presign_s']} s)",
        "requests": f"{client['requests']} ({client['txs_per_request']} transactions each; "
        + (
            f"at most one every {client['request_interval_ms']:g} ms per node)"
            if client["request_interval_ms"]
            else "one at a time per node)"
        ),
    }
    out = render_kv(kv)
    if d["rejected"]:
        out += "\n\n" + render_table(["rejected because", "count"], list(d["rejected"].items()))
    return out


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _sigterm_as_ctrl_c() -> Iterator[None]:
    """SIGTERM before the sending starts ends the command like Ctrl-C. As PID 1 in a container
    a process without a SIGTERM handler ignores the signal, and ``docker stop`` waits 10 s."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@click.command("load")
@click.option(
    "--node-url",
    "node_urls",
    multiple=True,
    envvar="SEQ_NODE_URL",
    show_envvar=True,
    help="Node RPC URL; repeat (or separate with commas) to spread accounts round robin. "
    "[default: http://127.0.0.1:8600]",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0.1, max=100_000),
    default=50.0,
    show_default=True,
    help="Transactions per second to submit.",
)
@click.option(
    "--duration",
    default="30s",
    show_default=True,
    help="How long to send: seconds, or with s/m/h (90s, 5m).",
)
@click.option(
    "--accounts",
    type=click.IntRange(1, MAX_ACCOUNTS),
    default=16,
    show_default=True,
    help=f"Sender accounts: the devnet's load accounts 0..N-1; the devnet funds the first "
    f"{LOAD_ACCOUNTS}.",
)
@click.option(
    "--max-in-flight",
    type=click.IntRange(1, 1_000_000),
    default=20_000,
    show_default=True,
    help="Most transactions due and unanswered per node (beyond it, due ones are skipped "
    "and counted).",
)
@click.option(
    "--request-interval-ms",
    type=click.FloatRange(0, 10_000),
    default=REQUEST_INTERVAL_MS,
    show_default=True,
    help="Least time between two requests to one node: transactions that fall due in "
    "between go out together in the next request (latency still counts from when each was "
    "due). 0: the next request as soon as the previous one is answered.",
)
@click.option(
    "--kind",
    type=click.Choice(sorted(KINDS)),
    default="transfer",
    show_default=True,
    help="What to send: native L2 transfers over POST /v1/txs, or Ethereum (EIP-1559) "
    "transfers over the Ethereum JSON-RPC (eth_sendRawTransaction). transfer = native.",
)
@click.option(
    "--amount",
    type=click.IntRange(0, U64_MAX),
    default=1,
    show_default=True,
    help="Amount of each transfer (smallest unit).",
)
@click.option(
    "--fee",
    type=click.IntRange(0, U64_MAX),
    help="Fee of each transfer (smallest unit; eth: priority fee per gas). Default: twice the "
    "node's estimate (/v1/fees, docs/fees.md), which is 1 under the flat fee model.",
)
@click.option(
    "--drain",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="Seconds to keep following after sending, until every accepted tx is certified.",
)
@click.option(
    "--wait-l1", is_flag=True, help="While draining, also wait until the txs are in L1 batches."
)
@click.option(
    "--chain-id",
    type=click.IntRange(0, U64_MAX),
    envvar="SEQ_CHAIN_ID",
    show_envvar=True,
    help="L2 chain id (default: the node's).",
)
@click.option(
    "--fund-from",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Keystore of a funded L2 account that first pays every load account --fund-amount.",
)
@click.option(
    "--fund-amount",
    type=click.IntRange(1, U64_MAX),
    default=10**12,
    show_default=True,
    help="What --fund-from pays each load account (smallest unit).",
)
@password_file_option
@click.option("--quiet", is_flag=True, help="No progress output.")
@json_option
def load(
    node_urls: tuple[str, ...],
    rate: float,
    duration: str,
    accounts: int,
    max_in_flight: int,
    request_interval_ms: float,
    kind: str,
    amount: int,
    fee: int | None,
    drain: float,
    wait_l1: bool,
    chain_id: int | None,
    fund_from: Path | None,
    fund_amount: int,
    password_file: Path | None,
    quiet: bool,
    as_json: bool,
) -> None:
    """Generate load: signed transfers at --rate for --duration from many accounts, then a
    summary: submitted, accepted, certified, in L1, rejected by reason, the latency
    percentiles p50/p90/p99 from submission to certification (and to L1), and the client's
    own CPU. Transactions are signed before the timed part and sent in batches
    (POST /v1/txs)."""
    urls = tuple(u.strip() for x in node_urls for u in x.split(",") if u.strip())
    if not urls:
        urls = ("http://127.0.0.1:8600",)
    try:
        seconds = _parse_duration(duration)
    except click.BadParameter as e:
        fail(f"--duration: {e.message}")
    funder = open_key(fund_from, password_file) if fund_from is not None else None
    if fee is None:  # twice the estimate: room for the base fee to rise during the run
        fee = run_async(partial(suggested_fee_of_any, urls, per_gas_tip=kind == "eth", margin=2))
    cfg = LoadConfig(
        urls, rate, seconds, accounts, max_in_flight, amount, fee, drain, wait_l1, chain_id,
        funder, fund_amount, kind, request_interval_ms / 1000,
    )  # fmt: skip
    progress = None if quiet else sys.stderr
    with _sigterm_as_ctrl_c():
        result = run_async(LoadRun(cfg, progress).run)
    emit(result, as_json, _human)
    if result["accepted"] == 0:
        click.echo("error: no transaction was accepted; see the rejection reasons", err=True)
        sys.exit(EXIT_FAILED)


__all__ = ["LoadStats", "load", "percentile"]
