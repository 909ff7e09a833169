"""Shared helpers of the DA mock's tests: namespaces, keys, signed pay-for-blobs."""

from __future__ import annotations

import dataclasses

from l1_mock.da.chain import DAConfig, DAGenesis, PayForBlob
from sequencer_node.wire.crypto import SigningKey
from sequencer_node.wire.da.shares import user_namespace

DA_CHAIN = 7_000
USERS = [SigningKey.deterministic(f"da-test-user-{i}") for i in range(3)]
COMMITTEE = [SigningKey.deterministic(f"da-test-committee-{i}") for i in range(4)]
STAKES = [40, 30, 20, 10]
FUNDS = 10**24


def ns(i: int) -> bytes:
    """A user namespace; ``i`` picks it (ordered like ``i``)."""
    return user_namespace((0x100 + i).to_bytes(10, "big"))


def genesis(**config: int) -> DAGenesis:
    cfg = dataclasses.replace(DAConfig(chain_id=DA_CHAIN, genesis_time=1_700_000_000), **config)
    return DAGenesis(
        cfg,
        tuple((u.address, FUNDS) for u in USERS),
        tuple((k.public_key, s) for k, s in zip(COMMITTEE, STAKES, strict=True)),
    )


def pfb(
    key: SigningKey,
    nonce: int,
    namespace: bytes,
    data: bytes,
    max_fee: int = 10_000,
    chain_id: int = DA_CHAIN,
) -> PayForBlob:
    p = PayForBlob(key.public_key, nonce, namespace, data, max_fee)
    return dataclasses.replace(p, signature=key.sign(p.signing_bytes(chain_id)))
