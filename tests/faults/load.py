"""Steady load with a client-side history, for a Jepsen-style set check.

Each funded devnet load account sends transfers with consecutive nonces, one in flight at a
time. An answer 200 from ``POST /v1/tx`` is an *acknowledgement*: the transaction must end in
the certified chain exactly once. Without an answer (node down, paused, timeout, overload) the
outcome is unknown, so the *same* signed bytes are sent again to the next node, never a new
transaction with that nonce: a replacement could push an acknowledged transaction out and
the check would blame the network for the client. A refusal of such a re-send (already
pooled, nonce already used) leaves the transaction "maybe": it may be in the chain, and is
never counted as lost.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx
import trio

from sequencer_node.cli.tx import make_transfer
from sequencer_node.devnet.accounts import load_account_key
from sequencer_node.wire.codec import encode
from sequencer_node.wire.crypto import SigningKey
from sequencer_node.wire.messages import Transaction, tx_hash

#: Refusals that say nothing about the transaction itself: send the same bytes again.
RETRY = frozenset({"POOL_FULL", "SENDER_LIMIT", "OVERLOADED", "TIMEOUT"})
#: Refusals of a re-send that mean an earlier, unanswered send may have got through.
MAYBE = frozenset({"DUPLICATE", "NONCE_TOO_LOW", "REPLACEMENT_UNDERPRICED"})


@dataclass
class Ack:
    account: int
    nonce: int
    node: int
    at: float  # unix time of the answer


@dataclass
class _Account:
    index: int
    key: SigningKey
    nonce: int = 0
    node: int = 0
    pending: Transaction | None = None
    tries: int = 0
    stuck: str | None = None
    busy: bool = False


@dataclass
class History:
    acked: dict[bytes, Ack] = field(default_factory=dict)
    maybe: set[bytes] = field(default_factory=set)
    refused: Counter[str] = field(default_factory=Counter)
    unanswered: int = 0
    stuck: dict[int, str] = field(default_factory=dict)


class Load:
    """``nursery.start_soon(load.run)``; ``load.stop()`` ends it; ``load.history`` is the log."""

    def __init__(
        self,
        rpc_urls: list[str],
        chain_id: int,
        *,
        rate: float,
        accounts: int,
        seed: int,
        first_account: int = 0,
    ) -> None:
        self.urls = rpc_urls
        self.chain_id = chain_id
        self.rate = rate
        self.history = History()
        self._rng = random.Random(f"{seed}:load")
        self._accounts = [
            _Account(i, load_account_key(first_account + i), node=i % len(rpc_urls))
            for i in range(accounts)
        ]
        self._sink = load_account_key(first_account + accounts).address
        self._stop = trio.Event()
        self._http = httpx.AsyncClient(timeout=2.0)

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._ticker, nursery)
                await self._stop.wait()
                nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                await self._http.aclose()

    async def _ticker(self, nursery: trio.Nursery) -> None:
        n = 0
        while True:
            free = [a for a in self._accounts if not a.busy and a.stuck is None]
            if free:
                acct = free[n % len(free)]
                acct.busy = True
                nursery.start_soon(self._send, acct)
            n += 1
            await trio.sleep(1 / self.rate)

    async def _send(self, acct: _Account) -> None:
        try:
            await self._send_one(acct)
        finally:
            acct.busy = False

    async def _send_one(self, acct: _Account) -> None:
        if acct.pending is None:
            acct.pending = make_transfer(acct.key, self._sink, 1, acct.nonce, 1, self.chain_id)
            acct.tries = 0
        tx = acct.pending
        node = acct.node
        acct.tries += 1
        try:
            r = await self._http.post(
                self.urls[node] + "/v1/tx", json={"tx": "0x" + encode(tx).hex()}
            )
        except httpx.HTTPError:
            r = None
        if r is None or r.status_code in (429, 500, 502, 503):
            # no answer: the same bytes go to the next node
            self.history.unanswered += 1
            acct.node = (node + 1) % len(self.urls)
            return
        h = tx_hash(tx)
        code = "" if r.status_code == 200 else _code(r)
        if code in RETRY:
            self.history.refused[code] += 1
            acct.node = (node + 1) % len(self.urls)
            return
        if r.status_code == 200:
            self.history.acked[h] = Ack(acct.index, tx.nonce, node, time.time())
            self._advance(acct)
            return
        self.history.refused[code] += 1
        if acct.tries > 1 and code in MAYBE:
            self.history.maybe.add(h)  # an earlier unanswered send got through
            self._advance(acct)
        elif acct.tries > 1 or code.startswith("NONCE"):
            # e.g. the node that took an unanswered send died before gossiping it: later
            # nonces cannot be used any more by this account
            acct.stuck = f"{code} at nonce {tx.nonce}"
            self.history.stuck[acct.index] = acct.stuck
        else:
            acct.pending = None  # refused outright (fee, balance): a new transaction

    def _advance(self, acct: _Account) -> None:
        acct.nonce += 1
        acct.pending = None
        acct.node = self._rng.randrange(len(self.urls))


def _code(r: httpx.Response) -> str:
    try:
        return str(r.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return f"HTTP_{r.status_code}"
