"""Issue 12, findings 4-7 on the L1: malformed requests get 400 with a JSON error (never a 500),
negative and out-of-range numbers get JSON-RPC -32602, cheap checks run before KZG, and
``dev_mine`` answers loopback callers only unless the operator allows more."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from l1_mock.chain import CallRejected
from l1_mock.server import L1Service, L1Settings, make_app
from sequencer_node.wire.kzg import BlobCheck
from sequencer_node.wire.l1calls import make_call
from tests.l1.helpers import L1_CHAIN, OWNERS, USER, batch_header, batch_params, genesis

LOCAL = ("127.0.0.1", 40000)
REMOTE = ("203.0.113.7", 40000)


def _service(tmp_path: Path, **settings: Any) -> L1Service:
    g = genesis()
    g = dataclasses.replace(g, config=dataclasses.replace(g.config, genesis_time=1_700_000_000))
    return L1Service.open(g, L1Settings(tmp_path / "l1", 2, False, kzg_workers=0, **settings))


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[L1Service]:
    s = _service(tmp_path)
    await s.mine(3)
    yield s
    s.store.close()


def _client(service: L1Service, client: tuple[str, int] = LOCAL) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=make_app(service), client=client)
    return httpx.AsyncClient(transport=transport, base_url="http://l1")


async def _rpc(http: httpx.AsyncClient, method: str, *params: Any) -> httpx.Response:
    return await http.post(
        "/", json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    )


# --- finding 4: malformed requests are 400 with a JSON error --------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,  # RecursionError in json.loads
        b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
        b"[" * 40 + b"]" * 40,  # parses, but deeper than the limit
        b"not json",
        b"[]",
        b"42",
        b'{"jsonrpc": "2.0", "id": 1}',
    ],
)
async def test_malformed_bodies_are_400_with_a_json_error(service: L1Service, body: bytes) -> None:
    async with _client(service) as http:
        r = await http.post("/", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text[:200]
    assert r.json()["error"]["code"] in (-32700, -32600)


@pytest.mark.parametrize(
    "block_id",
    [
        "\u00b2",
        "\u0661",
        "\u0663",
        "0x" + "zz" * 32,
        "1_0",
        "+1",
        " 1",
        "99999999999999999999999",
        "-1",
    ],
)
async def test_beacon_block_ids_are_ascii_digits_within_bounds(
    service: L1Service, block_id: str
) -> None:
    async with _client(service) as http:
        for path in ("blob_sidecars", "blobs"):
            r = await http.get(f"/eth/v1/beacon/{path}/{block_id}")
            assert r.status_code == 400, (block_id, r.status_code, r.text[:200])
            assert "message" in r.json()


@pytest.mark.parametrize("query", ["indices=\u00b2", "indices=-1", "indices=1_0", "indices=\u0661"])
async def test_beacon_indices_are_ascii_digits(service: L1Service, query: str) -> None:
    async with _client(service) as http:
        r = await http.get(f"/eth/v1/beacon/blob_sidecars/head?{query}")
    assert r.status_code == 400
    assert "indices" in r.json()["message"]


# --- finding 5: negative and out-of-range numbers are invalid params ------------------------


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("eth_getBlockByNumber", ["-1", False]),
        ("eth_getBlockByNumber", [-1, False]),
        ("eth_getBlockByNumber", ["-0x1", False]),
        ("eth_getBlockByNumber", ["0x" + "f" * 40, False]),
        ("eth_getBlockByNumber", ["9" * 25, False]),
        ("eth_getBlockByNumber", [2**70, False]),
        ("eth_getBlockByNumber", ["\u0661", False]),
        ("eth_getBlockByNumber", ["1_0", False]),
        ("eth_getBlockByNumber", [" 1", False]),
        ("eth_getBlockByNumber", [1.5, False]),
        ("inbox_getBatches", ["-5", 10]),
        ("inbox_getBatches", [0, -1]),
        ("inbox_getForcedQueue", [-5, 10]),
        ("staking_getSnapshot", ["-1"]),
        ("staking_getSnapshot", [2**64]),
        ("dev_mine", [-1]),
        ("eth_getBalance", ["0x 0" + "0" * 38]),
    ],
)
async def test_bad_numbers_are_invalid_params(
    service: L1Service, method: str, params: list[Any]
) -> None:
    async with _client(service) as http:
        r = await _rpc(http, method, *params)
    assert r.status_code == 200
    assert r.json()["error"]["code"] == -32602, r.json()


async def test_good_numbers_still_answer(service: L1Service) -> None:
    async with _client(service) as http:
        for tag in ("0x1", "1", 1, "latest", "finalized"):
            r = await _rpc(http, "eth_getBlockByNumber", tag, False)
            assert r.json()["result"]["number"] in ("0x0", "0x1", "0x3"), tag
        r = await _rpc(http, "eth_getBlockByNumber", str(2**64 - 1), False)
        assert r.json()["result"] is None
        r = await _rpc(http, "inbox_getBatches", "0x0", "0xa")
        assert r.json()["result"] == []


# --- finding 6: cheap checks before KZG -----------------------------------------------------


class CountingKzg:
    """Stands in for the KZG worker and counts how often it is asked."""

    def __init__(self) -> None:
        self.calls = 0

    async def verify(
        self, blobs: Sequence[bytes], commitments: Sequence[bytes], proofs: Sequence[bytes]
    ) -> BlobCheck:
        self.calls += 1
        raise AssertionError("KZG must not run for a call the cheap checks refuse")


async def test_a_call_the_cheap_checks_refuse_never_reaches_kzg(service: L1Service) -> None:
    kzg = CountingKzg()
    service.kzg = kzg  # type: ignore[assignment]
    p = batch_params(batch_header(service.chain, blobs=6))
    good = make_call(p, OWNERS[0], service.chain.pending_nonce(OWNERS[0].address), L1_CHAIN)
    refused = {
        "bad signature": dataclasses.replace(good, signature=bytes(64)),
        "not the next one": make_call(p, OWNERS[0], good.nonce + 1, L1_CHAIN),
        "cannot pay": make_call(
            dataclasses.replace(p, max_fee_per_blob_gas=2**63), OWNERS[0], good.nonce, L1_CHAIN
        ),
    }
    for reason, call in refused.items():
        with pytest.raises(CallRejected, match=reason):
            await service.submit(call)
    assert kzg.calls == 0


async def test_the_user_without_stake_rights_is_refused_before_kzg(service: L1Service) -> None:
    kzg = CountingKzg()
    service.kzg = kzg  # type: ignore[assignment]
    # A batch certified by nobody: the certificate check is cheaper than the blobs' proofs.
    p = batch_params(batch_header(service.chain, blobs=2), signers=[])
    call = make_call(p, USER, service.chain.pending_nonce(USER.address), L1_CHAIN)
    with pytest.raises(CallRejected, match="certificate"):
        await service.submit(call)
    assert kzg.calls == 0


# --- finding 7: dev_mine is for loopback callers unless allowed -----------------------------


async def test_dev_mine_answers_loopback_callers_only(service: L1Service) -> None:
    head = service.chain.head.number
    async with _client(service, REMOTE) as http:
        r = await _rpc(http, "dev_mine", 5)
        assert "loopback" in r.json()["error"]["message"]
        assert (await _rpc(http, "eth_blockNumber")).json()["result"] == hex(head)
    assert service.chain.head.number == head
    async with _client(service, LOCAL) as http:
        assert (await _rpc(http, "dev_mine", 2)).json()["result"] == hex(head + 2)


async def test_dev_mine_from_other_hosts_when_allowed(tmp_path: Path) -> None:
    service = _service(tmp_path, remote_dev=True)
    try:
        async with _client(service, REMOTE) as http:
            assert (await _rpc(http, "dev_mine", 2)).json()["result"] == "0x2"
    finally:
        service.store.close()
