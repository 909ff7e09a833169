"""The DA mock over HTTP on loopback: submit, headers, blobs with proofs a reader checks,
retention, restart, bad input."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from l1_mock.da.chain import DAGenesis, PayForBlob
from l1_mock.da.server import DANode, DASettings, serve
from sequencer_node.wire.da import reader
from tests.da.helpers import USERS, genesis, ns, pfb


def pfb_json(p: PayForBlob) -> dict[str, Any]:
    return {
        "signer": "0x" + p.signer.hex(),
        "nonce": p.nonce,
        "namespace": "0x" + p.namespace.hex(),
        "data": "0x" + p.data.hex(),
        "maxFeePerGas": str(p.max_fee_per_gas),
        "signature": "0x" + p.signature.hex(),
    }


@dataclasses.dataclass
class Da:
    node: DANode
    http: httpx.AsyncClient

    async def produce(self, n: int = 1) -> int:
        r = await self.http.post(f"/v1/dev/produce?count={n}")
        assert r.status_code == 200, r.text
        return int(r.json()["head"])

    async def submit(self, p: PayForBlob) -> httpx.Response:
        return await self.http.post("/v1/blobs", json=pfb_json(p))

    async def answer(self, height: int, namespace: bytes) -> Any:
        r = await self.http.get(f"/v1/blobs/{height}/0x{namespace.hex()}")
        assert r.status_code == 200, r.text
        return r.json()

    async def read_namespace(self, height: int, namespace: bytes, body: Any = None) -> list[bytes]:
        """What a reader does: take the data root from the header, check the answer."""
        header = (await self.http.get(f"/v1/headers/{height}")).json()
        body = await self.answer(height, namespace) if body is None else body
        root = bytes.fromhex(header["dataRoot"][2:])
        return reader.verified_blobs(
            root, header["shareCount"], namespace, reader.answer_from_json(body)
        )


async def _serve(
    tmp: Path, g: DAGenesis, retention: int = 100, auto: bool = False, **settings: Any
) -> AsyncIterator[Da]:
    node = DANode.open(
        g, DASettings(tmp, retention, auto_produce=auto, dev_endpoints=True, **settings)
    )
    async with trio.open_nursery() as nursery:
        url = await nursery.start(serve, node, "127.0.0.1", 0)
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            yield Da(node, http)
        nursery.cancel_scope.cancel()
    node.store.close()


@pytest.fixture
async def da(tmp_path: Path) -> AsyncIterator[Da]:
    async for d in _serve(tmp_path / "da", genesis(), retention=3):
        yield d


async def test_submit_produce_and_read_back_with_proofs(da: Da) -> None:
    a = pfb(USERS[0], 0, ns(1), b"batch one" * 100)
    b = pfb(USERS[1], 0, ns(2), b"\x00" * 5_000)
    c = pfb(USERS[0], 1, ns(1), b"batch two")
    for p in (a, b, c):
        r = await da.submit(p)
        assert r.status_code == 200, r.text
    assert r.json()["shares"] == 1
    assert (await da.produce()) == 1
    assert await da.read_namespace(1, ns(1)) == [a.data, c.data]
    assert await da.read_namespace(1, ns(2)) == [b.data]
    assert await da.read_namespace(1, ns(3)) == []  # absent, with a proof of absence
    assert await da.read_namespace(1, ns(0)) == []  # below every namespace
    meta = (await da.http.get("/v1/blocks/1/blobs")).json()["blobs"]
    assert [m["namespace"] for m in meta] == ["0x" + x.namespace.hex() for x in (a, b, c)]
    head = (await da.http.get("/v1/headers/head")).json()
    assert head["height"] == 1
    assert head["blobCount"] == 3
    acct = (await da.http.get("/v1/accounts/0x" + USERS[0].address.hex())).json()
    assert acct["nonce"] == 2
    assert int(acct["balance"]) < 10**24


async def test_a_lying_da_node_is_caught_by_the_reader(da: Da) -> None:
    """Withholding a blob, adding one, or denying the namespace: the proof does not verify."""
    for i, data in enumerate([b"one" * 200, b"two" * 300, b"three"]):
        assert (await da.submit(pfb(USERS[0], i, ns(2), data))).status_code == 200
    assert (await da.submit(pfb(USERS[1], 0, ns(3), b"neighbour"))).status_code == 200
    await da.produce()
    honest = await da.answer(1, ns(2))
    assert len(await da.read_namespace(1, ns(2), honest)) == 3
    withheld = {**honest, "blobs": honest["blobs"][:-1]}
    denied = {**honest, "blobs": [], "proof": {"start": 0, "end": 0, "nodes": [], "leaf": None}}
    neighbour = (await da.answer(1, ns(3)))["blobs"]
    added = {**honest, "blobs": honest["blobs"] + neighbour}
    changed = {**honest, "blobs": [{**honest["blobs"][0], "data": "0x" + b"ONE".hex() * 200}]}
    for lie in (withheld, denied, added, changed):
        with pytest.raises(reader.NotVerified):
            await da.read_namespace(1, ns(2), lie)
    with pytest.raises(reader.NotVerified, match="malformed"):
        await da.read_namespace(1, ns(2), {"blobs": []})


async def test_blob_data_is_gone_after_retention_but_headers_stay(da: Da) -> None:
    assert (await da.submit(pfb(USERS[0], 0, ns(1), b"short-lived"))).status_code == 200
    await da.produce()
    assert await da.read_namespace(1, ns(1)) == [b"short-lived"]
    await da.produce(2)  # head 3, retention 3: heights 1..3 served
    assert await da.read_namespace(1, ns(1)) == [b"short-lived"]
    await da.produce()
    r = await da.http.get(f"/v1/blobs/1/0x{ns(1).hex()}")
    assert r.status_code == 404
    assert "pruned" in r.json()["message"]
    assert (await da.http.get("/v1/headers/1")).status_code == 200
    assert (await da.http.get("/v1/blocks/1/blobs")).json()["blobs"][0]["start"] == 0


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "words"),
    [
        ("GET", "/v1/headers/\uff11", None, 400, "ASCII digits"),
        ("GET", "/v1/headers/-1", None, 400, "ASCII digits"),
        ("GET", "/v1/headers/1e3", None, 400, "ASCII digits"),
        ("GET", "/v1/headers/" + "9" * 20, None, 400, "ASCII digits"),
        ("GET", "/v1/headers/99", None, 404, "does not exist yet"),
        ("GET", "/v1/blobs/0/0x00", None, 400, "29 bytes"),
        ("GET", "/v1/blobs/0/0xzz", None, 400, "hex digits"),
        ("GET", "/v1/blobs/0/" + "00" * 29, None, 400, "hex digits"),
        ("GET", "/v1/accounts/0x1234", None, 400, "20 bytes"),
        ("POST", "/v1/blobs", b"{not json", 400, "valid JSON"),
        ("POST", "/v1/blobs", b"[]", 400, "exactly"),
        ("POST", "/v1/blobs", b'{"signer": "0x"}', 400, "exactly"),
        ("POST", "/v1/dev/produce?count=0", None, 400, "count"),
        ("POST", "/v1/dev/produce?count=\uff11", None, 400, "decimal"),
        ("GET", "/v1/nothing", None, 404, "no such endpoint"),
        ("DELETE", "/v1/blobs", None, 405, "not allowed"),
    ],
)
async def test_bad_requests_get_json_errors(
    da: Da, method: str, path: str, body: bytes | None, status: int, words: str
) -> None:
    r = await da.http.request(method, path, content=body)
    assert r.status_code == status, r.text
    assert r.json()["code"] == status
    assert words in r.json()["message"]


@pytest.mark.parametrize(
    ("change", "status", "words"),
    [
        ({"nonce": -1}, 400, "2**64"),
        ({"nonce": True}, 400, "non-negative"),
        ({"nonce": "\u0661"}, 400, "decimal"),  # an Arabic-Indic digit
        ({"maxFeePerGas": str(2**128)}, 400, "2**128"),
        ({"data": "0x"}, 422, "1 to"),
        ({"data": "0x0"}, 400, "even number"),
        ({"data": "0x 00"}, 400, "hex digits"),
        ({"namespace": "0x" + "00" * 29}, 422, "reserved"),
        ({"signature": "0x" + "00" * 64}, 422, "bad signature"),
        (pfb_json(pfb(USERS[0], 5, ns(1), b"x")), 422, "not the next"),
        (pfb_json(pfb(USERS[0], 0, ns(1), b"x", max_fee=1)), 422, "below the base fee"),
        (pfb_json(pfb(USERS[0], 0, ns(1), b"x", max_fee=10**30)), 422, "cannot cover"),
    ],
)
async def test_bad_submissions(da: Da, change: dict[str, Any], status: int, words: str) -> None:
    body = {**pfb_json(pfb(USERS[0], 0, ns(1), b"x")), **change}
    r = await da.http.post("/v1/blobs", json=body)
    assert r.status_code == status, r.text
    assert words in r.json()["message"]


async def test_oversized_body_is_refused(da: Da) -> None:
    big = {**pfb_json(pfb(USERS[0], 0, ns(1), b"x")), "data": "0x" + "ab" * (1024 * 1024 + 1)}
    r = await da.http.post("/v1/blobs", json=big)
    assert r.status_code in (400, 413), r.text
    r = await da.http.post("/v1/blobs", content=b"x" * (3 * 1024 * 1024))
    assert r.status_code == 413


async def test_restart_keeps_chain_pool_and_blobs(tmp_path: Path) -> None:
    g = genesis()
    async for d in _serve(tmp_path / "da", g):
        assert (await d.submit(pfb(USERS[0], 0, ns(1), b"kept"))).status_code == 200
        await d.produce()
        assert (await d.submit(pfb(USERS[0], 1, ns(1), b"pooled"))).status_code == 200
        before = (await d.http.get("/v1/headers/1")).json()
    async for d in _serve(tmp_path / "da", g):
        assert (await d.http.get("/v1/headers/1")).json() == before
        assert await d.read_namespace(1, ns(1)) == [b"kept"]
        assert (await d.http.get("/v1/status")).json()["pool"] == 1
        await d.produce()
        assert await d.read_namespace(2, ns(1)) == [b"pooled"]


async def test_blocks_come_on_the_slot_clock(tmp_path: Path) -> None:
    async for d in _serve(tmp_path / "da", genesis(slot_time=1), auto=True):
        with trio.fail_after(10):
            while d.node.chain.head.height < 2:
                await d.node.new_block.wait()
        h = (await d.http.get("/v1/headers/2")).json()
        assert h["time"] == d.node.chain.config.genesis_time + 2
        fees = (await d.http.get("/v1/fees")).json()
        assert fees["gasPerBlobByte"] == 8
