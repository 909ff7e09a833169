"""The HTTP layer alone (``make_app`` over httpx's ASGI transport) against a stub node:
status codes and error bodies for each kind of request. Budget: < 1 s."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
import msgpack
import trio

from sequencer_node.clients.node import encode_tx_batch
from sequencer_node.core import api
from sequencer_node.shell.metrics import NodeMetrics
from sequencer_node.shell.node_service import Overloaded
from sequencer_node.shell.rpc import MAX_BATCH_BODY, MAX_BATCH_TXS, MAX_BODY, make_app
from sequencer_node.wire.codec import encode
from sequencer_node.wire.messages import Transaction, tx_hash
from tests.node_process.helpers import USERS, make_tx, tx_body


class StubViews:
    def tx(self, h: bytes) -> dict[str, Any]:
        return {"tx_hash": "0x" + h.hex(), "status": "unknown"}

    def block(self, height: int) -> dict[str, Any] | None:
        if height >= 2**63:
            raise OverflowError("Python int too large to convert to SQLite INTEGER")
        return {"height": height} if height == 1 else None

    def account(self, address: bytes) -> dict[str, Any]:
        return {"address": "0x" + address.hex(), "balance": "0", "nonce": 0}

    def status(self) -> dict[str, Any]:
        return {"role": "follower"}

    schedule = evidence = batches = fees = status


class StubNode:
    def __init__(self) -> None:
        self.metrics = NodeMetrics()
        self.views = StubViews()
        self.result: api.TxResult | BaseException = api.TxResult(b"\x07" * 32, True)
        self.batches: list[list[Transaction]] = []
        self.room = MAX_BATCH_TXS

    def ingress_room(self) -> int:
        return self.room

    async def submit_tx(self, tx: Any) -> api.TxResult:
        if isinstance(self.result, BaseException):
            raise self.result
        return self.result

    async def submit_txs(self, txs: Sequence[Transaction]) -> list[api.TxResult]:
        """Accepts even nonces, refuses odd ones (or raises ``result``)."""
        self.batches.append(list(txs))
        if isinstance(self.result, BaseException):
            raise self.result
        return [
            api.TxResult(tx_hash(t), True)
            if t.nonce % 2 == 0
            else api.TxResult(tx_hash(t), False, "nonce_too_high", f"nonce {t.nonce}")
            for t in txs
        ]


async def test_rpc_status_codes() -> None:
    node = StubNode()
    transport = httpx.ASGITransport(app=make_app(node))
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as http:
        body = tx_body(make_tx(USERS[0], USERS[1].address, 1, 0))
        r = await http.post("/v1/tx", json=body)
        assert (r.status_code, r.json()) == (
            200,
            {"tx_hash": "0x" + "07" * 32, "status": "pending"},
        )
        node.result = api.TxResult(b"\x07" * 32, False, "nonce_too_low", "expected 3")
        r = await http.post("/v1/tx", json=body)
        assert r.status_code == 422
        assert r.json()["error"] == {
            "code": "NONCE_TOO_LOW",
            "message": "nonce_too_low: expected 3",
        }
        node.result = Overloaded("full")
        assert (await http.post("/v1/tx", json=body)).status_code == 429
        node.result = trio.TooSlowError()
        assert (await http.post("/v1/tx", json=body)).status_code == 503
        for bad in ({"tx": "0xzz"}, {"nope": 1}, {"tx": "0x" + "00" * 10}):
            r = await http.post("/v1/tx", json=bad)
            assert r.status_code == 400, bad
            assert r.json()["error"]["code"] == "MALFORMED"
        r = await http.post("/v1/tx", content=b"x" * (MAX_BODY + 1))
        assert r.status_code == 413
        assert (await http.get("/v1/tx/0x12")).status_code == 400
        assert (await http.get("/v1/tx/0x" + "ab" * 32)).json()["status"] == "unknown"
        assert (await http.get("/v1/blocks/1")).status_code == 200
        assert (await http.get("/v1/blocks/2")).status_code == 404
        assert (await http.get("/v1/blocks/-1")).status_code == 400
        assert (await http.get("/v1/account/0x" + "11" * 20)).status_code == 200
        assert (await http.get("/v1/account/0x11")).status_code == 400
        assert (await http.get("/health")).json() == {"ok": True}
        r = await http.get("/metrics")
        assert r.headers["content-type"].startswith("text/plain")
        assert "seqnet_peers" in r.text
        for path in ("/v1/status", "/v1/schedule", "/v1/evidence", "/v1/batches"):
            assert (await http.get(path)).status_code == 200


async def test_every_malformed_request_is_a_json_400() -> None:
    """Issue 12, finding 4: deeply nested JSON (RecursionError), a 20-digit height (SQLite
    OverflowError) and non-ASCII digits (``str.isdigit``) were 500s or answered a block."""
    transport = httpx.ASGITransport(app=make_app(StubNode()))
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as http:
        bad_bodies = [
            b"[" * 30_000 + b"]" * 30_000,
            b'{"tx": ' + b"[" * 20 + b"]" * 20 + b"}",
            b'{"tx": 5}',
            b"[1, 2]",
            b'"0x00"',
            b"\xff\xfe",
            b"",
        ]
        for body in bad_bodies:
            r = await http.post("/v1/tx", content=body)
            assert r.status_code == 400, body[:40]
            assert r.json()["error"]["code"] == "MALFORMED"
        for height in ("18446744073709551616", "99999999999999999999", "9223372036854775808",
                       "\u00b2", "\u0663", "\u0661\u0662", "1.0", "+1", " 1", "0x1"):  # fmt: skip
            r = await http.get(f"/v1/blocks/{height}")
            assert r.status_code == 400, height
            assert r.json()["error"]["code"] == "MALFORMED"
        assert (await http.get("/v1/blocks/9223372036854775807")).status_code == 404
        r = await http.get("/v1/nothing-here")
        assert (r.status_code, r.json()["error"]["code"]) == (404, "NOT_FOUND")
        r = await http.delete("/v1/status")
        assert (r.status_code, r.json()["error"]["code"]) == (405, "METHOD_NOT_ALLOWED")
        r = await http.post("/v1/tx", content=b"x" * (MAX_BODY + 1))
        assert (r.status_code, r.json()["error"]["code"]) == (413, "TOO_LARGE")


async def test_batch_submission_answers_each_transaction_in_order() -> None:
    node = StubNode()
    txs = [make_tx(USERS[0], USERS[1].address, 1, n) for n in range(5)]
    transport = httpx.ASGITransport(app=make_app(node))
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as http:
        r = await http.post("/v1/txs", content=encode_tx_batch(txs))
        assert r.status_code == 200
        doc = r.json()
        assert doc["accepted"] == 3
        assert [x["tx_hash"] for x in doc["results"]] == ["0x" + tx_hash(t).hex() for t in txs]
        assert [x["accepted"] for x in doc["results"]] == [True, False, True, False, True]
        assert doc["results"][1] == {"tx_hash": "0x" + tx_hash(txs[1]).hex(), "accepted": False,
                                     "code": "NONCE_TOO_HIGH", "message": "nonce 1"}  # fmt: skip
        assert node.batches == [txs]  # decoded once, handed to the node in order
        node.result = Overloaded("full")
        r = await http.post("/v1/txs", content=encode_tx_batch(txs))
        assert (r.status_code, r.json()["error"]["code"]) == (429, "OVERLOADED")
        node.result = trio.TooSlowError()
        assert (await http.post("/v1/txs", content=encode_tx_batch(txs))).status_code == 503
        assert (await http.get("/v1/txs")).status_code == 405


async def test_a_full_ingress_sheds_with_429_before_decoding() -> None:
    # Issue 13 (overload collapse): past its ingress bound the node answers 429 with
    # Retry-After and decodes nothing; a batch larger than its room is decoded up to the room
    # and the rest comes back OVERLOADED undecoded (an item there that is no transaction at
    # all is not even looked at).
    node = StubNode()
    txs = [make_tx(USERS[0], USERS[1].address, 1, n) for n in range(4)]
    transport = httpx.ASGITransport(app=make_app(node))
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as http:
        node.room = 0
        r = await http.post("/v1/txs", content=encode_tx_batch(txs))
        assert (r.status_code, r.json()["error"]["code"]) == (429, "OVERLOADED")
        assert r.headers["retry-after"] == "1"
        r = await http.post("/v1/tx", json=tx_body(txs[0]))
        assert (r.status_code, r.headers["retry-after"]) == (429, "1")
        assert node.batches == []
        node.room = 2
        body = msgpack.packb([encode(t) for t in txs[:3]] + [b"not a transaction"])
        r = await http.post("/v1/txs", content=body)
        assert r.status_code == 200
        doc = r.json()
        assert node.batches == [txs[:2]]
        assert [x.get("code") for x in doc["results"]] == [None, "NONCE_TOO_HIGH"] + [
            "OVERLOADED"
        ] * 2
        assert doc["results"][2]["tx_hash"] == "0x" + tx_hash(txs[2]).hex()
    text = node.metrics.render().decode()
    assert 'seqnet_rpc_transactions_total{outcome="overloaded"} 7.0' in text


class CatchingUpNode(StubNode):
    """A node far behind the network: no room, and it says why."""

    def __init__(self) -> None:
        super().__init__()
        self.room = 0

    def ingress_closed(self) -> str | None:
        return "this node is catching up (40 certified blocks behind the network)"


async def test_a_node_catching_up_sends_clients_elsewhere_with_503() -> None:
    # A node far behind the network takes no transaction (docs/protocol.md section 7): it
    # answers 503 CATCHING_UP (use another node), not 429 (retry here), before decoding.
    node = CatchingUpNode()
    txs = [make_tx(USERS[0], USERS[1].address, 1, n) for n in range(2)]
    transport = httpx.ASGITransport(app=make_app(node))
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as http:
        for r in (
            await http.post("/v1/txs", content=encode_tx_batch(txs)),
            await http.post("/v1/tx", json=tx_body(txs[0])),
        ):
            assert r.status_code == 503
            assert r.json()["error"]["code"] == "CATCHING_UP"
            assert "40 certified blocks behind" in r.json()["error"]["message"]
            assert r.headers["retry-after"] == "1"
    assert node.batches == []
    text = node.metrics.render().decode()
    assert 'seqnet_rpc_transactions_total{outcome="catching_up"} 3.0' in text  # 2 + 1
    assert 'outcome="overloaded"' not in text


async def test_malformed_batches_are_json_400s_and_nothing_is_submitted() -> None:
    node = StubNode()
    good = encode(make_tx(USERS[0], USERS[1].address, 1, 0))
    bad_bodies = [
        b"",
        b"\xc1",  # never used in msgpack
        msgpack.packb([]),  # empty
        msgpack.packb(good),  # not an array
        msgpack.packb([good, "0x00"]),  # a str item
        msgpack.packb([good, 5]),
        msgpack.packb([good, good[:-1]]),  # truncated transaction
        msgpack.packb([good, good + b"\x00"]),  # trailing byte
        msgpack.packb([good]) + b"\x00",  # trailing byte after the array
        msgpack.packb([good] * (MAX_BATCH_TXS + 1)),  # too many
        msgpack.packb([[good]]),  # nested
        msgpack.packb({"tx": good}),
        b'{"txs": []}',
    ]
    transport = httpx.ASGITransport(app=make_app(node))
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as http:
        for body in bad_bodies:
            r = await http.post("/v1/txs", content=body)
            assert r.status_code == 400, body[:40]
            assert r.json()["error"]["code"] == "MALFORMED"
        r = await http.post("/v1/txs", content=b"\x00" * (MAX_BATCH_BODY + 1))
        assert (r.status_code, r.json()["error"]["code"]) == (413, "TOO_LARGE")
        r = await http.post("/v1/txs", content=msgpack.packb([good, 5]))
        assert "item 1" in r.json()["error"]["message"]
    assert node.batches == []
