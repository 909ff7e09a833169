"""A small fake of a sequencer node's RPC (docs/node-api.md contract) for the CLI tests.

It keeps accounts, checks signatures and nonces like the mempool, and a "block" task
certifies every pending transaction each ``block_time`` seconds; the block after, they are
"batched" into an L1 block. Enough for ``seqctl`` to be tested without the real node.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgpack
import trio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sequencer_node.wire.codec import CodecError, decode
from sequencer_node.wire.crypto import address_of, verify_message
from sequencer_node.wire.messages import Transaction, tx_hash

CHAIN_ID = 901


@dataclass
class FakeTx:
    tx: Transaction
    status: str = "pending"
    height: int | None = None
    batch: int | None = None
    l1_block: int | None = None


@dataclass
class FakeNode:
    balances: dict[bytes, int] = field(default_factory=dict)
    nonces: dict[bytes, int] = field(default_factory=dict)
    txs: dict[bytes, FakeTx] = field(default_factory=dict)
    height: int = 10
    batch: int = 0
    block_time: float = 0.02
    #: Every n-th submission is refused with 429 (0: never).
    overload_every: int = 0
    submissions: int = 0
    #: Called (in the server's thread) with the submission count on every POST /v1/tx.
    on_submission: Callable[[int], None] | None = None
    status_extra: dict[str, Any] = field(default_factory=dict)
    evidence: list[dict[str, Any]] = field(default_factory=list)
    batches: list[dict[str, Any]] = field(default_factory=list)
    #: height -> hashes of the transactions certified in that block
    blocks: dict[int, list[bytes]] = field(default_factory=dict)
    #: transactions in each POST /v1/txs, in order
    batch_sizes: list[int] = field(default_factory=list)
    #: every tick also posts a batch of the previous block (with an L1 block)
    auto_batch: bool = False
    #: the /v1/fees document (None: the route answers 404, as an older node)
    fees: dict[str, Any] | None = None

    def _pending_from(self, sender: bytes) -> int:
        return sum(1 for t in self.txs.values() if t.status == "pending" and t.tx.sender == sender)

    async def post_tx(self, request: Request) -> JSONResponse:
        self.submissions += 1
        if self.on_submission is not None:
            self.on_submission(self.submissions)
        if self.overload_every and self.submissions % self.overload_every == 0:
            return _error(429, "OVERLOADED", "mempool full, retry later")
        body = await request.json()
        try:
            tx = decode(bytes.fromhex(body["tx"].removeprefix("0x")), Transaction)
        except (KeyError, ValueError, CodecError) as e:
            return _error(400, "MALFORMED", f"not an encoded Transaction: {e}")
        status, code, message = self._admit(tx)
        if status != 200:
            return _error(status, code, message)
        return JSONResponse({"tx_hash": "0x" + tx_hash(tx).hex(), "status": "pending"})

    async def post_txs(self, request: Request) -> JSONResponse:
        """``POST /v1/txs``: one submission however many transactions it carries."""
        self.submissions += 1
        self.batch_sizes.append(0)
        if self.on_submission is not None:
            self.on_submission(self.submissions)
        if self.overload_every and self.submissions % self.overload_every == 0:
            return _error(429, "OVERLOADED", "mempool full, retry later")
        try:
            txs = [decode(b, Transaction) for b in msgpack.unpackb(await request.body())]
        except (TypeError, ValueError, CodecError) as e:
            return _error(400, "MALFORMED", f"not a list of encoded Transactions: {e}")
        self.batch_sizes[-1] = len(txs)
        results: list[dict[str, Any]] = []
        for tx in txs:
            status, code, message = self._admit(tx)
            item: dict[str, Any] = {"tx_hash": "0x" + tx_hash(tx).hex(), "accepted": status == 200}
            if status != 200:
                item.update(code=code, message=message)
            results.append(item)
        return JSONResponse({"accepted": sum(r["accepted"] for r in results), "results": results})

    def _admit(self, tx: Transaction) -> tuple[int, str, str]:
        """The mempool's checks: (200, "", "") or (status, code, message)."""
        if not verify_message(tx, tx.sender, CHAIN_ID):
            return 422, "BAD_SIGNATURE", "signature does not verify on chain 901"
        sender = address_of(tx.sender)
        expected = self.nonces.get(sender, 0) + self._pending_from(tx.sender)
        if tx.nonce < expected:
            return 422, "NONCE_TOO_LOW", f"nonce {tx.nonce} < next nonce {expected}"
        if tx.nonce > expected:
            return 422, "NONCE_GAP", f"nonce {tx.nonce} > next nonce {expected}"
        if tx.amount + tx.fee > self.balances.get(sender, 0):
            return 422, "INSUFFICIENT_BALANCE", "amount + fee exceeds the balance"
        self.txs[tx_hash(tx)] = FakeTx(tx)
        return 200, "", ""

    async def get_tx(self, request: Request) -> JSONResponse:
        h = bytes.fromhex(request.path_params["h"].removeprefix("0x"))
        t = self.txs.get(h)
        if t is None:
            return JSONResponse(
                {
                    "tx_hash": "0x" + h.hex(),
                    "status": "unknown",
                    "height": None,
                    "batch": None,
                    "l1_block": None,
                }
            )
        return JSONResponse(
            {
                "tx_hash": "0x" + h.hex(),
                "status": t.status,
                "height": t.height,
                "batch": t.batch,
                "l1_block": t.l1_block,
            }
        )

    async def get_block(self, request: Request) -> JSONResponse:
        height = int(request.path_params["height"])
        if height not in self.blocks:
            return _error(404, "NOT_FOUND", f"no block {height}")
        txs = [
            {
                "hash": "0x" + h.hex(),
                "from": "0x" + address_of(self.txs[h].tx.sender).hex(),
                "to": "0x" + self.txs[h].tx.to.hex(),
                "amount": str(self.txs[h].tx.amount),
                "nonce": self.txs[h].tx.nonce,
                "fee": str(self.txs[h].tx.fee),
            }
            for h in self.blocks[height]
        ]
        return JSONResponse({"height": height, "tx_count": len(txs), "transactions": txs})

    async def get_account(self, request: Request) -> JSONResponse:
        a = bytes.fromhex(request.path_params["a"].removeprefix("0x"))
        return JSONResponse(
            {
                "address": "0x" + a.hex(),
                "balance": str(self.balances.get(a, 0)),
                "nonce": self.nonces.get(a, 0),
                "pending_nonce": self.nonces.get(a, 0)
                + sum(
                    1
                    for t in self.txs.values()
                    if t.status == "pending" and address_of(t.tx.sender) == a
                ),
            }
        )

    async def get_status(self, request: Request) -> JSONResponse:
        head = {"height": self.height, "hash": "0x" + bytes(32).hex()}
        data: dict[str, Any] = {
            "chain_id": CHAIN_ID,
            "node_id": "0x" + "11" * 32,
            "role": "leader",
            "epoch": 3,
            "round": 42,
            "leader": "0x" + "11" * 32,
            "peers": 2,
            "peer_list": [
                {"id": "0x" + "22" * 32, "address": "127.0.0.1:9001", "score": 10},
                {"id": "0x" + "33" * 32, "address": "127.0.0.1:9002", "score": -3},
            ],
            "mempool_size": sum(1 for t in self.txs.values() if t.status == "pending"),
            "heads": {
                "unsafe": {**head, "height": self.height + 1},
                "certified": head,
                "safe": {**head, "height": max(0, self.height - 5)},
                "finalized": {**head, "height": max(0, self.height - 9)},
            },
            "state_root": "0x" + "ab" * 32,
            "l1": {"head": 120, "finalized": 56},
            "last_batch": {
                "number": self.batch,
                "first_height": 1,
                "last_height": self.height,
                "l1_block": 118,
            },
            "da": "blobs",
        }
        data.update(self.status_extra)
        return JSONResponse(data)

    async def get_schedule(self, request: Request) -> JSONResponse:
        cur = ["0x" + "11" * 32, "0x" + "22" * 32, "0x" + "33" * 32]
        stakes = {cur[0]: "50", cur[1]: "30", cur[2]: "20"}
        return JSONResponse(
            {
                "epoch": 3,
                "current": {"epoch": 3, "stake_epoch": 0, "leaders": cur, "stakes": stakes},
                "next": {"epoch": 4, "leaders": [*cur[1:], cur[0], cur[0]]},
            }
        )

    async def get_evidence(self, request: Request) -> JSONResponse:
        return JSONResponse({"evidence": self.evidence})

    async def get_batches(self, request: Request) -> JSONResponse:
        return JSONResponse({"batches": self.batches})

    async def get_fees(self, request: Request) -> JSONResponse:
        if self.fees is None:
            return JSONResponse({"error": {"code": "NOT_FOUND", "message": "no"}}, 404)
        return JSONResponse(self.fees)

    async def health(self, request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/tx", self.post_tx, methods=["POST"]),
                Route("/v1/txs", self.post_txs, methods=["POST"]),
                Route("/v1/tx/{h}", self.get_tx),
                Route("/v1/account/{a}", self.get_account),
                Route("/v1/blocks/{height:int}", self.get_block),
                Route("/v1/status", self.get_status),
                Route("/v1/schedule", self.get_schedule),
                Route("/v1/evidence", self.get_evidence),
                Route("/v1/batches", self.get_batches),
                Route("/v1/fees", self.get_fees),
                Route("/health", self.health),
            ]
        )

    def tick(self) -> None:
        """One block: certified -> batched, pending -> certified (nonces advance)."""
        self.height += 1
        for t in self.txs.values():
            if t.status == "certified":
                t.status, t.batch, t.l1_block = "batched", self.batch, 100 + self.batch
        if self.auto_batch:
            self.batches.append(
                {
                    "number": self.batch,
                    "first_height": self.height - 1,
                    "last_height": self.height - 1,
                    "l1_block": 100 + self.batch,
                    "txs": 0,
                }
            )
        self.batch += 1
        self.blocks[self.height] = []
        for h, t in self.txs.items():
            if t.status == "pending":
                self.blocks[self.height].append(h)
                sender = address_of(t.tx.sender)
                self.nonces[sender] = self.nonces.get(sender, 0) + 1
                self.balances[sender] -= t.tx.amount + t.tx.fee
                self.balances[t.tx.to] = self.balances.get(t.tx.to, 0) + t.tx.amount
                t.status, t.height = "certified", self.height

    async def serve(self, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        from hypercorn.config import Config
        from hypercorn.trio import serve

        config = Config()
        config.bind = ["127.0.0.1:0"]
        config.accesslog = None
        config.errorlog = logging.getLogger("fake-node")
        config.graceful_timeout = 0.5
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(serve, self.app(), config)

            async def blocks() -> None:
                while True:
                    await trio.sleep(self.block_time)
                    self.tick()

            nursery.start_soon(blocks)
            task_status.started(binds[0])


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)
