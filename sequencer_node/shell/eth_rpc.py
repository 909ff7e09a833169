"""The Ethereum JSON-RPC of the node: JSON-RPC 2.0 at ``POST /`` on the RPC port, the methods a
wallet or web3.py needs for value transfers on the L2 (documented in ``docs/node-api.md``).

Requests are single objects or batches (arrays of at most :data:`MAX_BATCH` requests, run
concurrently and answered in order); the ``eth_sendRawTransaction`` requests of a batch are
decoded in request order and handed to the node as one input in that order, so a sender's
nonces reach the pool in the order it sent them and, when the node's ingress has room for
only some, the ones it sheds (-32005) are the last ones (a wallet resends from the first
refused nonce, as from any refusal). The
body is bounded by the HTTP API's ``MAX_BODY`` and its JSON nesting by :data:`MAX_JSON_DEPTH`.
Errors use the standard codes: -32700 (not JSON), -32600 (not a JSON-RPC 2.0 request, empty or
oversized batch), -32601 (unknown method), -32602 (bad parameters, including undecodable
transaction bytes), -32000 (a transaction the pool refused: nonce, funds, chain id, already
known; or state the node does not serve), -32003 (a transaction this L2 never runs: data,
contract creation, access list), -32005 (the node is overloaded: retry). A refused
transaction's ``error.data`` carries the pool's reason code. Requests without an ``id`` are
notifications and get no answer. Every answer is HTTP 200 except a body over the limit (413).

The reads are :class:`~sequencer_node.shell.eth_views.EthViews`; this module parses parameters
and maps results and refusals to JSON-RPC.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import trio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sequencer_node.core import api
from sequencer_node.shell.eth_views import (
    CLIENT_VERSION,
    SUGGESTED_PRIORITY_FEE,
    EthNodeState,
    EthViews,
    StateUnavailable,
    q,
)
from sequencer_node.shell.rpc import Overloaded, read_body
from sequencer_node.system.json_depth import json_depth
from sequencer_node.wire.eth import (
    MAX_ETH_TX_BYTES,
    TRANSFER_GAS,
    EthTransaction,
    EthTxError,
    decode_eth,
)
from sequencer_node.wire.messages import Transaction

log = logging.getLogger(__name__)

#: Most requests in one batch (geth's default batch limit is 1,000; a wallet sends a few).
MAX_BATCH = 100
#: Deepest JSON nesting of a request (a batch of requests with object parameters needs 4).
MAX_JSON_DEPTH = 8
#: Most blocks one ``eth_feeHistory`` covers (geth: 1,024).
MAX_FEE_HISTORY = 1024
#: Most percentiles one ``eth_feeHistory`` asks for.
MAX_PERCENTILES = 100

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
SERVER_ERROR = -32000
TX_REJECTED = -32003
LIMIT_EXCEEDED = -32005

BLOCK_TAGS = ("latest", "pending", "safe", "finalized", "earliest")
_QUANTITY = re.compile(r"0x(0|[1-9a-fA-F][0-9a-fA-F]{0,63})")

#: The pool's refusals as JSON-RPC errors: code and message prefix (geth's wording, which
#: wallets and libraries recognise).
_REFUSALS: dict[str, tuple[int, str]] = {
    "nonce_too_low": (SERVER_ERROR, "nonce too low"),
    "nonce_too_high": (SERVER_ERROR, "nonce too high"),
    "insufficient_balance": (SERVER_ERROR, "insufficient funds for gas * price + value"),
    "duplicate": (SERVER_ERROR, "already known"),
    "replacement_underpriced": (SERVER_ERROR, "replacement transaction underpriced"),
    "fee_too_low": (SERVER_ERROR, "transaction underpriced"),
    "pool_full": (SERVER_ERROR, "txpool is full"),
    "sender_limit": (SERVER_ERROR, "account limit exceeded"),
    "wrong_chain": (SERVER_ERROR, "invalid chain id for signer"),
    "invalid_transaction": (TX_REJECTED, "transaction rejected"),
    "bad_signature": (TX_REJECTED, "invalid sender"),
}


class RpcError(Exception):
    """An error answer: a JSON-RPC code, a message and optional data."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_json(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            err["data"] = self.data
        return err


def _bad(message: str) -> RpcError:
    return RpcError(INVALID_PARAMS, f"invalid params: {message}")


class EthNode(EthNodeState, Protocol):
    """The node as the Ethereum RPC sees it: the views' state and the transaction input."""

    async def submit_tx(self, tx: EthTransaction) -> api.TxResult: ...

    async def submit_txs(
        self, txs: Sequence[Transaction | EthTransaction]
    ) -> list[api.TxResult]: ...

    def ingress_room(self) -> int: ...


# --- parameter parsing --------------------------------------------------------------------------


def _params(raw: Any, most: int, least: int = 0) -> list[Any]:
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        raise _bad("params must be an array")
    if not least <= len(raw) <= most:
        want = f"{least}" if least == most else f"{least} to {most}"
        raise _bad(f"expected {want} parameters, got {len(raw)}")
    return raw


def parse_quantity(value: Any, what: str) -> int:
    """A ``0x`` hex quantity without leading zeros, below 2**256."""
    if not isinstance(value, str) or not _QUANTITY.fullmatch(value):
        raise _bad(f"{what} must be a 0x-prefixed hex quantity, got {value!r:.80}")
    return int(value, 16)


def parse_data(value: Any, what: str, size: int | None = None) -> bytes:
    """``0x`` hex bytes (``size``: the exact length). ``bytes.fromhex`` alone would also take
    spaces between bytes: the characters are checked first (ASCII letters and digits only; a
    regular expression over a transaction's 230 characters cost more than the conversion)."""
    digits = value[2:] if isinstance(value, str) and value[:2] == "0x" else None
    try:
        if digits is None or not ((digits.isascii() and digits.isalnum()) or digits == ""):
            raise ValueError
        data = bytes.fromhex(digits)
    except ValueError:
        raise _bad(f"{what} must be 0x-prefixed hex bytes, got {value!r:.80}") from None
    if size is not None and len(data) != size:
        raise _bad(f"{what} must be {size} bytes, got {len(data)}")
    return data


def parse_address(value: Any) -> bytes:
    return parse_data(value, "address", 20)


def parse_bool(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise _bad(f"{what} must be true or false")
    return value


class _Handlers:
    """One method per supported JSON-RPC method (see :data:`METHODS`)."""

    def __init__(self, node: EthNode) -> None:
        self.node = node
        self.views = EthViews(node)

    def _height(self, value: Any) -> int:
        """A block parameter (tag or number) as a height."""
        if isinstance(value, str) and value in BLOCK_TAGS:
            return self.views.head_height(value)
        if isinstance(value, str) and value.startswith("0x"):
            return parse_quantity(value, "block number")
        raise _bad(f"block must be a number or one of {', '.join(BLOCK_TAGS)}, got {value!r:.80}")

    def _state_height(self, params: list[Any]) -> int:
        return self._height(params[1] if len(params) > 1 else "latest")

    # --- chain -----------------------------------------------------------------------------

    async def eth_chainId(self, params: Any) -> Any:
        _params(params, 0)
        return q(self.views.chain_id)

    async def net_version(self, params: Any) -> Any:
        _params(params, 0)
        return str(self.views.chain_id)

    async def web3_clientVersion(self, params: Any) -> Any:
        _params(params, 0)
        return CLIENT_VERSION

    async def eth_blockNumber(self, params: Any) -> Any:
        _params(params, 0)
        return q(self.views.head_height("latest"))

    async def eth_syncing(self, params: Any) -> Any:
        _params(params, 0)
        return False

    async def eth_accounts(self, params: Any) -> Any:
        _params(params, 0)
        return []  # the node holds no user keys: wallets sign

    # --- accounts --------------------------------------------------------------------------

    async def eth_getBalance(self, params: Any) -> Any:
        p = _params(params, 2, 1)
        address, height = parse_address(p[0]), self._state_height(p)
        return q(self.views.balance(address, height))

    async def eth_getTransactionCount(self, params: Any) -> Any:
        p = _params(params, 2, 1)
        address = parse_address(p[0])
        if len(p) > 1 and p[1] == "pending":
            return q(self.views.nonce(address, None))
        return q(self.views.nonce(address, self._state_height(p)))

    async def eth_getCode(self, params: Any) -> Any:
        p = _params(params, 2, 1)
        parse_address(p[0])
        self._state_height(p)
        return "0x"  # no contracts on this L2: every account is an externally owned one

    # --- blocks ----------------------------------------------------------------------------

    async def eth_getBlockByNumber(self, params: Any) -> Any:
        p = _params(params, 2, 1)
        full = parse_bool(p[1], "full transactions") if len(p) > 1 else False
        return self.views.block(self._height(p[0]), full)

    async def eth_getBlockByHash(self, params: Any) -> Any:
        p = _params(params, 2, 1)
        bh = parse_data(p[0], "block hash", 32)
        full = parse_bool(p[1], "full transactions") if len(p) > 1 else False
        height = self.views.height_of_hash(bh)
        return None if height is None else self.views.block(height, full)

    # --- transactions ----------------------------------------------------------------------

    async def eth_sendRawTransaction(self, params: Any) -> Any:
        result = await self._submit(self.raw_transaction(params))
        return self.sent(result)

    def raw_transaction(self, params: Any) -> EthTransaction:
        """The transaction of an ``eth_sendRawTransaction``, decoded and its sender recovered
        (cached for the pool); RpcError if it is not a signed transaction."""
        p = _params(params, 1, 1)
        raw = parse_data(p[0], "transaction")
        if not 1 <= len(raw) <= MAX_ETH_TX_BYTES:
            raise _bad(f"transaction of {len(raw)} bytes (1 to {MAX_ETH_TX_BYTES} accepted)")
        try:
            decode_eth(raw)
        except EthTxError as e:
            raise _bad(f"not a signed transaction: {e}") from None
        return EthTransaction(raw)

    @staticmethod
    def sent(result: api.TxResult) -> str:
        """The answer to a submitted transaction: its hash, or the refusal as an RpcError."""
        if result.accepted:
            return "0x" + result.tx_hash.hex()
        reason = result.reason or "rejected"
        if reason == "overloaded":
            raise RpcError(LIMIT_EXCEEDED, f"limit exceeded: {result.detail}",
                           {"reason": "overloaded"})  # fmt: skip
        if reason == "timeout":
            raise RpcError(SERVER_ERROR, "the node did not answer in time; retry",
                           {"reason": "timeout"})  # fmt: skip
        code, prefix = _REFUSALS.get(reason, (SERVER_ERROR, "transaction rejected"))
        raise RpcError(code, f"{prefix}: {result.detail}", {"reason": reason})

    async def _submit(self, tx: EthTransaction) -> api.TxResult:
        try:
            return await self.node.submit_tx(tx)
        except Overloaded as e:
            raise RpcError(
                LIMIT_EXCEEDED, f"limit exceeded: {e}", {"reason": "overloaded"}
            ) from None
        except trio.TooSlowError:
            raise RpcError(SERVER_ERROR, "the node did not answer in time; retry",
                           {"reason": "timeout"}) from None  # fmt: skip

    async def submit_in_order(self, txs: Sequence[EthTransaction]) -> list[api.TxResult]:
        """Hand ``txs`` to the node as one input, in order: what the ingress has room for now
        (a prefix), the rest refused as ``overloaded``."""
        room = self.node.ingress_room()
        results: list[api.TxResult] = []
        if room > 0:
            try:
                results = await self.node.submit_txs(txs[:room])
            except Overloaded:
                results = []
        shed = api.TxResult(b"", False, "overloaded", "the node's ingress is full; retry later")
        return [results[i] if i < len(results) else shed for i in range(len(txs))]

    async def eth_getTransactionByHash(self, params: Any) -> Any:
        p = _params(params, 1, 1)
        return self.views.transaction(parse_data(p[0], "transaction hash", 32))

    async def eth_getTransactionReceipt(self, params: Any) -> Any:
        p = _params(params, 1, 1)
        return self.views.receipt(parse_data(p[0], "transaction hash", 32))

    # --- fees ------------------------------------------------------------------------------

    async def eth_gasPrice(self, params: Any) -> Any:
        _params(params, 0)
        return q(self.views.next_base_fee() + SUGGESTED_PRIORITY_FEE)

    async def eth_maxPriorityFeePerGas(self, params: Any) -> Any:
        _params(params, 0)
        return q(SUGGESTED_PRIORITY_FEE)

    async def eth_feeHistory(self, params: Any) -> Any:
        p = _params(params, 3, 2)
        count = p[0] if isinstance(p[0], int) and not isinstance(p[0], bool) else (
            parse_quantity(p[0], "block count"))  # fmt: skip
        if not 1 <= count <= MAX_FEE_HISTORY:
            raise _bad(f"block count must be 1 to {MAX_FEE_HISTORY}")
        newest = self._height(p[1])
        percentiles = None
        if len(p) > 2 and p[2] is not None:
            percentiles = p[2]
            if not isinstance(percentiles, list) or len(percentiles) > MAX_PERCENTILES:
                raise _bad(f"reward percentiles must be a list of at most {MAX_PERCENTILES}")
            prev = 0.0
            for v in percentiles:
                ok = isinstance(v, int | float) and not isinstance(v, bool)
                if not ok or not prev <= v <= 100:
                    raise _bad("reward percentiles must be increasing numbers in 0..100")
                prev = float(v)
        return self.views.fee_history(count, newest, percentiles)

    async def eth_estimateGas(self, params: Any) -> Any:
        p = _params(params, 2, 1)
        call = p[0]
        if not isinstance(call, dict):
            raise _bad("the call must be an object")
        if len(p) > 1:
            self._height(p[1])
        data = call.get("input", call.get("data"))
        if data is not None and parse_data(data, "input") != b"":
            raise RpcError(TX_REJECTED, "transactions with data are not supported: "
                           "this L2 runs value transfers only")  # fmt: skip
        if call.get("to") is None:
            raise RpcError(TX_REJECTED, "contract creation is not supported: "
                           "this L2 runs value transfers only")  # fmt: skip
        parse_address(call["to"])
        value = parse_quantity(call["value"], "value") if call.get("value") is not None else 0
        if call.get("from") is not None:
            sender = parse_address(call["from"])
            balance = self.views.balance(sender, self.views.head_height("latest"))
            if value > balance:
                raise RpcError(SERVER_ERROR, "insufficient funds for transfer")
        return q(TRANSFER_GAS)


#: Every supported method name.
METHODS = tuple(name for name in vars(_Handlers) if name.startswith(("eth_", "net_", "web3_")))


# --- the endpoint ----------------------------------------------------------------------------


def _answer(id_: Any, result: Any = None, error: RpcError | None = None) -> dict[str, Any]:
    if error is not None:
        return {"jsonrpc": "2.0", "id": id_, "error": error.to_json()}
    return {"jsonrpc": "2.0", "id": id_, "result": result}


def _valid_id(request: dict[str, Any]) -> bool:
    id_ = request.get("id")
    return id_ is None or (isinstance(id_, str | int) and not isinstance(id_, bool))


class EthRpc:
    """Parses JSON-RPC requests and calls the handlers."""

    def __init__(self, node: EthNode) -> None:
        self._handlers = _Handlers(node)
        self._methods: dict[str, Callable[[Any], Awaitable[Any]]] = {
            name: getattr(self._handlers, name) for name in METHODS
        }

    async def call(self, request: Any) -> dict[str, Any] | None:
        """The answer to one request (None for a notification)."""
        if not isinstance(request, dict) or not _valid_id(request):
            return _answer(None, error=RpcError(INVALID_REQUEST, "invalid request"))
        id_ = request.get("id")
        notification = "id" not in request
        if request.get("jsonrpc") != "2.0" or not isinstance(request.get("method"), str):
            what = 'invalid request: expected {"jsonrpc": "2.0", "method": ...}'
            return _answer(id_, error=RpcError(INVALID_REQUEST, what))
        method = self._methods.get(request["method"])
        if method is None:
            error = RpcError(METHOD_NOT_FOUND, f"the method {request['method']:.64} does not "
                             "exist/is not available")  # fmt: skip
            return None if notification else _answer(id_, error=error)
        try:
            result = await method(request.get("params"))
        except RpcError as e:
            return None if notification else _answer(id_, error=e)
        except StateUnavailable as e:
            return None if notification else _answer(id_, error=RpcError(SERVER_ERROR, str(e)))
        except Exception:
            log.exception("eth RPC %s failed", request["method"])
            return _answer(id_, error=RpcError(INTERNAL_ERROR, "internal error; see the log"))
        return None if notification else _answer(id_, result)

    async def handle_body(self, body: bytes) -> Any:
        """The JSON answer to a request body (None: nothing to answer)."""
        if json_depth(body) > MAX_JSON_DEPTH:
            return _answer(None, error=RpcError(PARSE_ERROR, f"parse error: JSON nested deeper "
                                                f"than {MAX_JSON_DEPTH} levels"))  # fmt: skip
        try:
            doc = json.loads(body)
        except (ValueError, RecursionError) as e:
            return _answer(None, error=RpcError(PARSE_ERROR, f"parse error: {e}"))
        if not isinstance(doc, list):
            return await self.call(doc)
        if not doc:
            return _answer(None, error=RpcError(INVALID_REQUEST, "invalid request: empty batch"))
        if len(doc) > MAX_BATCH:
            return _answer(None, error=RpcError(
                INVALID_REQUEST, f"invalid request: batch of {len(doc)} requests, at most "
                f"{MAX_BATCH}"))  # fmt: skip
        # Concurrently; the transactions go to the node as one input in request order (see the
        # module docstring): they share the node's journal write and nonces stay in order.
        answers: list[dict[str, Any] | None] = [None] * len(doc)

        async def one(i: int, request: Any) -> None:
            answers[i] = await self.call(request)

        async with trio.open_nursery() as nursery:
            sends: list[tuple[int, dict[str, Any], EthTransaction]] = []
            for i, request in enumerate(doc):
                if not _is_send(request):
                    nursery.start_soon(one, i, request)
                    continue
                try:
                    sends.append(
                        (i, request, self._handlers.raw_transaction(request.get("params")))
                    )
                except RpcError as e:
                    answers[i] = None if "id" not in request else _answer(request["id"], error=e)
                except Exception:
                    log.exception("eth RPC eth_sendRawTransaction failed")
                    error = RpcError(INTERNAL_ERROR, "internal error; see the log")
                    answers[i] = _answer(request.get("id"), error=error)
            if sends:
                await self._send_all(sends, answers)
        return [a for a in answers if a is not None] or None

    async def _send_all(
        self,
        sends: list[tuple[int, dict[str, Any], EthTransaction]],
        answers: list[dict[str, Any] | None],
    ) -> None:
        try:
            results = await self._handlers.submit_in_order([tx for _, _, tx in sends])
        except Exception:
            log.exception("eth RPC eth_sendRawTransaction (a batch of %d) failed", len(sends))
            error = RpcError(INTERNAL_ERROR, "internal error; see the log")
            for i, request, _ in sends:
                answers[i] = _answer(request.get("id"), error=error)
            return
        for (i, request, _), result in zip(sends, results, strict=True):
            if "id" not in request:
                continue  # a notification
            try:
                answers[i] = _answer(request["id"], self._handlers.sent(result))
            except RpcError as e:
                answers[i] = _answer(request["id"], error=e)


def _is_send(request: Any) -> bool:
    """A well-formed ``eth_sendRawTransaction`` request (else :meth:`EthRpc.call` answers)."""
    return (
        isinstance(request, dict)
        and request.get("method") == "eth_sendRawTransaction"
        and request.get("jsonrpc") == "2.0"
        and _valid_id(request)
    )


def eth_route(node: EthNode) -> Route:
    """``POST /``: the Ethereum JSON-RPC endpoint over ``node``."""
    rpc = EthRpc(node)

    async def endpoint(request: Request) -> Response:
        answer = await rpc.handle_body(await read_body(request))
        if answer is None:
            return Response(status_code=204)
        return JSONResponse(answer)

    return Route("/", endpoint, methods=["POST"])


__all__ = [
    "MAX_BATCH",
    "METHODS",
    "EthNode",
    "EthRpc",
    "RpcError",
    "eth_route",
]
