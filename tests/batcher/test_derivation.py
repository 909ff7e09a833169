"""The derivation follower against a real L1: blobs and calldata, pruned blobs (clear
error, later batches still derive from a kept state), tampered data, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio
from click.testing import CliRunner

from sequencer_node.batcher.builder import make_header
from sequencer_node.batcher.config import BatcherConfig
from sequencer_node.batcher.kzg_worker import KzgWorker, Prepared
from sequencer_node.batcher.poster import Poster, PostOutcome
from sequencer_node.batcher.records import BatchRecords
from sequencer_node.clients.l1 import L1Client
from sequencer_node.derivation.cli import follow_command
from sequencer_node.derivation.deriver import Deriver, InvalidBatch, PrunedData
from sequencer_node.genesis import L2Genesis, write_genesis
from sequencer_node.wire.codec import encode
from sequencer_node.wire.messages import ZERO_HASH, BatchHeader, CertifiedBlock, batch_hash
from tests.batcher.helpers import (
    GENESIS_TS,
    KEYS,
    L1_CHAIN,
    L2_CHAIN,
    STAKES,
    USERS,
    certify,
    l2_chain,
    l2_genesis,
    running_l1,
)


class Posting:
    """Posts consecutive batches of ``chain`` through a real Poster."""

    def __init__(self, l1: L1Client, worker: KzgWorker, chain: list[CertifiedBlock], tmp: Path):
        self.l1, self.worker, self.chain = l1, worker, chain
        self.records = BatchRecords.open(tmp / "poster")
        self.parent = ZERO_HASH
        self.number = 0
        self.headers: list[BatchHeader] = []

    async def prepare(self, first: int, last: int, da: str) -> Prepared:
        blocks = [encode(b) for b in self.chain[first - 1 : last]]
        return await self.worker.prepare(blocks, algorithm=3, da=da, max_payload=10**6, fit=False)

    async def post(self, first: int, last: int, da: str = "blobs") -> BatchHeader:
        p = await self.prepare(first, last, da)
        header = make_header(
            p.draft,
            chain_id=L2_CHAIN,
            batch_number=self.number,
            parent_batch_hash=self.parent,
            stake_epoch=0,
            blob_hashes=p.blob_hashes,
        )

        async def rebuild(h: BatchHeader, algorithm: int) -> Prepared:
            return await self.prepare(h.first_height, h.last_height, da)

        poster = Poster(
            records=self.records,
            l1=self.l1,
            key=KEYS[0],
            l1_chain_id=L1_CHAIN,
            config=BatcherConfig(da=da),  # type: ignore[arg-type]
            rebuild=rebuild,
        )
        await poster.certified(certify(header), p)
        assert (await poster.post(self.number)).outcome is PostOutcome.SENT
        await self.l1.dev_mine(1)
        assert (await poster.post(self.number)).outcome is PostOutcome.ACCEPTED
        self.parent = batch_hash(header)
        self.number += 1
        self.headers.append(header)
        return header

    def close(self) -> None:
        self.records.close()


async def test_pruned_blobs_give_a_clear_error_and_later_batches_still_derive(
    tmp_path: Path,
) -> None:
    chain = l2_chain(9, 3)
    root = chain[-1].block.header.state_root
    async with running_l1(tmp_path, retention=1) as (node, l1), KzgWorker(0) as worker:
        posting = Posting(l1, worker, chain, tmp_path)
        await posting.post(1, 4)
        kept = tmp_path / "follower"
        early = Deriver(l1, l2_genesis(), data_dir=kept)
        assert [d.batch_number for d in await early.derive_available()] == [0]
        # move the L1 two epochs on: epoch 0's blobs leave the 1-epoch retention window
        await l1.dev_mine(2 * 32)
        assert node.chain.current_epoch >= 2
        await posting.post(5, 9)
        fresh = Deriver(l1, l2_genesis())
        with pytest.raises(PrunedData) as err:
            await fresh.derive_available()
        msg = str(err.value)
        assert err.value.batch_number == 0
        assert err.value.l1_block == 1
        assert "batch 0 (L2 blocks 1-4)" in msg
        assert "L1 block 1" in msg
        assert "retention window of 1 epochs" in msg
        assert "since epoch 2" in msg
        # batches inside the window are still there and well-formed
        assert await fresh.check_available(1) == [(1, None)]
        # a follower that kept its state derives them to the sequencers' state root
        resumed = Deriver(l1, l2_genesis(), data_dir=kept)
        assert resumed.next_batch == 1
        assert [d.batch_number for d in await resumed.derive_available()] == [1]
        assert resumed.state_root() == root
        # the CLI says the same, with exit status 1
        genesis_file = tmp_path / "genesis.json"
        write_genesis(
            genesis_file,
            L2Genesis(
                chain_id=L2_CHAIN,
                l1_chain_id=L1_CHAIN,
                validators=tuple(STAKES.items()),
                balances=tuple((u.address, 10**18) for u in USERS),
                timestamp_ms=GENESIS_TS,
            ),
        )
        args = ["--once", "--json", "--l1-url", l1.url, "--genesis", str(genesis_file)]
        res = await trio.to_thread.run_sync(lambda: CliRunner().invoke(follow_command, args))
        assert res.exit_code == 1, res.output
        out = json.loads(res.stdout)
        assert out["pruned"]["batch"] == 0
        assert out["later_batches"] == [{"batch": 1, "problem": None}]
        assert "pruned" in res.stderr
        res = await trio.to_thread.run_sync(
            lambda: CliRunner().invoke(follow_command, [*args, "--data-dir", str(kept)])
        )
        assert res.exit_code == 0, res.output
        assert json.loads(res.stdout)["state_root"] == "0x" + root.hex()
        posting.close()


async def test_follower_derives_blob_and_calldata_batches_to_the_same_root(
    tmp_path: Path,
) -> None:
    chain = l2_chain(8, 4)
    async with running_l1(tmp_path) as (_node, l1), KzgWorker(0) as worker:
        posting = Posting(l1, worker, chain, tmp_path)
        await posting.post(1, 3, "blobs")
        await posting.post(4, 8, "calldata")
        follower = Deriver(l1, l2_genesis())
        derived = await follower.derive_available()
        assert [(d.da, d.last_height, d.txs) for d in derived] == [
            ("blobs", 3, 12),
            ("calldata", 8, 20),
        ]
        assert follower.state_root() == chain[-1].block.header.state_root
        posting.close()


async def test_a_certified_batch_with_wrong_state_roots_is_named(tmp_path: Path) -> None:
    """Even > 2/3 of stake cannot make the follower accept a wrong state: it re-executes."""
    import dataclasses

    chain = l2_chain(4, 2)
    bad_header = dataclasses.replace(chain[1].block.header, state_root=bytes(32))
    bad = dataclasses.replace(
        chain[1],
        block=dataclasses.replace(
            chain[1].block,
            proposal=dataclasses.replace(chain[1].block.proposal, header=bad_header),
        ),
    )
    async with running_l1(tmp_path) as (_node, l1), KzgWorker(0) as worker:
        posting = Posting(l1, worker, [chain[0], bad], tmp_path)
        await posting.post(1, 2)
        with pytest.raises(InvalidBatch, match="L2 block 2: state root after re-execution"):
            await Deriver(l1, l2_genesis()).derive_available()
        posting.close()


async def test_follow_serves_its_status_while_following(tmp_path: Path) -> None:
    import socket

    import httpx

    from sequencer_node.derivation.cli import _follow

    chain = l2_chain(5, 2)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with running_l1(tmp_path) as (_node, l1), KzgWorker(0) as worker:
        posting = Posting(l1, worker, chain, tmp_path)
        await posting.post(1, 5)
        async with trio.open_nursery() as nursery, httpx.AsyncClient() as http:
            nursery.start_soon(_follow, l1.url, l2_genesis(), None, f"127.0.0.1:{port}", 0.1)
            with trio.fail_after(30):
                while True:
                    try:
                        st = (await http.get(f"http://127.0.0.1:{port}/v1/status")).json()
                    except httpx.HTTPError:
                        st = {}
                    if st.get("height") == 5:
                        break
                    await trio.sleep(0.1)
            assert st["state_root"] == "0x" + chain[-1].block.header.state_root.hex()
            assert st["role"] == "follower"
            assert st["error"] is None
            health = await http.get(f"http://127.0.0.1:{port}/health")
            assert health.json() == {"ok": True, "height": 5}
            nursery.cancel_scope.cancel()
        posting.close()
