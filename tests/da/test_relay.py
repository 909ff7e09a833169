"""The relayer and the L1 bridge end to end over HTTP: the DA mock's attestations reach the L1
(verified there against the committee of the L1 genesis), then an extda batch whose pointer the
DA node proved is accepted by the inbox, which records the proven data root tuple."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio

from l1_mock.chain import Chain, Genesis
from l1_mock.da.relay import Relayer, RelayError, RelaySettings
from l1_mock.server import L1Service, L1Settings, serve
from sequencer_node.clients.l1 import L1Client
from sequencer_node.wire.codec import decode
from sequencer_node.wire.da import attest
from sequencer_node.wire.hexstr import from_hex
from sequencer_node.wire.l1calls import SubmitBatch
from sequencer_node.wire.messages import DA_EXTERNAL
from tests.da.helpers import COMMITTEE, DA_CHAIN, USERS, genesis, ns, pfb
from tests.da.test_server import Da, _serve
from tests.l1 import helpers as l1h

DA_GENESIS = genesis()
NAMESPACE = ns(5)


def l1_genesis() -> Genesis:
    g = l1h.genesis(da_chain_id=DA_CHAIN, da_committee=DA_GENESIS.committee, da_namespace=NAMESPACE)
    return dataclasses.replace(g, config=dataclasses.replace(g.config, genesis_time=1_700_000_000))


@pytest.fixture
async def l1(tmp_path: Path) -> AsyncIterator[tuple[str, L1Client]]:
    node = L1Service.open(l1_genesis(), L1Settings(tmp_path / "l1", 2, auto_mine=False))
    async with trio.open_nursery() as nursery:
        url = await nursery.start(serve, node, "127.0.0.1", 0)
        async with L1Client(url) as client:
            yield url, client
        nursery.cancel_scope.cancel()
    node.store.close()


async def _da(tmp: Path, keys: int) -> AsyncIterator[Da]:
    async for d in _serve(
        tmp / "da", DA_GENESIS, attestation_window=2, committee_keys=tuple(COMMITTEE[:keys])
    ):
        yield d


async def test_attestations_are_relayed_and_an_extda_batch_is_accepted(
    tmp_path: Path, l1: tuple[str, L1Client]
) -> None:
    l1_url, client = l1
    payload = b"an L2 batch payload" * 200
    async for da in _da(tmp_path, 4):
        relayer = Relayer(RelaySettings(str(da.http.base_url), l1_url, l1h.USER), da.http)
        assert await relayer.tick() == 0  # nothing attested yet
        assert (await da.submit(pfb(USERS[0], 0, ns(4), b"someone else"))).status_code == 200
        assert (await da.submit(pfb(USERS[1], 0, NAMESPACE, payload))).status_code == 200
        await da.produce(4)  # two attestation windows
        assert await relayer.tick() == 2
        assert await relayer.tick() == 0  # pending on the L1: not sent twice
        await client.dev_mine(1)
        assert await client.rpc("da_status") == {"nextNonce": 2, "attestedEnd": 5}
        assert await relayer.tick() == 0
        body = (await da.http.get("/v1/pointers/1/1")).json()
        pointer = attest.pointer_from_json(body["pointer"])
        proof = attest.pointer_proof_from_json(body["proof"])
        assert pointer.namespace == NAMESPACE
        header = dataclasses.replace(
            l1h.batch_header(Chain(l1_genesis())),
            da_kind=DA_EXTERNAL,
            da_pointer=pointer,
            data_hash=hashlib.sha256(payload).digest(),
            data_bytes=len(payload),
        )
        batch = SubmitBatch(l1h.certify(header), 0, (), (), (), b"", 0, proof)
        h = await client.submit(batch, l1h.OTHER)
        await client.dev_mine(1)
        receipt = await client.receipt(h)
        assert receipt is not None
        assert receipt.status == 1, receipt
        last = await client.rpc("inbox_getLastBatch")
        assert decode(from_hex(last["daTuple"]), attest.DataRootTuple) == proof.root_tuple
        covering = await client.rpc("da_findDataCommitment", 3)
        assert covering["nonce"] == 1


async def test_a_minority_of_the_committee_cannot_get_a_root_onto_the_l1(
    tmp_path: Path, l1: tuple[str, L1Client]
) -> None:
    l1_url, client = l1
    async for da in _da(tmp_path, 1):  # 40 of 100: not more than 2/3
        await da.produce(2)
        async with httpx.AsyncClient(timeout=10) as http:
            relayer = Relayer(RelaySettings(str(da.http.base_url), l1_url, l1h.USER), http)
            with pytest.raises(RelayError, match="more than 2/3"):
                await relayer.tick()
        assert await client.rpc("da_status") == {"nextNonce": 0, "attestedEnd": 1}
