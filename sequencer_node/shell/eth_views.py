"""The reads behind the Ethereum JSON-RPC (:mod:`sequencer_node.shell.eth_rpc`): blocks,
transactions, receipts, balances and fees as Ethereum clients expect them.

Mapping: an L2 block is an Ethereum block of the same number (its height) and hash (the
header's hash). Its ``transactions`` are its Ethereum transactions; native (Ed25519) transfers
have no Ethereum form and are shown by ``/v1/blocks/{height}`` only. A transfer uses 21,000 gas
and always succeeds once in a certified block (a block with a failing transaction is never
certified), so a receipt has ``status`` 1 and no logs.

Block tags: ``latest``, ``pending`` and ``safe`` are the certified head (the state the node
serves; ``pending`` also counts the pool for ``eth_getTransactionCount``), ``finalized`` is the
L1-finalized head (the last block whose batch is in a finalized L1 block), ``earliest`` is the
genesis. Account state is served at the certified head only (the node keeps no history of
states); asking for another block is an error that says so.

Like :mod:`~sequencer_node.shell.api_views`, these views only read, between two inputs of the
core-owning task. Every returned value is JSON-ready (quantities are ``0x`` hex).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Protocol

from sequencer_node.core.ledger import Ledger, base_fee_of
from sequencer_node.core.sequencer import SequencerCore
from sequencer_node.genesis import L2Genesis
from sequencer_node.shell.api_views import ApiViews
from sequencer_node.shell.store import Store
from sequencer_node.wire.crypto import address_of
from sequencer_node.wire.eth import (
    TRANSFER_GAS,
    TYPE_DYNAMIC_FEE,
    EthTransaction,
    EthTx,
    decode_eth,
)
from sequencer_node.wire.hexstr import to_hex
from sequencer_node.wire.messages import Block, BlockHeader, block_hash

#: What ``eth_maxPriorityFeePerGas`` suggests (1 gwei, a common wallet default).
SUGGESTED_PRIORITY_FEE = 10**9
#: keccak256(rlp([])): the hash of an empty uncle list; and of an empty trie (receipts root).
EMPTY_UNCLES_HASH = bytes.fromhex(
    "1dcc4de8dec75d7aab85b567b6ccd41ad312451b948a7413f0a142fd40d49347"
)
EMPTY_TRIE_ROOT = bytes.fromhex("56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421")
_ZERO_BLOOM = "0x" + "00" * 256
CLIENT_VERSION = f"seqnet/v0.1.0/python{sys.version_info.major}.{sys.version_info.minor}"


class StateUnavailable(Exception):
    """The node does not hold the state or block asked for; the message says what it has."""


def q(n: int) -> str:
    """An Ethereum JSON-RPC quantity: ``0x``-hex without leading zeros."""
    return hex(n)


class EthNodeState(Protocol):
    """What the Ethereum views read from the node (implemented by
    :class:`~sequencer_node.shell.node_service.Node`)."""

    @property
    def core(self) -> SequencerCore | None: ...
    @property
    def store(self) -> Store | None: ...
    @property
    def genesis(self) -> L2Genesis: ...
    @property
    def views(self) -> ApiViews: ...
    def tx_height(self, tx_hash: bytes) -> int | None: ...


@dataclass(frozen=True, slots=True)
class _Located:
    """A certified Ethereum transaction and where it is."""

    tx: EthTx
    header: BlockHeader
    index: int


class EthViews:
    """The read side of the Ethereum JSON-RPC over one node."""

    def __init__(self, node: EthNodeState) -> None:
        self._node = node

    def _core(self) -> SequencerCore:
        core = self._node.core
        assert core is not None, "the node is not open"
        return core

    # --- chain and heads -------------------------------------------------------------------

    @property
    def chain_id(self) -> int:
        return self._node.genesis.chain_id

    def head_height(self, tag: str) -> int:
        """The height a block tag names (``latest``, ``pending``, ``safe``, ``finalized``,
        ``earliest``)."""
        if tag == "earliest":
            return 0
        heads = self._node.views.heads()
        return heads["finalized" if tag == "finalized" else "certified"].height

    def _ledger_at(self, height: int) -> Ledger:
        """The state after block ``height``: only the certified head's is served."""
        head = self._node.views.heads()["certified"].height
        if height != head:
            raise StateUnavailable(
                f"the state at block {height} is not available: this node serves the state "
                f"at its certified head ({head}); use 'latest'"
            )
        return self._core().committed_ledger

    def balance(self, address: bytes, height: int) -> int:
        return self._ledger_at(height).balance(address)

    def nonce(self, address: bytes, height: int | None) -> int:
        """The account nonce at ``height``, or the pending nonce (pool included) for None."""
        if height is None:
            return self._core().pending_nonce(address)
        return self._ledger_at(height).nonce(address)

    # --- fees ------------------------------------------------------------------------------

    def base_fee(self, height: int) -> int:
        """The L2 base fee of block ``height`` (0 when no fee model charges one). The core
        keeps those of its recent blocks (4,096); an older one is shown at today's."""
        if height == 0:
            return 0
        fee = self._core().base_fee(height)
        return self.next_base_fee() if fee is None else fee

    def next_base_fee(self) -> int:
        """The base fee of the next block (from the certified state: what a wallet bids on)."""
        return base_fee_of(self._core().committed_ledger)

    def gas_limit(self) -> int:
        return self._core().config.max_block_txs * TRANSFER_GAS

    def fee_history(
        self, count: int, newest: int, percentiles: list[float] | None
    ) -> dict[str, Any]:
        """``eth_feeHistory``: base fees (one more: the next block's), gas used ratios and,
        with ``percentiles``, the priority fees paid at those percentiles of each block."""
        newest = min(newest, self.head_height("latest"))
        oldest = max(0, newest - count + 1)
        base, ratios, rewards = [], [], []
        limit = self.gas_limit()
        for height in range(oldest, newest + 1):
            fee = self.base_fee(height)
            txs = self._block_eth(height)
            base.append(q(fee))
            ratios.append(len(txs) * TRANSFER_GAS / limit if limit else 0.0)
            if percentiles is not None:
                tips = sorted(t.effective_gas_price(fee) - fee for t in txs)
                rewards.append([q(_percentile(tips, p)) for p in percentiles])
        base.append(q(self.base_fee(newest + 1)))
        out: dict[str, Any] = {
            "oldestBlock": q(oldest),
            "baseFeePerGas": base,
            "gasUsedRatio": ratios,
        }
        if percentiles is not None:
            out["reward"] = rewards
        return out

    # --- blocks ----------------------------------------------------------------------------

    def _block(self, height: int) -> Block | None:
        if height == 0:
            return None
        if height > self.head_height("latest"):
            return None
        store = self._node.store
        cb = store.get_block(height) if store is not None else None
        return None if cb is None else cb.block

    def _header(self, height: int) -> BlockHeader | None:
        if height == 0:
            core = self._core()
            return core.tree.header(core.genesis_hash)
        block = self._block(height)
        return None if block is None else block.header

    def _block_eth(self, height: int) -> list[EthTx]:
        block = self._block(height)
        return [] if block is None else [decode_eth(e.raw) for e in block.eth_transactions]

    def height_of_hash(self, bh: bytes) -> int | None:
        """The height of a certified block by hash (the genesis and recent blocks)."""
        core = self._core()
        height = core.tree.height_of(bh)
        if height is None or height > self.head_height("latest"):
            return None
        header = self._header(height)
        return height if header is not None and block_hash(header) == bh else None

    def block(self, height: int, full: bool) -> dict[str, Any] | None:
        """``eth_getBlockByNumber``: the block at ``height`` (``full``: transaction objects)."""
        header = self._header(height)
        if header is None:
            return None
        block = self._block(height)
        eth = () if block is None else block.eth_transactions
        txs = [decode_eth(e.raw) for e in eth]
        fee = self.base_fee(height)
        bh = block_hash(header)
        return {
            "number": q(height),
            "hash": to_hex(bh),
            "parentHash": to_hex(header.parent_hash),
            "nonce": "0x0000000000000000",
            "sha3Uncles": to_hex(EMPTY_UNCLES_HASH),
            "logsBloom": _ZERO_BLOOM,
            "transactionsRoot": to_hex(header.tx_root),
            "stateRoot": to_hex(header.state_root),
            "receiptsRoot": to_hex(EMPTY_TRIE_ROOT),
            "miner": to_hex(address_of(header.proposer)),
            "difficulty": "0x0",
            "totalDifficulty": "0x0",
            "extraData": "0x",
            "size": q(sum(len(e.raw) for e in eth) + 512),
            "gasLimit": q(self.gas_limit()),
            "gasUsed": q(TRANSFER_GAS * len(txs)),
            "timestamp": q(header.timestamp_ms // 1000),
            "transactions": [
                _tx_json(t, header, i, fee) if full else to_hex(t.hash) for i, t in enumerate(txs)
            ],
            "uncles": [],
            "baseFeePerGas": q(fee),
            "mixHash": to_hex(bytes(32)),
        }

    # --- transactions ----------------------------------------------------------------------

    def _locate(self, tx_hash: bytes) -> _Located | None:
        height = self._node.tx_height(tx_hash)
        block = None if height is None else self._block(height)
        if block is None:
            return None
        for i, e in enumerate(block.eth_transactions):
            etx = decode_eth(e.raw)
            if etx.hash == tx_hash:
                return _Located(etx, block.header, i)
        return None

    def transaction(self, tx_hash: bytes) -> dict[str, Any] | None:
        """``eth_getTransactionByHash``: certified, or pending in this node's pool."""
        found = self._locate(tx_hash)
        if found is not None:
            fee = self.base_fee(found.header.height)
            return _tx_json(found.tx, found.header, found.index, fee)
        pending = self._core().pending_tx(tx_hash)
        if isinstance(pending, EthTransaction):
            return _tx_json(decode_eth(pending.raw), None, 0, None)
        return None

    def receipt(self, tx_hash: bytes) -> dict[str, Any] | None:
        """``eth_getTransactionReceipt``: None until the transaction is certified."""
        found = self._locate(tx_hash)
        if found is None:
            return None
        t, h = found.tx, found.header
        return {
            "transactionHash": to_hex(t.hash),
            "transactionIndex": q(found.index),
            "blockHash": to_hex(block_hash(h)),
            "blockNumber": q(h.height),
            "from": to_hex(t.sender),
            "to": None if t.to is None else to_hex(t.to),
            "cumulativeGasUsed": q(TRANSFER_GAS * (found.index + 1)),
            "gasUsed": q(TRANSFER_GAS),
            "effectiveGasPrice": q(t.effective_gas_price(self.base_fee(h.height))),
            "contractAddress": None,
            "logs": [],
            "logsBloom": _ZERO_BLOOM,
            "status": "0x1",
            "type": q(t.type),
        }


def _tx_json(
    t: EthTx, header: BlockHeader | None, index: int, base_fee: int | None
) -> dict[str, Any]:
    """A transaction object; ``header`` None for a pending one (no block yet)."""
    price = t.max_fee_per_gas if base_fee is None else t.effective_gas_price(base_fee)
    out: dict[str, Any] = {
        "hash": to_hex(t.hash),
        "type": q(t.type),
        "chainId": q(t.chain_id),
        "nonce": q(t.nonce),
        "blockHash": None if header is None else to_hex(block_hash(header)),
        "blockNumber": None if header is None else q(header.height),
        "transactionIndex": None if header is None else q(index),
        "from": to_hex(t.sender),
        "to": None if t.to is None else to_hex(t.to),
        "value": q(t.value),
        "gas": q(t.gas_limit),
        "gasPrice": q(price),
        "input": to_hex(t.data),
        "v": q(t.v),
        "r": q(t.r),
        "s": q(t.s),
    }
    if t.type == TYPE_DYNAMIC_FEE:
        out["maxFeePerGas"] = q(t.max_fee_per_gas)
        out["maxPriorityFeePerGas"] = q(t.max_priority_fee_per_gas)
        out["accessList"] = []
        out["yParity"] = q(t.v)
    return out


def _percentile(sorted_values: list[int], p: float) -> int:
    """The value at percentile ``p`` (every transfer uses the same gas: by count)."""
    if not sorted_values:
        return 0
    i = min(len(sorted_values) - 1, int(len(sorted_values) * p / 100))
    return sorted_values[i]


__all__ = [
    "CLIENT_VERSION",
    "SUGGESTED_PRIORITY_FEE",
    "EthNodeState",
    "EthViews",
    "StateUnavailable",
    "q",
]
