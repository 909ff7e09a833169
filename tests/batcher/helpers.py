"""Builders for batcher tests: a funded L1 with four sequencers, an L2 chain of certified
blocks that starts from the core's genesis block, and batch certificates."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import trio

from l1_mock.chain import TOKEN, ChainConfig, Genesis, GenesisSequencer
from l1_mock.server import L1Service, L1Settings, serve
from sequencer_node.batcher.cosign import ApprovalCollector, sign_approval
from sequencer_node.clients.l1 import L1Client
from sequencer_node.core.ledger import Ledger, tx_root
from sequencer_node.derivation.deriver import DerivationGenesis, genesis_block_hash
from sequencer_node.wire.crypto import SigningKey, sign_message
from sequencer_node.wire.messages import (
    BatchCertificate,
    BatchHeader,
    Block,
    BlockHeader,
    CertifiedBlock,
    ForcedTransaction,
    Proposal,
    QuorumCertificate,
    Transaction,
    block_hash,
)

L1_CHAIN = 900
L2_CHAIN = 901
KEYS = [SigningKey.deterministic(f"batcher-test-{i}") for i in range(4)]
STAKES = {k.public_key: 25_000 * TOKEN for k in KEYS}
USERS = [SigningKey.deterministic(f"batcher-user-{i}") for i in range(20)]
GENESIS_TS = 1_700_000_000_000


def l1_genesis(*, retention: int = 4096, fork: str = "cancun") -> Genesis:
    cfg = ChainConfig(
        chain_id=L1_CHAIN,
        l2_chain_id=L2_CHAIN,
        genesis_time=1_700_000_000,
        forks=((0, fork),),
        blob_retention_epochs=retention,
        unbonding_epochs=4,
    )
    return Genesis(
        cfg,
        tuple((k.address, 1_000_000 * TOKEN) for k in KEYS),
        tuple(
            GenesisSequencer(k.public_key, k.address, f"127.0.0.1:{9000 + i}", "", 25_000 * TOKEN)
            for i, k in enumerate(KEYS)
        ),
    )


@asynccontextmanager
async def running_l1(
    tmp: Path, *, retention: int = 4096, fork: str = "cancun"
) -> AsyncIterator[tuple[L1Service, L1Client]]:
    node = L1Service.open(
        l1_genesis(retention=retention, fork=fork), L1Settings(tmp / "l1", 2, auto_mine=False)
    )
    try:
        async with trio.open_nursery() as nursery:
            url = await nursery.start(serve, node, "127.0.0.1", 0)
            async with L1Client(url) as client:
                yield node, client
            nursery.cancel_scope.cancel()
    finally:
        node.store.close()


def l2_genesis() -> DerivationGenesis:
    return DerivationGenesis(
        chain_id=L2_CHAIN,
        timestamp_ms=GENESIS_TS,
        balances=tuple((u.address, 10**18) for u in USERS),
    )


def l2_chain(
    blocks: int,
    txs_per_block: int,
    *,
    start: int = 1,
    seed: int = 0,
    forced: dict[int, list[ForcedTransaction]] | None = None,
) -> list[CertifiedBlock]:
    """``blocks`` certified blocks of transfers among USERS, from the genesis block;
    ``forced[height]`` are the L1 forced entries the block at ``height`` includes."""
    g = l2_genesis()
    ledger = Ledger.genesis(dict(g.balances))
    parent = genesis_block_hash(g)
    nonces = [0] * len(USERS)
    proposer = KEYS[0]
    out: list[CertifiedBlock] = []
    forced_index = 0
    for height in range(1, start + blocks):
        entries = tuple((forced or {}).get(height, ()))
        forced_index += len(entries)
        txs = []
        for j in range(txs_per_block):
            s = (height * 7 + j * 3 + seed) % len(USERS)
            to = USERS[(s + 1 + j) % len(USERS)].address
            tx = Transaction(USERS[s].public_key, to, 1000 + j, nonces[s], 1, bytes(64))
            txs.append(sign_message(tx, USERS[s], L2_CHAIN))
            nonces[s] += 1
        ledger, _ = ledger.apply_block(
            txs, entries, proposer=proposer.public_key, chain_id=L2_CHAIN
        )
        header = BlockHeader(
            height=height,
            round=height,
            epoch=0,
            parent_hash=parent,
            timestamp_ms=GENESIS_TS + height * 1000,
            proposer=proposer.public_key,
            tx_root=tx_root(txs, entries),
            state_root=ledger.state_root(),
            forced_index=forced_index,
            l1_origin=0,
        )
        proposal = sign_message(Proposal(header, bytes(64)), proposer, L2_CHAIN)
        bh = block_hash(header)
        out.append(
            CertifiedBlock(
                Block(proposal, tuple(txs), entries, None, None),
                QuorumCertificate(bh, height, height, 0, ()),
            )
        )
        parent = bh
    return [b for b in out if b.block.header.height >= start]


def certify(header: BatchHeader, signers: Sequence[SigningKey] = KEYS[:3]) -> BatchCertificate:
    collector = ApprovalCollector(L2_CHAIN)
    collector.track(header, STAKES)
    cert = None
    for k in signers:
        cert = collector.add(sign_approval(header, k, L2_CHAIN))
    assert cert is not None
    return cert


def replace(obj: object, **kw: object) -> object:
    return dataclasses.replace(obj, **kw)  # type: ignore[type-var]
