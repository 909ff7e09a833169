"""The JSON-RPC API: Ethereum methods (``eth_*``, ``net_*``, ``web3_*``) and seqnet's own
namespaces (``seq_*``, ``staking_*``, ``inbox_*``, ``dev_*``), served at ``POST /``.

:class:`JsonRpc` answers decoded requests (:meth:`JsonRpc.answer`); :func:`jsonrpc_endpoint`
is the HTTP side (body size limit, JSON parsing, single or batch requests).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from l1_mock.chain import CallRejected, Chain, L1Block
from l1_mock.server.params import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    REJECTED,
    RpcError,
    param,
    parse_body,
    parse_hex,
    parse_int,
)
from l1_mock.server.service import L1Service
from l1_mock.server.views import (
    batch_json,
    block_json,
    config_json,
    data_commitment_json,
    fee_record_json,
    q,
    receipt_json,
    sequencer_json,
    snapshot_json,
    status_json,
)
from sequencer_node.wire.codec import CodecError, decode, encode
from sequencer_node.wire.hexstr import to_hex
from sequencer_node.wire.messages import L1Call

MAX_DEV_MINE = 10_000
MAX_LIST = 1_000
#: Requests in one JSON-RPC batch.
MAX_BATCH = 100
#: An L1Call of 4 MiB of params, hex-encoded, plus JSON framing.
MAX_BODY = 10 * 1024 * 1024

Method = Callable[[list[Any]], Awaitable[Any]]


class JsonRpc:
    """The JSON-RPC methods over one :class:`L1Service`: each ``rpc_<name>`` answers ``name``.

    ``dev_*`` methods answer loopback callers only, unless ``remote_dev`` (``l1-mock run
    --allow-remote-dev-mine``): they let anyone move the chain forward.
    """

    def __init__(self, service: L1Service, *, remote_dev: bool = False) -> None:
        self.service = service
        self.remote_dev = remote_dev
        self.methods: dict[str, Method] = {
            name[4:]: getattr(self, name) for name in dir(self) if name.startswith("rpc_")
        }

    @property
    def chain(self) -> Chain:
        return self.service.chain

    async def answer(self, req: Any, *, loopback: bool = True) -> dict[str, Any]:
        """The response object to one decoded JSON-RPC request; ``loopback``: whether the
        caller connected from a loopback address."""
        if not is_request(req):
            return error(None, INVALID_REQUEST, "invalid JSON-RPC request")
        rid = req.get("id")
        method = req["method"]
        fn = self.methods.get(method)
        if fn is None:
            return error(rid, METHOD_NOT_FOUND, f"method {method[:64]!r} does not exist")
        if method.startswith("dev_") and not (loopback or self.remote_dev):
            return error(
                rid,
                REJECTED,
                f"{method} answers loopback callers only; start the L1 with "
                "--allow-remote-dev-mine to allow it from other hosts",
            )
        params = req.get("params", [])
        if not isinstance(params, list):
            return error(rid, INVALID_PARAMS, "params must be a list")
        try:
            result = await fn(params)
        except RpcError as e:
            return error(rid, e.code, e.message)
        except (IndexError, TypeError, ValueError) as e:
            return error(rid, INVALID_PARAMS, f"invalid params: {e}")
        return {"jsonrpc": "2.0", "id": rid, "result": result}

    def _block(self, tag: Any) -> L1Block | None:
        c = self.chain
        if tag in ("latest", "pending", None):
            return c.blocks[-1]
        if tag == "earliest":
            return c.blocks[0]
        if tag in ("finalized", "safe"):
            return c.blocks[c.finalized_block().number]
        n = parse_int(tag, "block number")
        return c.blocks[n] if n < len(c.blocks) else None

    def _range(self, p: list[Any]) -> slice:
        start = parse_int(param(p, 0, 0), "start")
        count = min(parse_int(param(p, 1, 100), "count"), MAX_LIST)
        return slice(start, start + count)

    # --- eth_*, net_*, web3_* ------------------------------------------------------------

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
        b = self._block(param(p, 0, "latest"))
        return None if b is None else block_json(b, bool(param(p, 1, False)))

    async def rpc_eth_getBlockByHash(self, p: list[Any]) -> Any:
        n = self.chain.block_by_hash.get(parse_hex(param(p, 0), "block hash", 32))
        return None if n is None else block_json(self.chain.blocks[n], bool(param(p, 1, False)))

    async def rpc_eth_blobBaseFee(self, p: list[Any]) -> Any:
        return q(self.chain.current_blob_base_fee())

    async def rpc_eth_gasPrice(self, p: list[Any]) -> Any:
        return q(self.chain.config.base_fee_per_gas)

    async def rpc_eth_maxPriorityFeePerGas(self, p: list[Any]) -> Any:
        return "0x0"

    async def rpc_eth_getBalance(self, p: list[Any]) -> Any:
        return q(self.chain.balance(parse_hex(param(p, 0), "address", 20)))

    async def rpc_eth_getTransactionCount(self, p: list[Any]) -> Any:
        addr = parse_hex(param(p, 0), "address", 20)
        pending = param(p, 1) == "pending"
        return q(self.chain.pending_nonce(addr) if pending else self.chain.nonce(addr))

    async def rpc_eth_getTransactionReceipt(self, p: list[Any]) -> Any:
        r = self.chain.receipts.get(parse_hex(param(p, 0), "transaction hash", 32))
        return None if r is None else receipt_json(self.chain.blocks[r.block_number], r)

    # --- seq_* -----------------------------------------------------------------------------

    async def rpc_seq_sendCall(self, p: list[Any]) -> Any:
        raw = parse_hex(param(p, 0), "call")
        try:
            call = decode(raw, L1Call)
        except CodecError as e:
            raise RpcError(INVALID_PARAMS, f"not an encoded L1Call: {e}") from None
        try:
            return to_hex(await self.service.submit(call))
        except CallRejected as e:
            raise RpcError(REJECTED, str(e)) from None

    async def rpc_seq_pendingCalls(self, p: list[Any]) -> Any:
        return [to_hex(h) for h in list(self.chain.pool)[:MAX_LIST]]

    async def rpc_seq_getL1FeeInfo(self, p: list[Any]) -> Any:
        """``[start, count]``: the L2 fee data of the *finalized* blocks in the range (fewer,
        or none, above the finalized block): docs/l1-api.md."""
        r = self._range(p)
        stop = min(r.stop, self.chain.finalized_block().number + 1)
        return [fee_record_json(self.chain.fee_record(n)) for n in range(r.start, stop)]

    async def rpc_seq_getConfig(self, p: list[Any]) -> Any:
        return config_json(self.chain)

    async def rpc_seq_status(self, p: list[Any]) -> Any:
        return status_json(self.chain)

    # --- staking_* -------------------------------------------------------------------------

    async def rpc_staking_getSequencers(self, p: list[Any]) -> Any:
        seqs = sorted(self.chain.sequencers.values(), key=lambda s: s.signing_key)
        return [sequencer_json(s) for s in seqs[:MAX_LIST]]

    async def rpc_staking_getSequencer(self, p: list[Any]) -> Any:
        s = self.chain.sequencers.get(parse_hex(param(p, 0), "signing key", 32))
        return None if s is None else sequencer_json(s)

    async def rpc_staking_getSnapshot(self, p: list[Any]) -> Any:
        tag = param(p, 0, "latest")
        epoch = self.chain.current_epoch if tag == "latest" else parse_int(tag, "epoch")
        snap = self.chain.snapshot(epoch)
        if snap is None:
            raise RpcError(
                REJECTED,
                f"no stake snapshot for epoch {epoch}: the current epoch is "
                f"{self.chain.current_epoch} and snapshots older than the unbonding period "
                "are dropped",
            )
        return snapshot_json(snap, self.chain.snapshot_finalized(epoch))

    # --- inbox_* ---------------------------------------------------------------------------

    async def rpc_inbox_getBatches(self, p: list[Any]) -> Any:
        return [batch_json(b) for b in self.chain.batches[self._range(p)]]

    async def rpc_inbox_getLastBatch(self, p: list[Any]) -> Any:
        return batch_json(self.chain.batches[-1]) if self.chain.batches else None

    async def rpc_inbox_getForcedQueue(self, p: list[Any]) -> Any:
        return {
            "length": len(self.chain.forced),
            "consumed": self.chain.inbox.forced_consumed(),
            "entries": [to_hex(encode(f)) for f in self.chain.forced[self._range(p)]],
        }

    # --- da_* (the external DA bridge) ----------------------------------------------------

    async def rpc_da_status(self, p: list[Any]) -> Any:
        """What a relayer needs: the next nonce the L1 takes and the first DA height no
        accepted data commitment covers."""
        bridge = self.chain.da_bridge
        return {"nextNonce": bridge.next_nonce, "attestedEnd": bridge.attested_end}

    async def rpc_da_getDataCommitment(self, p: list[Any]) -> Any:
        """The accepted data commitment of a nonce (``latest``: the last one), or null."""
        bridge = self.chain.da_bridge
        tag = param(p, 0, "latest")
        nonce = bridge.next_nonce - 1 if tag == "latest" else parse_int(tag, "nonce")
        c = bridge.commitment(nonce)
        return None if c is None else data_commitment_json(c)

    async def rpc_da_findDataCommitment(self, p: list[Any]) -> Any:
        """The accepted data commitment covering a DA height, or null."""
        c = self.chain.da_bridge.covering(parse_int(param(p, 0), "DA height"))
        return None if c is None else data_commitment_json(c)

    # --- dev_* -----------------------------------------------------------------------------

    async def rpc_dev_mine(self, p: list[Any]) -> Any:
        n = parse_int(param(p, 0, 1), "block count")
        if not 1 <= n <= MAX_DEV_MINE:
            raise RpcError(INVALID_PARAMS, f"dev_mine mines 1 to {MAX_DEV_MINE} blocks at once")
        blocks = await self.service.mine(n)
        return q(blocks[-1].header.number)


def error(rid: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "error": {"code": code, "message": message}}


async def read_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None when it is larger than ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        return None
    buf = bytearray()
    async for chunk in request.stream():
        buf += chunk
        if len(buf) > limit:
            return None
    return bytes(buf)


def is_request(req: Any) -> bool:
    """Whether ``req`` has the shape of a JSON-RPC request (an object with a string method)."""
    return isinstance(req, dict) and isinstance(req.get("method"), str)


def is_loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def jsonrpc_endpoint(api: JsonRpc) -> Callable[[Request], Awaitable[Response]]:
    """The ``POST /`` handler: single requests and batches of up to :data:`MAX_BATCH`.

    A body that is not a request (too large, not JSON, nested too deeply, not a request object,
    an empty or oversized batch) is answered with HTTP 413 or 400 and a JSON-RPC error; a
    well-formed request is answered with HTTP 200, its error (if any) inside, as Ethereum
    clients expect.
    """

    async def endpoint(request: Request) -> Response:
        body = await read_body(request, MAX_BODY)
        if body is None:
            return JSONResponse(error(None, INVALID_REQUEST, "request too large"), status_code=413)
        try:
            req = parse_body(body)
        except RpcError as e:
            return JSONResponse(error(None, e.code, e.message), status_code=400)
        loopback = is_loopback(request.client.host if request.client else None)
        if isinstance(req, list):
            if not req or len(req) > MAX_BATCH:
                message = f"a batch holds 1 to {MAX_BATCH} requests"
                return JSONResponse(error(None, INVALID_REQUEST, message), status_code=400)
            return JSONResponse([await api.answer(r, loopback=loopback) for r in req])
        if not is_request(req):
            return JSONResponse(
                error(None, INVALID_REQUEST, "invalid JSON-RPC request"), status_code=400
            )
        return JSONResponse(await api.answer(req, loopback=loopback))

    return endpoint
