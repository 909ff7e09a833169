"""The L1 over HTTP: JSON-RPC, Beacon blob endpoints, retention, restart, web3.py, l1client."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio

from l1_mock.chain import Genesis
from l1_mock.server import L1Service, L1Settings, serve
from sequencer_node.clients.l1 import BlobsPruned, L1Client, L1Rejected, L1Unavailable
from sequencer_node.wire.l1calls import Transfer, UnlockStake, make_call
from tests.l1.helpers import (
    L1_CHAIN,
    OTHER,
    OWNERS,
    SEQ_KEYS,
    USER,
    ZERO_BLOB,
    batch_header,
    batch_params,
    genesis,
)


def make_genesis(**kw: object) -> Genesis:
    g = genesis(**kw)
    return dataclasses.replace(g, config=dataclasses.replace(g.config, genesis_time=1_700_000_000))


@pytest.fixture
async def l1(tmp_path: Path) -> AsyncIterator[tuple[L1Service, L1Client]]:
    node = L1Service.open(
        make_genesis(blob_retention_epochs=2, forks=((0, "cancun"),)),
        L1Settings(tmp_path / "l1", 2, auto_mine=False),
    )
    async with trio.open_nursery() as nursery:
        url = await nursery.start(serve, node, "127.0.0.1", 0)
        async with L1Client(url) as client:
            yield node, client
        nursery.cancel_scope.cancel()
    node.store.close()


async def test_reads_and_signed_calls_through_the_client(l1: tuple[L1Service, L1Client]) -> None:
    _node, client = l1
    assert await client.chain_id() == L1_CHAIN
    assert await client.block_number() == 0
    assert await client.blob_base_fee() == 1
    before = await client.balance(OTHER.address)
    h = await client.submit(Transfer(OTHER.address, 7), USER)
    assert await client.receipt(h) is None
    assert await client.dev_mine(3) == 3
    r = await client.receipt(h)
    assert r is not None
    assert r.status == 1
    assert r.block_number == 1
    assert await client.balance(OTHER.address) == before + 7 * 10**9
    # refusals come back as L1Rejected with the ledger's reason
    with pytest.raises(L1Rejected, match="belongs to account"):
        await client.submit(UnlockStake(SEQ_KEYS[0].public_key, 0), OTHER)
    with pytest.raises(L1Rejected, match="already"):
        await client.send_call(make_call(Transfer(OTHER.address, 7), USER, 0, L1_CHAIN))
    snap = await client.stake_snapshot(0)
    assert snap.finalized
    assert snap.stakes[SEQ_KEYS[0].public_key] == 40_000 * 10**18
    seqs = await client.sequencers()
    assert {s.status for s in seqs} == {"active"}


async def test_blob_batch_and_retention_boundary(l1: tuple[L1Service, L1Client]) -> None:
    node, client = l1
    p = batch_params(batch_header(node.chain, blobs=2))
    h = await client.submit_batch(p, OWNERS[0])
    await client.dev_mine(1)
    r = await client.receipt(h)
    assert r is not None
    assert (r.status, r.reason, r.blob_gas_used) == (1, "", 2 * 131072)
    batch = await client.last_batch()
    assert batch is not None
    assert batch.header == p.certificate.header
    slot = node.chain.blocks[1].header.slot  # epoch 0
    async with httpx.AsyncClient() as http:
        rpc = {"jsonrpc": "2.0", "id": 1, "method": "eth_getBlockByNumber", "params": ["0x1", True]}
        blk = (await http.post(client.url, json=rpc)).json()["result"]
        assert blk["blobGasUsed"] == hex(2 * 131072)
        assert blk["transactions"][0]["blobVersionedHashes"] == [
            "0x" + x.hex() for x in p.certificate.header.blob_hashes
        ]
        empty = await http.get(f"{client.url}/eth/v1/beacon/blob_sidecars/0")
        assert (empty.status_code, empty.json()["data"]) == (200, [])
        bad = await http.get(f"{client.url}/eth/v1/beacon/blob_sidecars/0xzz")
        assert bad.status_code == 400
        assert "invalid block id" in bad.json()["message"]
        future = await http.get(f"{client.url}/eth/v1/beacon/blobs/999")
        assert future.status_code == 404
        assert (await http.post(client.url, content=b"{nope")).json()["error"]["code"] == -32700
        unknown = {"jsonrpc": "2.0", "id": 2, "method": "eth_nope", "params": []}
        assert (await http.post(client.url, json=unknown)).json()["error"]["code"] == -32601
    sidecars = await client.blob_sidecars(slot)
    assert [s.blob for s in sidecars] == [ZERO_BLOB, ZERO_BLOB]
    # retention 2 epochs: served through epoch 2, pruned at epoch 3
    await client.dev_mine(2 * 32 - node.chain.head.slot)
    assert node.chain.current_epoch == 2
    assert len(await client.blobs(slot)) == 2
    await client.dev_mine(32)
    assert node.chain.current_epoch == 3
    with pytest.raises(BlobsPruned, match="pruned"):
        await client.blobs(slot)
    # the versioned hashes stay in the block forever
    head = await client.block(1)
    assert head.blob_gas_used == 2 * 131072


async def test_a_bad_blob_is_refused_with_the_reason(l1: tuple[L1Service, L1Client]) -> None:
    node, client = l1
    p = batch_params(batch_header(node.chain, blobs=1))
    with pytest.raises(L1Rejected, match="invalid blob: KZG"):
        await client.submit_batch(dataclasses.replace(p, proofs=(b"\x01" * 48,)), OWNERS[0])
    bad = bytearray(ZERO_BLOB)
    bad[0] = 0xFF
    with pytest.raises(L1Rejected, match="field element 0"):
        await client.submit_batch(dataclasses.replace(p, blobs=(bytes(bad),)), OWNERS[0])


async def test_web3_reads_chain_id_block_and_blob_base_fee(l1: tuple[L1Service, L1Client]) -> None:
    from web3 import Web3

    node, client = l1
    await client.dev_mine(2)

    def read() -> tuple[int, int, int, int, int]:
        w3 = Web3(Web3.HTTPProvider(client.url, request_kwargs={"timeout": 10}))
        latest = w3.eth.get_block("latest")
        return (
            w3.eth.chain_id,
            w3.eth.block_number,
            latest["number"],
            w3.eth.blob_base_fee,
            w3.eth.get_balance(Web3.to_checksum_address(USER.address)),
        )

    chain_id, number, latest, fee, balance = await trio.to_thread.run_sync(read)
    assert (chain_id, number, latest, fee) == (L1_CHAIN, 2, 2, 1)
    assert balance == node.chain.balance(USER.address)


async def test_state_survives_a_restart(tmp_path: Path) -> None:
    settings = L1Settings(tmp_path / "l1", 2, auto_mine=False)
    node = L1Service.open(make_genesis(), settings)
    await node.submit(make_call(Transfer(OTHER.address, 5), USER, 0, L1_CHAIN))
    await node.mine(40)
    pending = await node.submit(make_call(Transfer(OTHER.address, 6), USER, 1, L1_CHAIN))
    state = (node.chain.head, node.chain.balance(OTHER.address), dict(node.chain.snapshots))
    node.store.close()
    again = L1Service.open(make_genesis(), settings)
    assert (again.chain.head, again.chain.balance(OTHER.address), again.chain.snapshots) == state
    assert pending in again.chain.pool
    await again.mine(1)
    assert again.chain.receipts[pending].status == 1
    again.store.close()


async def test_unreachable_l1_is_a_clean_error() -> None:
    async with L1Client("http://127.0.0.1:9", timeout=2) as client:
        with pytest.raises(L1Unavailable):
            await client.block_number()


def test_refuses_retention_shorter_than_fault_proof_window(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from l1_mock.cli import main

    res = CliRunner().invoke(
        main,
        [
            "run",
            "--data-dir",
            str(tmp_path),
            "--slot-time",
            "12",
            "--blob-retention-epochs",
            "100",
            "--fault-proof-window",
            "7d",
        ],
    )
    assert res.exit_code == 2
    assert "shorter than the fault-proof window" in res.output


@pytest.mark.slow
async def test_kill_9_loses_no_accepted_call(tmp_path: Path) -> None:
    """A call whose hash was returned survives a SIGKILL of the L1 process."""
    import socket
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    cmd = [
        sys.executable,
        "-m",
        "l1_mock",
        "run",
        "--port",
        str(port),
        "--data-dir",
        str(tmp_path),
        "--no-auto-mine",
        "--log-level",
        "WARNING",
    ]

    async def started(client: L1Client) -> None:
        with trio.fail_after(30):
            while True:
                try:
                    await client.block_number()
                    return
                except L1Unavailable:
                    await trio.sleep(0.1)

    from l1_mock.genesis import dev_key

    alice, bob = dev_key(0), dev_key(1)
    proc = await trio.lowlevel.open_process(cmd)
    try:
        async with L1Client(url) as client:
            await started(client)
            await client.dev_mine(2)
            h = await client.submit(Transfer(bob.address, 3), alice)
        proc.kill()  # SIGKILL: no shutdown code runs
        with trio.fail_after(10):
            await proc.wait()
        proc = await trio.lowlevel.open_process(cmd)
        async with L1Client(url) as client:
            await started(client)
            assert await client.block_number() == 2
            await client.dev_mine(1)
            r = await client.receipt(h)
            assert r is not None
            assert r.status == 1
    finally:
        proc.kill()
        with trio.fail_after(10):
            await proc.wait()


def test_dev_genesis_writes_a_loadable_file(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from l1_mock import genesis as genesis_mod
    from l1_mock.cli import main

    key = SEQ_KEYS[0]
    out = tmp_path / "g.json"
    spec = f"{key.public_key.hex()},{OWNERS[0].address.hex()},40000,127.0.0.1:9000,127.0.0.1:8000"
    res = CliRunner().invoke(
        main,
        [
            "dev-genesis",
            "--out",
            str(out),
            "--sequencer",
            spec,
            "--fund",
            f"{OWNERS[0].address.hex()},5",
        ],
    )
    assert res.exit_code == 0, res.output
    g = genesis_mod.load(out)
    assert g.sequencers[0].signing_key == key.public_key
    assert g.sequencers[0].p2p_address == "127.0.0.1:9000"
    assert (OWNERS[0].address, 5 * 10**18) in g.balances
    bad = CliRunner().invoke(
        main, ["dev-genesis", "--out", str(out), "--sequencer", spec.replace(",40000,", ",10,")]
    )
    assert bad.exit_code == 2
    assert "stake outside" in bad.output
