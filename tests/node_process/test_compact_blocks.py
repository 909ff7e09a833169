"""Compact blocks on the node (issue 13: proposals carry batch digests instead of transaction
bodies): the validate hook's checks, and four in-process nodes (one Trio loop, the L1 mock
in process) whose proposals travel as ``CompactBlock``, one of which never keeps a batch and
gets every block through ``BlockRequest``. Budget: ~15 s."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from l1_mock.chain import TOKEN, ChainConfig, GenesisSequencer
from l1_mock.genesis import dev_genesis
from l1_mock.server import L1Service, L1Settings
from l1_mock.server import serve as serve_l1
from sequencer_node.genesis import L2Genesis
from sequencer_node.shell.compact import CompactBlocks
from sequencer_node.shell.node_service import Node, NodeSettings
from sequencer_node.shell.p2p_messages import BlockRequest, CompactBlock, TxBatch
from sequencer_node.shell.peers import PeerAddress
from sequencer_node.shell.scoring import Offense
from sequencer_node.wire.codec import encode
from sequencer_node.wire.crypto import sign_message
from sequencer_node.wire.messages import Block, BlockHeader, Proposal
from tests.node_process.helpers import KEYS, L1_CHAIN, L2_CHAIN, STAKES, USERS, make_tx
from tests.node_process.test_runner import _async, _height, wait_until

GENESIS = L2Genesis(
    chain_id=L2_CHAIN,
    l1_chain_id=L1_CHAIN,
    validators=tuple((k.public_key, s * TOKEN) for k, s in zip(KEYS, STAKES, strict=True)),
    balances=tuple((u.address, 10**15) for u in USERS),
    seed=bytes(range(32)),
    params={"block_time_ms": 100, "timeout_base_ms": 1500, "epoch_length": 10_000},
)


@pytest.fixture
async def l1_url(tmp_path: Path) -> AsyncIterator[str]:
    seqs = tuple(
        GenesisSequencer(k.public_key, k.address, "", "", s * TOKEN)
        for k, s in zip(KEYS, STAKES, strict=True)
    )
    g = dev_genesis(ChainConfig(chain_id=L1_CHAIN, l2_chain_id=L2_CHAIN), seqs)
    node = L1Service.open(g, L1Settings(tmp_path / "l1", 1, auto_mine=False))
    async with trio.open_nursery() as nursery:
        url: str = await nursery.start(serve_l1, node, "127.0.0.1", 0)
        yield url
        nursery.cancel_scope.cancel()
    node.store.close()


def _settings(tmp_path: Path, l1_url: str, i: int, peers: list[int]) -> NodeSettings:
    return NodeSettings(
        data_dir=tmp_path / f"node{i}", genesis=GENESIS, key=KEYS[i], l1_url=l1_url,
        p2p_host="127.0.0.1", p2p_port=0, rpc_host="127.0.0.1", rpc_port=0,
        peers=tuple(PeerAddress("127.0.0.1", p) for p in peers), tick_s=0.02, l1_poll_s=0.2,
        l1_start_timeout_s=5.0, shutdown_timeout_s=3.0, batcher=False,
    )  # fmt: skip


def _sample(node: Node, name: str) -> float:
    value = node.metrics.registry.get_sample_value(name + "_total")
    return 0.0 if value is None else value


# --- the validate hook ----------------------------------------------------------------------


def _compact_block(signed: bool) -> CompactBlock:
    batch = (make_tx(USERS[0], USERS[1].address, 1, 0),)
    header = BlockHeader(1, 1, 0, bytes(32), 1, KEYS[0].public_key, bytes(32), bytes(32), 0, 0)
    proposal = Proposal(header, bytes(64))
    if signed:
        proposal = sign_message(proposal, KEYS[0], L2_CHAIN)
    leader = CompactBlocks()
    leader.batch_sent(TxBatch(batch), 0.0)
    cb = leader.outgoing(Block(proposal, batch, (), None, None), 0.0)
    assert isinstance(cb, CompactBlock)
    return cb


async def test_the_validate_hook_checks_a_compact_block_like_a_block_and_its_structure(
    tmp_path: Path,
) -> None:
    node = Node(_settings(tmp_path, "http://127.0.0.1:1", 0, []))
    peer = KEYS[1].public_key
    good = _compact_block(signed=True)
    assert node.check_peer_message(peer, good) is None
    assert node.check_peer_message(peer, _compact_block(signed=False)) is Offense.INVALID_SIGNATURE
    torn = dataclasses.replace(good, picks=good.picks[:-1])
    assert node.check_peer_message(peer, torn) is Offense.MALFORMED_MESSAGE
    # Each peer has a BlockRequest budget; over it, a request is a flood (and not answered).
    verdicts = [node.check_peer_message(peer, BlockRequest(bytes(32))) for _ in range(100)]
    assert set(verdicts) == {None, Offense.FLOOD}
    assert verdicts.count(None) <= 41
    assert node.check_peer_message(KEYS[2].public_key, BlockRequest(bytes(32))) is None


# --- four nodes -------------------------------------------------------------------------------


async def _start(tmp_path: Path, l1_url: str, nursery: trio.Nursery) -> list[Node]:
    nodes: list[Node] = []
    ports: list[int] = []
    for i in range(4):  # each dials the ones before it: a full mesh
        node = Node(_settings(tmp_path, l1_url, i, ports))
        addrs = await nursery.start(node.run)
        ports.append(addrs.p2p_port)
        nodes.append(node)
    return nodes


def _record_frames(nodes: list[Node]) -> dict[int, Counter[str]]:
    """Count, per node, the messages it broadcasts by type, and their encoded bytes."""
    counts: dict[int, Counter[str]] = {}
    for i, node in enumerate(nodes):
        pm = node.pm
        assert pm is not None
        real, c = pm.broadcast, Counter[str]()
        counts[i] = c

        def broadcast(msg: Any, _real: Any = real, _c: Counter[str] = c, **kw: Any) -> int:
            _c[type(msg).__name__] += 1
            if isinstance(msg, Block | CompactBlock):
                _c[type(msg).__name__ + " bytes"] += len(encode(msg))
            n: int = _real(msg, **kw)
            return n

        pm.broadcast = broadcast  # type: ignore[method-assign]
    return counts


async def test_four_nodes_send_proposals_as_compact_blocks_and_commit_every_acknowledged_tx(
    tmp_path: Path, l1_url: str
) -> None:
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            nodes = await _start(tmp_path, l1_url, nursery)
            for node in nodes:
                assert node.pm is not None
                await node.pm.wait_peers(3)
            # One node never keeps a batch: it must ask for every compact block. Not the
            # leader (one for the whole test: 10,000-block epochs), whose blocks would then
            # all go in full (a proposer without an index has nothing to refer to).
            await wait_until("a first block", _async(lambda: _height(nodes[0]) >= 2))
            assert nodes[0].core is not None
            leader = nodes[0].core.status().leader
            blind = max(i for i, n in enumerate(nodes) if KEYS[i].public_key != leader)
            nodes[blind].compact.index.add = lambda txs, now: None  # type: ignore[method-assign]
            frames = _record_frames(nodes)
            acked: list[bytes] = []
            for round_ in range(4):  # three users, each through its own node, 4 x 15 transfers
                for u in range(3):
                    txs = [make_tx(USERS[u], USERS[(u + 1) % 3].address, 1, round_ * 15 + n)
                           for n in range(15)]  # fmt: skip
                    results = await nodes[u].submit_txs(txs)
                    assert all(r.accepted for r in results), results
                    acked.extend(r.tx_hash for r in results)
                before = _height(nodes[0])  # spread the rounds over several blocks
                await wait_until("a block", _async(lambda b=before: _height(nodes[0]) > b))

            def committed_everywhere() -> bool:
                return all(n.tx_height(h) is not None for n in nodes for h in acked)

            await wait_until("every tx committed on every node", _async(committed_everywhere))
            # The stored head, not the core's: the core counts a block as committed before
            # the worker thread has written it.
            top = min(n.stored_head.height for n in nodes)
            hashes = {n.store.block_hash(top) for n in nodes if n.store is not None}
            assert len(hashes) == 1
            for node in nodes:
                node.stop()
    sent = Counter[str]()
    for c in frames.values():
        sent.update(c)
    # Proposals with client transactions went out as CompactBlocks (the blind node has no
    # index, and a block whose transactions were all proposed before their batch was cut goes
    # in full).
    assert sent["CompactBlock"] >= 1, sent
    assert sum(_sample(n, "seqnet_compact_blocks_sent") for n in nodes) == sent["CompactBlock"]
    seeing = [n for i, n in enumerate(nodes) if i != blind]
    assert sum(_sample(n, "seqnet_compact_blocks_resolved") for n in seeing) >= 1
    # The blind node never held a batch: every compact block it got was asked for and answered.
    assert _sample(nodes[blind], "seqnet_compact_blocks_resolved") == 0
    assert _sample(nodes[blind], "seqnet_compact_blocks_requested") >= 1
    assert _sample(nodes[blind], "seqnet_compact_blocks_resolved_after_request") >= 1
    full = sent["Block bytes"] / max(1, sent["Block"])
    small = sent["CompactBlock bytes"] / max(1, sent["CompactBlock"])
    print(f"broadcast: {dict(sent)}; mean bytes: Block {full:.0f}, CompactBlock {small:.0f}")
