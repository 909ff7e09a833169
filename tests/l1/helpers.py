"""Builders for L1 tests: a devnet genesis with four sequencers, signed calls, batches."""

from __future__ import annotations

import hashlib
from typing import Any

from l1_mock.chain import TOKEN, Chain, ChainConfig, Genesis, GenesisSequencer
from sequencer_node.wire.blobs import BYTES_PER_BLOB, kzg_to_versioned_hash
from sequencer_node.wire.certificates import approval_for
from sequencer_node.wire.codec import signing_bytes
from sequencer_node.wire.crypto import SigningKey, sign_message
from sequencer_node.wire.l1calls import SubmitBatch, make_call
from sequencer_node.wire.messages import (
    DA_BLOBS,
    DA_CALLDATA,
    ZERO_HASH,
    BatchCertificate,
    BatchHeader,
    Endorsement,
    L1Call,
    batch_hash,
)

L1_CHAIN = 900
L2_CHAIN = 901
SEQ_KEYS = [SigningKey.deterministic(f"seq-{i}") for i in range(4)]
OWNERS = [SigningKey.deterministic(f"owner-{i}") for i in range(4)]
USER = SigningKey.deterministic("user")
OTHER = SigningKey.deterministic("other")
STAKES = [40_000 * TOKEN, 30_000 * TOKEN, 20_000 * TOKEN, 20_000 * TOKEN]
ZERO_BLOB = bytes(BYTES_PER_BLOB)
#: KZG commitment (and proof) of the all-zero blob: the point at infinity.
INFINITY = b"\xc0" + bytes(47)


def config(**kw: Any) -> ChainConfig:
    base: dict[str, Any] = dict(chain_id=L1_CHAIN, l2_chain_id=L2_CHAIN, unbonding_epochs=4)
    base.update(kw)
    return ChainConfig(**base)


def genesis(**kw: Any) -> Genesis:
    accounts = [k.address for k in [*OWNERS, USER, OTHER]]
    return Genesis(
        config(**kw),
        tuple((a, 1_000_000 * TOKEN) for a in accounts),
        tuple(
            GenesisSequencer(k.public_key, o.address, f"127.0.0.1:{9000 + i}", "", s)
            for i, (k, o, s) in enumerate(zip(SEQ_KEYS, OWNERS, STAKES, strict=True))
        ),
    )


def new_chain(**kw: Any) -> Chain:
    return Chain(genesis(**kw))


def call(chain: Chain, key: SigningKey, params: Any) -> L1Call:
    return make_call(params, key, chain.pending_nonce(key.address), L1_CHAIN)


def submit(chain: Chain, key: SigningKey, params: Any) -> bytes:
    hashes = None
    if isinstance(params, SubmitBatch) and params.blobs:
        hashes = tuple(kzg_to_versioned_hash(c) for c in params.commitments)
    return chain.submit(call(chain, key, params), hashes)


def mine(chain: Chain, n: int = 1) -> None:
    for _ in range(n):
        slot = chain.head.slot + 1
        chain.mine(slot, chain.config.genesis_time + slot * chain.config.slot_time)


def mine_to_epoch(chain: Chain, epoch: int) -> None:
    while chain.current_epoch < epoch:
        mine(chain)


def batch_header(
    chain: Chain,
    *,
    blocks: int = 10,
    blobs: int = 0,
    stake_epoch: int = 0,
    forced_index: int | None = None,
    parent: bytes | None = None,
    calldata: bytes = b"batch",
) -> BatchHeader:
    last = chain.batches[-1].header if chain.batches else None
    first = last.last_height + 1 if last else 1
    return BatchHeader(
        chain_id=L2_CHAIN,
        batch_number=last.batch_number + 1 if last else 0,
        stake_epoch=stake_epoch,
        first_height=first,
        last_height=first + blocks - 1,
        last_block_hash=hashlib.sha256(b"l2-%d" % (first + blocks)).digest(),
        parent_batch_hash=parent
        if parent is not None
        else (batch_hash(last) if last else ZERO_HASH),
        state_root=bytes(32),
        forced_index=forced_index if forced_index is not None else len(chain.forced),
        da_kind=DA_BLOBS if blobs else DA_CALLDATA,
        blob_hashes=tuple(kzg_to_versioned_hash(INFINITY) for _ in range(blobs)),
        data_hash=hashlib.sha256(b"" if blobs else calldata).digest(),
        data_bytes=0 if blobs else len(calldata),
    )


def certify(header: BatchHeader, signers: list[SigningKey] | None = None) -> BatchCertificate:
    signers = SEQ_KEYS if signers is None else signers
    sigs = tuple(
        Endorsement(
            k.public_key, k.sign(signing_bytes(approval_for(header, k.public_key), L2_CHAIN))
        )
        for k in signers
    )
    return BatchCertificate(header, sigs)


def batch_params(
    header: BatchHeader,
    signers: list[SigningKey] | None = None,
    *,
    max_fee: int = 10**12,
    calldata: bytes = b"batch",
) -> SubmitBatch:
    n = len(header.blob_hashes)
    return SubmitBatch(
        certify(header, signers),
        max_fee if n else 0,
        (ZERO_BLOB,) * n,
        (INFINITY,) * n,
        (INFINITY,) * n,
        b"" if n else calldata,
    )


def signed(msg: Any, key: SigningKey) -> Any:
    return sign_message(msg, key, L2_CHAIN)


def fill_block(chain: Chain, key: SigningKey, blobs: int) -> None:
    """Queue chained blob batches from ``key`` carrying ``blobs`` blobs in all, split by the
    next block's per-transaction limit (they execute in nonce order in one block)."""
    import dataclasses

    params = chain.blob_params()
    prev = chain.batches[-1].header if chain.batches else None
    nonce = chain.pending_nonce(key.address)
    while blobs:
        n = min(blobs, params.max_per_tx)
        blobs -= n
        first = prev.last_height + 1 if prev else 1
        h = dataclasses.replace(
            batch_header(chain, blobs=n),
            batch_number=prev.batch_number + 1 if prev else 0,
            parent_batch_hash=batch_hash(prev) if prev else ZERO_HASH,
            first_height=first,
            last_height=first,
        )
        p = batch_params(h, max_fee=10**9)
        c = make_call(p, key, nonce, L1_CHAIN)
        nonce += 1
        chain.submit(c, tuple(kzg_to_versioned_hash(x) for x in p.commitments))
        prev = h
