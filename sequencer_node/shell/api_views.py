"""The JSON views of the node's HTTP API (``docs/node-api.md``): what ``/v1/status``,
``/v1/blocks/{height}``, ``/v1/tx/{hash}`` and the other reads answer.

The views only read. They look at the node's parts (core, store, peer manager, L1 watcher,
batcher) between two inputs of the core-owning task; Trio's cooperative scheduling makes each
view consistent. They see the node through :class:`NodeState`, so this module does not import
the runner (``node_service``), which imports the HTTP server, which imports this.

Conventions: bytes are ``0x`` hex (:mod:`sequencer_node.wire.hexstr`), amounts decimal strings.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from typing import Any, Protocol

from sequencer_node.batcher.service import BatcherService
from sequencer_node.core.sequencer import SequencerCore
from sequencer_node.genesis import L2Genesis
from sequencer_node.shell.fee_accounting import FeeAccounting
from sequencer_node.shell.fee_views import fees_json
from sequencer_node.shell.l1_watcher import L1Watcher
from sequencer_node.shell.peers import PeerManager
from sequencer_node.shell.store import Store
from sequencer_node.wire.codec import message_id
from sequencer_node.wire.eth import EthTransaction, decode_eth
from sequencer_node.wire.hexstr import opt_hex, to_hex
from sequencer_node.wire.messages import CertifiedBlock, Transaction, block_hash

log = logging.getLogger(__name__)

HEAD_NAMES = ("unsafe", "certified", "safe", "finalized")


@dataclass(frozen=True, slots=True)
class StoredHead:
    """The last committed block written to the store: what the API reports as the certified
    head, so ``/v1/blocks/{height}`` always has it."""

    height: int
    hash: bytes
    state_root: bytes


@dataclass(frozen=True, slots=True)
class Head:
    """One head (unsafe, certified, safe, finalized): a height and its block hash (empty if
    this node does not hold that block)."""

    height: int
    hash: bytes

    def to_json(self) -> dict[str, Any]:
        return {"height": self.height, "hash": to_hex(self.hash)}


class NodeState(Protocol):
    """What the views read from the node (implemented by
    :class:`~sequencer_node.shell.node_service.Node`)."""

    @property
    def core(self) -> SequencerCore | None: ...
    @property
    def store(self) -> Store | None: ...
    @property
    def pm(self) -> PeerManager | None: ...
    @property
    def follower(self) -> L1Watcher | None: ...
    @property
    def batcher(self) -> BatcherService | None: ...
    @property
    def fee_accounting(self) -> FeeAccounting: ...
    @property
    def genesis(self) -> L2Genesis: ...
    @property
    def pk(self) -> bytes | None: ...
    @property
    def da(self) -> str: ...
    @property
    def uptime_s(self) -> float: ...
    @property
    def stored_head(self) -> StoredHead: ...
    @property
    def unsafe_head(self) -> tuple[int, bytes]: ...
    @property
    def catching_up(self) -> bool: ...
    def tx_height(self, tx_hash: bytes) -> int | None: ...


class ApiViews:
    """The read side of the HTTP API over one node."""

    def __init__(self, node: NodeState) -> None:
        self._node = node

    def _core(self) -> SequencerCore:
        core = self._node.core
        assert core is not None, "the node is not open"
        return core

    def _store(self) -> Store:
        store = self._node.store
        assert store is not None, "the node is not open"
        return store

    # --- heads -----------------------------------------------------------------------------

    def _block_hash_at(self, height: int) -> bytes:
        """The hash of the stored block at ``height`` (read from the store's hash column,
        never by decoding the block); empty if this node does not hold it."""
        if height <= 0:
            return self._core().genesis_hash
        stored = self._node.stored_head
        if height == stored.height:
            return stored.hash
        return self._store().block_hash(height) or b""

    def heads(self) -> dict[str, Head]:
        """The four heads, each at most the one before it."""
        stored = self._node.stored_head
        unsafe_h, unsafe_hash = self._node.unsafe_head
        if unsafe_h <= stored.height:
            unsafe_h, unsafe_hash = stored.height, stored.hash
        f = self._node.follower
        safe = min(stored.height, f.safe_height() if f else 0)
        final = min(safe, f.finalized_height() if f else 0)
        return {
            "unsafe": Head(unsafe_h, unsafe_hash),
            "certified": Head(stored.height, stored.hash),
            "safe": Head(safe, self._block_hash_at(safe)),
            "finalized": Head(final, self._block_hash_at(final)),
        }

    def role(self) -> str:
        """``leader``, ``validator`` (in the current epoch's table) or ``follower``."""
        core, pk = self._node.core, self._node.pk
        if core is None or pk is None:
            return "follower"
        st = core.status()
        if st.leader == pk:
            return "leader"
        info = core.epoch_info(st.epoch)
        if info is not None and pk in info.table:
            return "validator"
        return "follower"

    # --- /v1/status ------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        node = self._node
        st = self._core().status()
        f = node.follower
        return {
            "chain_id": node.genesis.chain_id,
            "node_id": opt_hex(node.pk),
            "p2p_id": to_hex(node.pm.identity.public_key) if node.pm is not None else None,
            "role": self.role(),
            "epoch": st.epoch,
            "round": st.round,
            "leader": opt_hex(st.leader),
            **self._peers(),
            "mempool_size": st.mempool_size,
            "mempool_backlog": st.mempool_backlog,
            "blocks_behind": self._core().blocks_behind,
            "catching_up": node.catching_up,
            "heads": {name: head.to_json() for name, head in self.heads().items()},
            "state_root": to_hex(node.stored_head.state_root),
            "l1": {
                "head": f.head if f else 0,
                "finalized": f.finalized if f else 0,
                "up": f.up if f else False,
            },
            "p2p": self._p2p_stats(),
            "last_batch": self._last_batch(),
            "da": node.da,
            "uptime_s": round(node.uptime_s, 3),
        }

    def _last_batch(self) -> dict[str, Any] | None:
        batcher = self._node.batcher
        if batcher is None:
            return None
        try:
            return batcher.status()
        except sqlite3.Error as e:  # e.g. its database is closing: status must still answer
            log.warning("batcher status unavailable: %s", e)
            return {"error": str(e)}

    def _peers(self) -> dict[str, Any]:
        peers = self._node.pm.peers() if self._node.pm is not None else []
        return {
            "peers": len(peers),
            "peer_list": [
                {
                    "id": to_hex(p.identity),
                    "address": p.address,
                    "score": round(p.score, 2),
                    "direction": p.direction,
                }
                for p in peers
            ],
        }

    def _p2p_stats(self) -> dict[str, Any]:
        if self._node.pm is None:
            return {}
        st = self._node.pm.statistics()
        return {
            "messages_in": st.messages_in,
            "messages_out": st.messages_out,
            "bytes_out": st.bytes_out,
            "duplicates_dropped": st.duplicates_dropped,
            "rejected": st.rejected,
            "handshake_failures": st.handshake_failures,
            "handshakes_evicted": st.handshakes_evicted,
            "slow_peer_drops": st.slow_peer_drops,
            "bans": st.bans,
            "offenses": dict(st.offenses),
        }

    # --- blocks, transactions, accounts ----------------------------------------------------

    def block(self, height: int) -> dict[str, Any] | None:
        cb = self._store().get_block(height)
        return None if cb is None else block_json(cb)

    def tx(self, tx_hash: bytes) -> dict[str, Any]:
        node = self._node
        out: dict[str, Any] = {"tx_hash": to_hex(tx_hash), "status": "unknown",
                               "height": None, "batch": None, "l1_block": None}  # fmt: skip
        height = node.tx_height(tx_hash)
        if height is None:
            if self._core().is_pending(tx_hash):
                out["status"] = "pending"
            return out
        out["status"], out["height"] = "certified", height
        loc = node.batcher.tx_location(tx_hash) if node.batcher is not None else None
        if loc is not None:
            out["batch"], out["l1_block"] = loc[0], loc[1]
            out["status"] = "finalized" if loc[2] else "batched"
        elif node.follower is not None:
            entry = node.follower.batch_of(height)
            if entry is not None:
                out["batch"], out["l1_block"] = entry.batch_number, entry.l1_block
                fin = entry.l1_block <= node.follower.finalized
                out["status"] = "finalized" if fin else "batched"
        return out

    def account(self, address: bytes) -> dict[str, Any]:
        core = self._core()
        ledger = core.committed_ledger
        return {
            "address": to_hex(address),
            "balance": str(ledger.balance(address)),
            "nonce": ledger.nonce(address),
            "pending_nonce": core.pending_nonce(address),
            "height": core.committed_height,
        }

    # --- schedule, evidence, batches -------------------------------------------------------

    def schedule(self) -> dict[str, Any]:
        epoch = self._core().status().epoch
        return {"epoch": epoch, "current": self._epoch(epoch), "next": self._epoch(epoch + 1)}

    def _epoch(self, epoch: int) -> dict[str, Any] | None:
        info = self._core().epoch_info(epoch)
        if info is None:
            return None
        return {
            "epoch": epoch,
            "stake_epoch": info.stake_epoch,
            "leaders": [to_hex(pk) for pk in info.order],
            "stakes": {to_hex(pk): str(s) for pk, s in sorted(info.table.items())},
        }

    def evidence(self) -> dict[str, Any]:
        f = self._node.follower
        return {"evidence": [s.to_json() for s in (f.submissions if f is not None else ())]}

    def fees(self) -> dict[str, Any]:
        core, f = self._core(), self._node.follower
        latest = None if f is None else f.last_fee_info
        return fees_json(core.committed_ledger, core.committed_height, latest)

    def batches(self) -> dict[str, Any]:
        if self._node.batcher is None:
            return {"batches": [], "batcher": "not running"}
        acct = self._node.fee_accounting
        return {"batches": [acct.batch_row(r) for r in self._node.batcher.batches()]}


def block_json(cb: CertifiedBlock) -> dict[str, Any]:
    """``/v1/blocks/{height}``: a certified block's header, transactions and QC signers."""
    h = cb.block.header
    return {
        "height": h.height,
        "hash": to_hex(block_hash(h)),
        "parent_hash": to_hex(h.parent_hash),
        "round": h.round,
        "epoch": h.epoch,
        "timestamp_ms": h.timestamp_ms,
        "proposer": to_hex(h.proposer),
        "state_root": to_hex(h.state_root),
        "tx_count": len(cb.block.transactions),
        "forced_count": len(cb.block.forced),
        "transactions": [_tx_json(tx) for tx in cb.block.transactions],
        "eth_tx_count": len(cb.block.eth_transactions),
        "eth_transactions": [_eth_tx_json(e) for e in cb.block.eth_transactions],
        "qc_signers": [to_hex(e.signer) for e in cb.qc.signatures],
    }


def _eth_tx_json(tx: EthTransaction) -> dict[str, Any]:
    """An Ethereum transaction of a block (its full form: the Ethereum JSON-RPC)."""
    e = decode_eth(tx.raw)  # it executed in a certified block: it decodes (cached)
    return {
        "hash": to_hex(e.hash),
        "type": e.type,
        "from": to_hex(e.sender),
        "to": None if e.to is None else to_hex(e.to),
        "value": str(e.value),
        "nonce": e.nonce,
    }


def _tx_json(tx: Transaction) -> dict[str, Any]:
    return {
        "hash": to_hex(message_id(tx)),
        "from": to_hex(tx.sender),
        "to": to_hex(tx.to),
        "amount": str(tx.amount),
        "nonce": tx.nonce,
        "fee": str(tx.fee),
    }


__all__ = [
    "HEAD_NAMES",
    "ApiViews",
    "Head",
    "NodeState",
    "StoredHead",
    "block_json",
]
