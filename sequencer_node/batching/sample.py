"""Deterministic sample chains of certified blocks, for benchmarks, tests and load tools.

The transfers are real: signed by deterministic keys, executed by the ledger, so state roots
and block hashes are what a live chain would produce. Pseudo-randomness comes from sha256 of
a seed and a counter (no global random state), so a sample is the same on every machine.
"""

from __future__ import annotations

import hashlib

from sequencer_node.core.ledger import Ledger, tx_root
from sequencer_node.wire.crypto import SigningKey, sign_message
from sequencer_node.wire.messages import (
    ZERO_HASH,
    Block,
    BlockHeader,
    CertifiedBlock,
    Proposal,
    QuorumCertificate,
    Transaction,
    block_hash,
)


class _Stream:
    def __init__(self, seed: bytes) -> None:
        self._seed = seed
        self._n = 0

    def skewed(self, bound: int, skew: int) -> int:
        """An index in [0, bound) drawn as ``bound * u**skew`` (u uniform): 1 is uniform,
        larger values concentrate on low indices (a few hot accounts, a long tail)."""
        u = self.below(1 << 32) / (1 << 32)
        return min(bound - 1, int(bound * u**skew))

    def below(self, bound: int) -> int:
        self._n += 1
        d = hashlib.sha256(self._seed + self._n.to_bytes(8, "big")).digest()
        return int.from_bytes(d[:8], "big") % bound


def sample_chain(
    *,
    accounts: int,
    blocks: int,
    txs_per_block: int,
    chain_id: int = 901,
    seed: bytes = b"sample",
    start_ms: int = 1_700_000_000_000,
    block_ms: int = 250,
    skew: int = 1,
) -> tuple[Ledger, list[CertifiedBlock]]:
    """Genesis ledger and ``blocks`` certified blocks of transfers among ``accounts`` keys.

    Amounts are varied (1 .. 10**9 base units) and fees small, as on a busy L2; senders and
    recipients are drawn as :meth:`_Stream.skewed` with ``skew`` (1: uniform). QCs carry no
    signatures (batches drop them anyway).
    """
    keys = [SigningKey.deterministic(f"sample-{i}") for i in range(accounts)]
    proposer = SigningKey.deterministic("sample-proposer")
    genesis = Ledger.genesis({k.address: 10**18 for k in keys})
    rnd = _Stream(seed)
    nonces = [0] * accounts
    ledger = genesis
    parent = ZERO_HASH
    out: list[CertifiedBlock] = []
    for height in range(1, blocks + 1):
        txs: list[Transaction] = []
        for _ in range(txs_per_block):
            s = rnd.skewed(accounts, skew)
            to = keys[rnd.skewed(accounts, skew)].address
            amount = 1 + rnd.below(10 ** (1 + rnd.below(9)))
            fee = 1 + rnd.below(2000)
            tx = Transaction(keys[s].public_key, to, amount, nonces[s], fee, bytes(64))
            txs.append(sign_message(tx, keys[s], chain_id))
            nonces[s] += 1
        ledger, _ = ledger.apply_block(txs, [], proposer=proposer.public_key)
        header = BlockHeader(
            height=height,
            round=height,
            epoch=0,
            parent_hash=parent,
            timestamp_ms=start_ms + height * block_ms,
            proposer=proposer.public_key,
            tx_root=tx_root(txs, []),
            state_root=ledger.state_root(),
            forced_index=0,
            l1_origin=0,
        )
        proposal = sign_message(Proposal(header, bytes(64)), proposer, chain_id)
        bh = block_hash(header)
        qc = QuorumCertificate(bh, height, height, 0, ())
        out.append(CertifiedBlock(Block(proposal, tuple(txs), (), None, None), qc))
        parent = bh
    return genesis, out
