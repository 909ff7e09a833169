"""The mock L1's Trio shell: block production on a timer, SQLite persistence, and the HTTP API
(Ethereum JSON-RPC, the staking/inbox/dev namespaces, and the Beacon blob endpoints) served by
hypercorn's Trio worker.

One :class:`L1Node` owns the pure :class:`~l1_mock.chain.ledger.Chain`. Every mutation (a call
accepted, a block mined) happens under one lock together with its SQLite write, so the disk and
the in-memory chain never disagree. KZG checks run in a worker process (ckzg holds the GIL, so
a thread would stall the event loop; see :mod:`l1_mock.kzg_pool`) before the lock is taken.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from l1_mock import genesis as genesis_mod
from l1_mock.chain.ledger import (
    INBOX_ADDRESS,
    STAKING_ADDRESS,
    CallRejected,
    Chain,
    Genesis,
    L1Block,
    retention_floor_epoch,
)
from l1_mock.kzg_pool import KzgVerifier
from l1_mock.store import Store
from sequencer_node.wire.blobs import SLOTS_PER_EPOCH, kzg_to_versioned_hash
from sequencer_node.wire.codec import CodecError, decode, encode
from sequencer_node.wire.crypto import address_of
from sequencer_node.wire.l1calls import SubmitBatch, decode_params
from sequencer_node.wire.messages import L1Call

log = logging.getLogger("l1_mock")

MAX_DEV_MINE = 10_000
MAX_LIST = 1_000
#: An L1Call of 4 MiB of params, hex-encoded, plus JSON framing.
MAX_BODY = 10 * 1024 * 1024
#: JSON-RPC error codes (EIP-1474 where one fits).
INVALID_PARAMS = -32602
METHOD_NOT_FOUND = -32601
REJECTED = -32000
PARSE_ERROR = -32700


class RpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def q(n: int) -> str:
    """An Ethereum JSON-RPC quantity."""
    return hex(n)


def d(b: bytes) -> str:
    """Ethereum JSON-RPC data."""
    return "0x" + b.hex()


def parse_hex(v: Any, what: str, length: int | None = None) -> bytes:
    if not isinstance(v, str) or not v.startswith("0x"):
        raise RpcError(INVALID_PARAMS, f"{what} must be a 0x-prefixed hex string")
    try:
        raw = bytes.fromhex(v[2:])
    except ValueError:
        raise RpcError(INVALID_PARAMS, f"{what} is not valid hex") from None
    if length is not None and len(raw) != length:
        raise RpcError(INVALID_PARAMS, f"{what} must be {length} bytes, got {len(raw)}")
    return raw


def parse_int(v: Any, what: str) -> int:
    if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
        return v
    if isinstance(v, str):
        try:
            return int(v, 16) if v.startswith("0x") else int(v)
        except ValueError:
            pass
    raise RpcError(INVALID_PARAMS, f"{what} must be a non-negative integer or 0x quantity")


@dataclass(frozen=True, slots=True)
class NodeSettings:
    data_dir: Path
    slot_time: float
    auto_mine: bool = True
    #: Processes that verify KZG proofs; 0 verifies in a thread (stalls the loop; tests only).
    kzg_workers: int = 1


class L1Node:
    """The running L1: chain + store + lock. Create with :meth:`open`."""

    def __init__(self, chain: Chain, store: Store, settings: NodeSettings) -> None:
        self.chain = chain
        self.store = store
        self.settings = settings
        self.lock = trio.Lock()
        self.kzg = KzgVerifier(settings.kzg_workers)
        self.new_block = trio.Event()
        self._pool_seq = 0

    @classmethod
    def open(cls, genesis: Genesis, settings: NodeSettings) -> L1Node:
        """Open (or create) the data directory and replay its blocks."""
        store = Store(settings.data_dir / "l1.sqlite")
        stored = store.get_meta("genesis")
        if stored is None:
            store.set_meta("genesis", genesis_mod.dumps(genesis).encode())
        else:
            # The stored genesis wins (the chain must replay identically); retention is node
            # policy, not consensus, so the configured one applies.
            retention = genesis.config.blob_retention_epochs
            genesis = genesis_mod.from_json(json.loads(stored))
            genesis = dataclasses.replace(
                genesis,
                config=dataclasses.replace(genesis.config, blob_retention_epochs=retention),
            )
        chain = Chain(genesis)
        blocks = 0
        for slot, ts, h, items in store.blocks():
            block = chain.apply_block(slot, ts, items)
            if block.hash != h:
                raise RuntimeError(
                    f"replay of block {block.header.number} gave a different hash: the data "
                    f"directory {settings.data_dir} does not match this code or is corrupt"
                )
            blocks += 1
        node = cls(chain, store, settings)
        dropped = 0
        for call in store.pool_calls():
            try:
                node._submit_locked(call, node._trusted_hashes(call))
            except CallRejected:
                dropped += 1
        log.info(
            "opened %s: %d blocks replayed, head %d, %d pooled calls restored (%d dropped)",
            settings.data_dir,
            blocks,
            chain.head.number,
            len(chain.pool),
            dropped,
        )
        return node

    @staticmethod
    def _trusted_hashes(call: L1Call) -> tuple[bytes, ...] | None:
        # Pool entries on disk were KZG-verified when accepted.
        try:
            p = decode_params(call)
        except (CodecError, KeyError):
            return None
        if isinstance(p, SubmitBatch) and p.commitments:
            return tuple(kzg_to_versioned_hash(c) for c in p.commitments)
        return None

    def _submit_locked(self, call: L1Call, hashes: tuple[bytes, ...] | None) -> bytes:
        h = self.chain.submit(call, hashes)
        self._pool_seq += 1
        self.store.add_pool(h, self._pool_seq, call)
        return h

    async def submit(self, call: L1Call) -> bytes:
        """Verify blobs off the event loop, then accept ``call`` (raises CallRejected)."""
        try:
            p = decode_params(call)
        except (CodecError, KeyError) as e:
            raise CallRejected(f"the call's parameters are invalid: {e}") from None
        hashes = None
        if isinstance(p, SubmitBatch) and p.blobs:
            check = await self.kzg.verify(p.blobs, p.commitments, p.proofs)
            if not check.ok:
                raise CallRejected(f"invalid blob: {check.error}")
            hashes = check.versioned_hashes
        async with self.lock:
            h = self.chain.submit(call, hashes)
            self._pool_seq += 1
            # fsync off the event loop; the hash is returned only once the call is durable
            await trio.to_thread.run_sync(self.store.add_pool, h, self._pool_seq, call)
            return h

    async def mine(self, n: int = 1) -> list[L1Block]:
        out: list[L1Block] = []
        for _ in range(n):
            async with self.lock:
                slot = self.chain.head.slot + 1
                ts = self.chain.config.genesis_time + slot * self.chain.config.slot_time
                block = self.chain.mine(slot, ts)
                await trio.to_thread.run_sync(self._persist, block)
            out.append(block)
            self._log_block(block)
            self.new_block.set()
            self.new_block = trio.Event()
        return out

    def _persist(self, block: L1Block) -> None:
        self.store.write_block(block)
        self._prune()

    def _prune(self) -> None:
        floor = retention_floor_epoch(
            self.chain.current_epoch, self.chain.config.blob_retention_epochs
        )
        if floor > 0:
            self.store.prune_blobs(floor * SLOTS_PER_EPOCH)

    def _log_block(self, b: L1Block) -> None:
        h = b.header
        log.info(
            "block %d slot %d epoch %d hash %s txs %d failed %d blobs %d blob_base_fee %d "
            "excess_blob_gas %d fork %s",
            h.number,
            h.slot,
            h.epoch,
            b.hash.hex()[:12],
            len(b.receipts),
            sum(1 for r in b.receipts if r.status == 0),
            h.blob_gas_used // (1 << 17),
            self.chain.current_blob_base_fee(),
            h.excess_blob_gas,
            h.fork,
        )

    async def run_miner(self) -> None:
        """Mine one block per slot time (when auto-mining is on)."""
        if not self.settings.auto_mine:
            await trio.sleep_forever()
        # The stored chain's slot time wins over the flag (timestamps must stay consistent).
        slot = self.chain.config.slot_time
        deadline = trio.current_time()
        while True:
            deadline += slot
            await trio.sleep_until(deadline)
            await self.mine(1)


# --- JSON views ---------------------------------------------------------------------------


def block_json(chain: Chain, b: L1Block, full: bool) -> dict[str, Any]:
    h = b.header
    txs: list[Any] = []
    for i, (call, r) in enumerate(zip(b.calls, b.receipts, strict=True)):
        if not full:
            txs.append(d(r.tx_hash))
            continue
        txs.append(tx_json(b, i, call))
    return {
        "number": q(h.number),
        "hash": d(b.hash),
        "parentHash": d(h.parent_hash),
        "nonce": "0x0000000000000000",
        "sha3Uncles": d(bytes(32)),
        "logsBloom": d(bytes(256)),
        "transactionsRoot": d(h.tx_root),
        "stateRoot": d(bytes(32)),
        "receiptsRoot": d(bytes(32)),
        "miner": d(bytes(20)),
        "difficulty": "0x0",
        "totalDifficulty": "0x0",
        "extraData": "0x",
        "size": q(1000 + 100 * len(b.calls)),
        "gasLimit": q(60_000_000),
        "gasUsed": q(h.gas_used),
        "timestamp": q(h.timestamp),
        "transactions": txs,
        "uncles": [],
        "baseFeePerGas": q(h.base_fee_per_gas),
        "blobGasUsed": q(h.blob_gas_used),
        "excessBlobGas": q(h.excess_blob_gas),
        "mixHash": d(bytes(32)),
        "withdrawals": [],
        "withdrawalsRoot": d(bytes(32)),
        "parentBeaconBlockRoot": d(h.parent_hash),
        # not Ethereum: the slot and fork of this block, for humans
        "slot": q(h.slot),
        "fork": h.fork,
    }


def _to_address(call: L1Call) -> bytes:
    if call.method in ("submitBatch", "queueForced"):
        return INBOX_ADDRESS
    if call.method == "transfer":
        return bytes(decode_params(call).to)
    return STAKING_ADDRESS


def call_input(call: L1Call) -> bytes:
    """What ``eth_getTransaction*`` report as ``input``: the canonical encoding of the call.

    A blob batch's blobs, commitments and proofs are left out of it (so its signature no
    longer verifies over these bytes): as on Ethereum, blob bodies are sidecars served by the
    Beacon API, and the block lists their versioned hashes. A calldata batch carries its data
    here, which is where a derivation follower reads it.
    """
    if call.method == "submitBatch":
        p = decode_params(call)
        if isinstance(p, SubmitBatch) and p.blobs:
            stripped = dataclasses.replace(p, blobs=(), commitments=(), proofs=())
            call = dataclasses.replace(call, params=encode(stripped))
    return encode(call)


def tx_json(b: L1Block, i: int, call: L1Call) -> dict[str, Any]:
    r = b.receipts[i]
    hashes = b.blob_hashes[i]
    out: dict[str, Any] = {
        "hash": d(r.tx_hash),
        "blockHash": d(b.hash),
        "blockNumber": q(b.header.number),
        "transactionIndex": q(i),
        "from": d(address_of(call.sender)),
        "to": d(_to_address(call)),
        "nonce": q(call.nonce),
        "value": "0x0",
        "gas": q(r.gas_used),
        "gasPrice": q(r.effective_gas_price),
        "maxFeePerGas": q(r.effective_gas_price),
        "maxPriorityFeePerGas": "0x0",
        "input": d(call_input(call)),
        "type": "0x3" if hashes else "0x2",
        "chainId": "0x0",
        "accessList": [],
        "method": call.method,
    }
    if hashes:
        p = decode_params(call)
        out["maxFeePerBlobGas"] = q(p.max_fee_per_blob_gas)
        out["blobVersionedHashes"] = [d(x) for x in hashes]
    return out


# --- the API ------------------------------------------------------------------------------


class Api:
    def __init__(self, node: L1Node) -> None:
        self.node = node
        self.methods: dict[str, Callable[[list[Any]], Awaitable[Any]]] = {
            name[4:]: getattr(self, name) for name in dir(self) if name.startswith("rpc_")
        }

    @property
    def chain(self) -> Chain:
        return self.node.chain

    def _block(self, tag: Any) -> L1Block | None:
        c = self.chain
        if tag in ("latest", "pending", "safe", None):
            return c.blocks[-1] if tag != "safe" else c.blocks[c.finalized_block().number]
        if tag == "earliest":
            return c.blocks[0]
        if tag == "finalized":
            return c.blocks[c.finalized_block().number]
        n = parse_int(tag, "block number")
        return c.blocks[n] if n < len(c.blocks) else None

    # eth_*
    async def rpc_eth_chainId(self, p: list[Any]) -> Any:
        return q(self.chain.config.chain_id)

    async def rpc_net_version(self, p: list[Any]) -> Any:
        return str(self.chain.config.chain_id)

    async def rpc_web3_clientVersion(self, p: list[Any]) -> Any:
        return "seqnet-l1-mock/0.1"

    async def rpc_eth_syncing(self, p: list[Any]) -> Any:
        return False

    async def rpc_eth_blockNumber(self, p: list[Any]) -> Any:
        return q(self.chain.head.number)

    async def rpc_eth_getBlockByNumber(self, p: list[Any]) -> Any:
        b = self._block(p[0] if p else "latest")
        return None if b is None else block_json(self.chain, b, bool(p[1]) if len(p) > 1 else False)

    async def rpc_eth_getBlockByHash(self, p: list[Any]) -> Any:
        n = self.chain.block_by_hash.get(parse_hex(p[0] if p else None, "block hash", 32))
        if n is None:
            return None
        return block_json(self.chain, self.chain.blocks[n], bool(p[1]) if len(p) > 1 else False)

    async def rpc_eth_blobBaseFee(self, p: list[Any]) -> Any:
        return q(self.chain.current_blob_base_fee())

    async def rpc_eth_gasPrice(self, p: list[Any]) -> Any:
        return q(self.chain.config.base_fee_per_gas)

    async def rpc_eth_maxPriorityFeePerGas(self, p: list[Any]) -> Any:
        return "0x0"

    async def rpc_eth_getBalance(self, p: list[Any]) -> Any:
        return q(self.chain.balance(parse_hex(p[0] if p else None, "address", 20)))

    async def rpc_eth_getTransactionCount(self, p: list[Any]) -> Any:
        addr = parse_hex(p[0] if p else None, "address", 20)
        pending = len(p) > 1 and p[1] == "pending"
        return q(self.chain.pending_nonce(addr) if pending else self.chain.nonce(addr))

    async def rpc_eth_getTransactionReceipt(self, p: list[Any]) -> Any:
        h = parse_hex(p[0] if p else None, "transaction hash", 32)
        r = self.chain.receipts.get(h)
        if r is None:
            return None
        b = self.chain.blocks[r.block_number]
        call = b.calls[r.index]
        cumulative = sum(x.gas_used for x in b.receipts[: r.index + 1])
        out: dict[str, Any] = {
            "transactionHash": d(h),
            "transactionIndex": q(r.index),
            "blockHash": d(b.hash),
            "blockNumber": q(r.block_number),
            "from": d(address_of(r.sender)),
            "to": d(_to_address(call)),
            "cumulativeGasUsed": q(cumulative),
            "gasUsed": q(r.gas_used),
            "effectiveGasPrice": q(r.effective_gas_price),
            "contractAddress": None,
            "logs": [],
            "logsBloom": d(bytes(256)),
            "status": q(r.status),
            "type": "0x3" if r.blob_gas_used else "0x2",
            "method": r.method,
            "reason": r.reason,
        }
        if r.blob_gas_used:
            out["blobGasUsed"] = q(r.blob_gas_used)
            out["blobGasPrice"] = q(r.blob_gas_price)
        return out

    # seq_*
    async def rpc_seq_sendCall(self, p: list[Any]) -> Any:
        raw = parse_hex(p[0] if p else None, "call")
        try:
            call = decode(raw, L1Call)
        except CodecError as e:
            raise RpcError(INVALID_PARAMS, f"not an encoded L1Call: {e}") from None
        try:
            return d(await self.node.submit(call))
        except CallRejected as e:
            raise RpcError(REJECTED, str(e)) from None

    async def rpc_seq_pendingCalls(self, p: list[Any]) -> Any:
        return [d(h) for h in list(self.chain.pool)[:MAX_LIST]]

    async def rpc_seq_getConfig(self, p: list[Any]) -> Any:
        c = self.chain.config
        return {
            "chainId": c.chain_id,
            "l2ChainId": c.l2_chain_id,
            "genesisTime": c.genesis_time,
            "slotTime": c.slot_time,
            "slotsPerEpoch": SLOTS_PER_EPOCH,
            "forks": [[n, f] for n, f in c.forks],
            "baseFeePerGas": str(c.base_fee_per_gas),
            "minStake": str(c.min_stake),
            "maxStake": str(c.max_stake),
            "unbondingEpochs": c.unbonding_epochs,
            "unjailCooldownEpochs": c.unjail_cooldown_epochs,
            "slashBps": c.slash_bps,
            "reporterShareBps": c.reporter_share_bps,
            "rewardPerBlock": str(c.reward_per_block),
            "sequencingWindow": c.sequencing_window,
            "blobRetentionEpochs": c.blob_retention_epochs,
            "inboxFirstHeight": c.inbox_first_height,
            "inboxAddress": d(INBOX_ADDRESS),
            "stakingAddress": d(STAKING_ADDRESS),
        }

    async def rpc_seq_status(self, p: list[Any]) -> Any:
        c = self.chain
        return {
            "head": c.head.number,
            "headSlot": c.head.slot,
            "epoch": c.current_epoch,
            "finalizedEpoch": c.finalized_epoch(),
            "finalizedBlock": c.finalized_block().number,
            "pool": len(c.pool),
            "blobBaseFee": str(c.current_blob_base_fee()),
            "fork": c.blob_params().fork,
        }

    # staking_*
    def _seq_json(self, s: Any) -> dict[str, Any]:
        return {
            "signingKey": d(s.signing_key),
            "owner": d(s.owner),
            "p2pAddress": s.p2p_address,
            "rpcAddress": s.rpc_address,
            "stake": str(s.stake),
            "unbonding": [[e, str(a)] for e, a in s.unbonding],
            "status": s.status,
            "rewards": str(s.rewards),
            "jailedUntilEpoch": s.jailed_until_epoch,
        }

    async def rpc_staking_getSequencers(self, p: list[Any]) -> Any:
        seqs = sorted(self.chain.sequencers.values(), key=lambda s: s.signing_key)
        return [self._seq_json(s) for s in seqs[:MAX_LIST]]

    async def rpc_staking_getSequencer(self, p: list[Any]) -> Any:
        s = self.chain.sequencers.get(parse_hex(p[0] if p else None, "signing key", 32))
        return None if s is None else self._seq_json(s)

    async def rpc_staking_getSnapshot(self, p: list[Any]) -> Any:
        epoch = self.chain.current_epoch if not p or p[0] == "latest" else parse_int(p[0], "epoch")
        snap = self.chain.snapshot(epoch)
        if snap is None:
            raise RpcError(
                REJECTED,
                f"no stake snapshot for epoch {epoch}: the current epoch is "
                f"{self.chain.current_epoch} and snapshots older than the unbonding period "
                "are dropped",
            )
        return {
            "epoch": epoch,
            "seed": d(snap.seed),
            "finalized": self.chain.snapshot_finalized(epoch),
            "totalStake": str(sum(e.stake for e in snap.entries)),
            "entries": [
                {
                    "signingKey": d(e.signing_key),
                    "owner": d(e.owner),
                    "p2pAddress": e.p2p_address,
                    "rpcAddress": e.rpc_address,
                    "stake": str(e.stake),
                }
                for e in snap.entries
            ],
        }

    # inbox_*
    async def rpc_inbox_getBatches(self, p: list[Any]) -> Any:
        start = parse_int(p[0], "start") if p else 0
        count = min(parse_int(p[1], "count") if len(p) > 1 else 100, MAX_LIST)
        return [
            {
                "batchNumber": b.header.batch_number,
                "header": d(encode(b.header)),
                "l1Block": b.l1_block,
                "txHash": d(b.tx_hash),
                "signers": [d(s) for s in b.signers],
            }
            for b in self.chain.batches[start : start + count]
        ]

    async def rpc_inbox_getLastBatch(self, p: list[Any]) -> Any:
        if not self.chain.batches:
            return None
        return (await self.rpc_inbox_getBatches([len(self.chain.batches) - 1, 1]))[0]

    async def rpc_inbox_getForcedQueue(self, p: list[Any]) -> Any:
        start = parse_int(p[0], "start") if p else 0
        count = min(parse_int(p[1], "count") if len(p) > 1 else 100, MAX_LIST)
        return {
            "length": len(self.chain.forced),
            "consumed": self.chain.batches[-1].header.forced_index if self.chain.batches else 0,
            "entries": [d(encode(f)) for f in self.chain.forced[start : start + count]],
        }

    # dev_*
    async def rpc_dev_mine(self, p: list[Any]) -> Any:
        n = parse_int(p[0], "block count") if p else 1
        if not 1 <= n <= MAX_DEV_MINE:
            raise RpcError(INVALID_PARAMS, f"dev_mine mines 1 to {MAX_DEV_MINE} blocks at once")
        blocks = await self.node.mine(n)
        return q(blocks[-1].header.number)

    # --- HTTP endpoints -------------------------------------------------------------------

    async def jsonrpc(self, request: Request) -> Response:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY:
            return JSONResponse(_err(None, -32600, "request too large"), status_code=413)
        buf = bytearray()
        async for chunk in request.stream():
            buf += chunk
            if len(buf) > MAX_BODY:
                break
        body = bytes(buf)
        if len(body) > MAX_BODY:
            return JSONResponse(_err(None, -32600, "request too large"), status_code=413)
        try:
            req = json.loads(body)
        except ValueError:
            return JSONResponse(_err(None, PARSE_ERROR, "request is not valid JSON"))
        if isinstance(req, list):
            if not req or len(req) > 100:
                return JSONResponse(_err(None, -32600, "a batch holds 1 to 100 requests"))
            return JSONResponse([await self._one(r) for r in req])
        return JSONResponse(await self._one(req))

    async def _one(self, req: Any) -> dict[str, Any]:
        if not isinstance(req, dict) or not isinstance(req.get("method"), str):
            return _err(None, -32600, "invalid JSON-RPC request")
        rid = req.get("id")
        fn = self.methods.get(req["method"])
        if fn is None:
            return _err(rid, METHOD_NOT_FOUND, f"method {req['method']!r} does not exist")
        params = req.get("params", [])
        if not isinstance(params, list):
            return _err(rid, INVALID_PARAMS, "params must be a list")
        try:
            result = await fn(params)
        except RpcError as e:
            return _err(rid, e.code, e.message)
        except (IndexError, TypeError, ValueError) as e:
            return _err(rid, INVALID_PARAMS, f"invalid params: {e}")
        return {"jsonrpc": "2.0", "id": rid, "result": result}

    def _beacon_block(self, block_id: str) -> L1Block | Response:
        c = self.chain
        if block_id == "head":
            return c.blocks[-1]
        if block_id == "genesis":
            return c.blocks[0]
        if block_id == "finalized":
            return c.blocks[c.finalized_block().number]
        if block_id.startswith("0x"):
            try:
                root = bytes.fromhex(block_id[2:])
            except ValueError:
                root = b""
            if len(root) != 32:
                return _beacon_err(400, f"invalid block id {block_id!r}: a root is 0x + 64 hex")
            n = c.block_by_hash.get(root)
            if n is None:
                return _beacon_err(404, f"block {block_id} not found")
            return c.blocks[n]
        if block_id.isdigit():
            b = c.block_at_slot(int(block_id))
            if b is None:
                return _beacon_err(404, f"no block at slot {block_id}")
            return b
        return _beacon_err(
            400, f"invalid block id {block_id!r}: use head, genesis, finalized, a slot or 0x<root>"
        )

    async def _sidecars(self, request: Request) -> tuple[L1Block, list[Any]] | Response:
        found = self._beacon_block(request.path_params["block_id"])
        if isinstance(found, Response):
            return found
        b = found
        if not any(b.blob_hashes):
            return b, []
        if not self.chain.blobs_available(b.header.number):
            cfg = self.chain.config
            floor = retention_floor_epoch(self.chain.current_epoch, cfg.blob_retention_epochs)
            return _beacon_err(
                404,
                f"blobs pruned: block {b.header.number} (slot {b.header.slot}, epoch "
                f"{b.header.epoch}) is older than the retention window of "
                f"{cfg.blob_retention_epochs} epochs; blobs before epoch {floor} are pruned "
                f"(since epoch {b.header.epoch + cfg.blob_retention_epochs + 1})",
            )
        async with self.node.lock:
            sidecars = self.node.store.sidecars(b.header.number)
        return b, sidecars

    async def blob_sidecars(self, request: Request) -> Response:
        got = await self._sidecars(request)
        if isinstance(got, Response):
            return got
        b, sidecars = got
        indices = request.query_params.get("indices")
        wanted = None
        if indices:
            try:
                wanted = {int(x) for x in indices.split(",")}
            except ValueError:
                return _beacon_err(400, "indices must be comma-separated integers")
        h = b.header
        data = [
            {
                "index": str(s.index),
                "blob": d(s.blob),
                "kzg_commitment": d(s.commitment),
                "kzg_proof": d(s.proof),
                "signed_block_header": {
                    "message": {
                        "slot": str(h.slot),
                        "proposer_index": "0",
                        "parent_root": d(h.parent_hash),
                        "state_root": d(bytes(32)),
                        "body_root": d(b.hash),
                    },
                    "signature": d(bytes(96)),
                },
                "kzg_commitment_inclusion_proof": [d(bytes(32))] * 17,
            }
            for s in sidecars
            if wanted is None or s.index in wanted
        ]
        return JSONResponse(
            {
                "version": "deneb",
                "execution_optimistic": False,
                "finalized": self._final(b),
                "data": data,
            },
            headers={"Eth-Consensus-Version": "deneb"},
        )

    async def blobs(self, request: Request) -> Response:
        got = await self._sidecars(request)
        if isinstance(got, Response):
            return got
        b, sidecars = got
        vh = request.query_params.get("versioned_hashes")
        wanted = None
        if vh:
            try:
                wanted = {bytes.fromhex(x.removeprefix("0x")) for x in vh.split(",")}
            except ValueError:
                return _beacon_err(400, "versioned_hashes must be comma-separated 0x hex")
        data = [d(s.blob) for s in sidecars if wanted is None or s.versioned_hash in wanted]
        return JSONResponse(
            {"execution_optimistic": False, "finalized": self._final(b), "data": data}
        )

    def _final(self, b: L1Block) -> bool:
        return b.header.number <= self.chain.finalized_block().number

    async def health(self, request: Request) -> Response:
        return JSONResponse({"ok": True, "head": self.chain.head.number})


def _err(rid: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "error": {"code": code, "message": message}}


def _beacon_err(code: int, message: str) -> Response:
    return JSONResponse({"code": code, "message": message}, status_code=code)


def make_app(node: L1Node) -> Starlette:
    api = Api(node)
    return Starlette(
        routes=[
            Route("/", api.jsonrpc, methods=["POST"]),
            Route("/health", api.health, methods=["GET"]),
            Route("/eth/v1/beacon/blob_sidecars/{block_id}", api.blob_sidecars, methods=["GET"]),
            Route("/eth/v1/beacon/blobs/{block_id}", api.blobs, methods=["GET"]),
        ]
    )


async def serve(
    node: L1Node,
    host: str,
    port: int,
    *,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the API and mine blocks until cancelled; report the bound URL when ready."""
    from hypercorn.config import Config
    from hypercorn.trio import serve as hypercorn_serve

    config = Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.h11_max_incomplete_size = 64 * 1024
    config.graceful_timeout = 1.0
    try:
        async with trio.open_nursery() as nursery:
            # Load the trusted setup in the KZG worker now, not on the first blob batch.
            nursery.start_soon(node.kzg.warm_up)
            binds = await nursery.start(hypercorn_serve, make_app(node), config)
            url = binds[0]
            log.info("L1 mock listening on %s (chain id %d)", url, node.chain.config.chain_id)
            nursery.start_soon(node.run_miner)
            task_status.started(url)
    finally:
        node.kzg.close()


async def serve_until_signal(node: L1Node, host: str, port: int) -> None:
    """Serve until SIGTERM or SIGINT, then stop gracefully (the CLI's ``run``)."""
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve, node, host, port)
            async for signum in signals:
                log.info("%s received: stopping", signal.Signals(signum).name)
                nursery.cancel_scope.cancel()
                break


def default_genesis_time(slot_time: int) -> int:
    """Genesis time for a fresh chain: now, rounded down to a slot boundary."""
    now = int(time.time())
    return now - now % max(slot_time, 1)


def default_retention_epochs(slot_time: int, fault_proof_window_s: int) -> int:
    """Ethereum's 4096 epochs, or more when that is shorter than the fault-proof window."""
    needed = math.ceil(fault_proof_window_s / (SLOTS_PER_EPOCH * slot_time))
    return max(4096, needed)
