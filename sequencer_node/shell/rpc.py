"""The node's HTTP API (starlette, served by hypercorn's Trio worker): JSON under ``/v1``,
``/health`` and Prometheus ``/metrics``. Documented in ``docs/node-api.md``.

Conventions: bytes are ``0x`` hex, amounts decimal strings (``POST /v1/txs`` takes a binary
msgpack body, the lean path for many transactions, and answers JSON); every error, including
an unknown path or method, is ``{"error": {"code": "...", "message": "..."}}`` with 400
(malformed request), 404 (unknown), 405 (wrong method), 413 (body too large), 422 (a
transaction the node refused), 429 (ingress full: retry later, see below), 500 (a bug: no
traceback in the answer), 503 (shutting down, too slow, or ``CATCHING_UP``: far behind the
network, send to another node). Request bodies are limited to
``MAX_BODY`` bytes (``MAX_BATCH_BODY`` for a batch) and JSON nesting to ``MAX_JSON_DEPTH``;
heights are ASCII decimal numbers up to ``MAX_HEIGHT``.

Ingress is bounded (issue 13, the overload collapse): the node says how many more client
transactions it takes now (:meth:`NodeApi.ingress_room`: its pool and its input queue have
bounds well below their hard limits). A submission finding no room is answered 429
``OVERLOADED`` with ``Retry-After`` *before* its body is decoded, and the items of a batch
past the room come back ``OVERLOADED`` undecoded: open-loop load past saturation costs the
node an HTTP request per batch, not a strict decode, a signature check and gossip per
transaction that the chain cannot order anyway (before: certified throughput fell to a
fraction of saturation while the pool grew).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, Protocol

import msgpack
import trio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sequencer_node.core import api
from sequencer_node.shell.metrics import NodeMetrics
from sequencer_node.system.json_depth import json_depth
from sequencer_node.wire.codec import CodecError, decode
from sequencer_node.wire.crypto import parse_address
from sequencer_node.wire.hexstr import from_hex, to_hex
from sequencer_node.wire.messages import Transaction

log = logging.getLogger(__name__)

#: A transaction is ~200 bytes; 64 KiB leaves room and bounds what a client can make us read.
MAX_BODY = 64 * 1024
#: Most transactions in one ``POST /v1/txs`` (the node's input queue holds 4096 items).
MAX_BATCH_TXS = 1024
#: A batch body: ``MAX_BATCH_TXS`` transfers of ~200 bytes with room for larger ones.
MAX_BATCH_BODY = 1024 * 1024
#: The largest encoded transaction a batch item may be (a transfer is ~200 bytes).
MAX_TX_BYTES = 4096
#: Deepest JSON nesting a request body may have (``{"tx": ...}`` needs 1).
MAX_JSON_DEPTH = 8
#: Heights are SQLite integers: anything above is refused before it reaches the store.
MAX_HEIGHT = 2**63 - 1


class Overloaded(Exception):
    """The node's input queue is full: the client should retry later (HTTP 429)."""


class Views(Protocol):
    """The JSON reads (implemented by :class:`~sequencer_node.shell.api_views.ApiViews`)."""

    def tx(self, tx_hash: bytes) -> dict[str, Any]: ...
    def block(self, height: int) -> dict[str, Any] | None: ...
    def account(self, address: bytes) -> dict[str, Any]: ...
    def status(self) -> dict[str, Any]: ...
    def schedule(self) -> dict[str, Any]: ...
    def evidence(self) -> dict[str, Any]: ...
    def batches(self) -> dict[str, Any]: ...
    def fees(self) -> dict[str, Any]: ...


class NodeApi(Protocol):
    """What the API needs from the node (implemented by
    :class:`~sequencer_node.shell.node_service.Node`;
    a Protocol so that this module does not import the runner)."""

    @property
    def metrics(self) -> NodeMetrics: ...
    @property
    def views(self) -> Views: ...
    async def submit_tx(self, tx: Transaction) -> api.TxResult: ...
    async def submit_txs(self, txs: Sequence[Transaction]) -> list[api.TxResult]: ...
    def ingress_room(self) -> int:
        """How many more client transactions the node takes now (0: shed with 429)."""
        ...

    # Optional: ``ingress_closed() -> str | None``, why the node takes no client transaction
    # at all now (shed with 503 CATCHING_UP instead of 429), else None.


#: Seconds a shed client is told to wait (``Retry-After``).
RETRY_AFTER_S = 1


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


class BadRequest(ValueError):
    """A malformed request: answered 400 with the message."""


def parse_json_body(body: bytes) -> object:
    """The JSON document of a request body, with its nesting bounded (a deep document would
    exhaust the parser's recursion); BadRequest otherwise."""
    if json_depth(body) > MAX_JSON_DEPTH:
        raise BadRequest(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as e:
        raise BadRequest(f"not JSON: {e}") from None


def parse_height(text: str) -> int:
    """A block height in a path: ASCII decimal digits (not every character that
    ``str.isdigit`` accepts, such as superscripts or Arabic-Indic digits), at most
    :data:`MAX_HEIGHT`."""
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(MAX_HEIGHT)):
        raise BadRequest("height must be a non-negative decimal integer")
    height = int(text)
    if height > MAX_HEIGHT:
        raise BadRequest(f"height must be at most {MAX_HEIGHT}")
    return height


def parse_tx_body(body: bytes) -> Transaction:
    """``{"tx": "0x<canonical Transaction>"}``; BadRequest otherwise."""
    doc = parse_json_body(body)
    if not isinstance(doc, dict) or not isinstance(doc.get("tx"), str):
        raise BadRequest('expected {"tx": "0x<encoded Transaction>"}')
    try:
        return decode(from_hex(doc["tx"], what="tx"), Transaction)
    except ValueError as e:
        raise BadRequest(f'expected {{"tx": "0x<encoded Transaction>"}}: {e}') from None
    except CodecError as e:
        raise BadRequest(f"not a canonical Transaction: {e}") from None


def parse_txs_body(body: bytes) -> list[Transaction]:
    """A msgpack array of 1..``MAX_BATCH_TXS`` byte strings, each the canonical encoding of a
    Transaction (strictly decoded); BadRequest naming the first bad item otherwise."""
    return split_txs_body(body, MAX_BATCH_TXS)[0]


def split_txs_body(body: bytes, admit: int) -> tuple[list[Transaction], list[bytes]]:
    """:func:`parse_txs_body` for the first ``admit`` items only: those decoded, and the raw
    items after them (left undecoded: the node has no room for them)."""
    items = _batch_items(body)
    txs: list[Transaction] = []
    for i, item in enumerate(items[:admit]):
        try:
            txs.append(decode(item, Transaction, max_bytes=MAX_TX_BYTES))
        except CodecError as e:
            raise BadRequest(f"item {i}: not a canonical Transaction: {e}") from None
    return txs, items[admit:]


def _batch_items(body: bytes) -> list[bytes]:
    """The items of a batch body: a non-empty msgpack array of byte strings."""
    try:
        items = msgpack.unpackb(
            body,
            raw=False,
            use_list=True,
            max_array_len=MAX_BATCH_TXS,
            max_map_len=0,
            max_str_len=0,
            max_ext_len=0,
            max_bin_len=MAX_TX_BYTES,
        )
    except (ValueError, msgpack.UnpackException) as e:  # includes ExtraData and the limits
        raise BadRequest(
            f"expected a msgpack array of at most {MAX_BATCH_TXS} encoded Transactions "
            f"(bin, at most {MAX_TX_BYTES} bytes each): {type(e).__name__}: {e}"
        ) from None
    if type(items) is not list or not items:
        raise BadRequest("expected a non-empty msgpack array of encoded Transactions")
    for i, item in enumerate(items):
        if type(item) is not bytes:
            raise BadRequest(f"item {i}: expected bin (an encoded Transaction)")
    return items


def shed_result(raw: bytes) -> api.TxResult:
    """The answer for a batch item past the node's room (its hash is the sha256 of its bytes,
    the transaction hash if they are canonical: the item was not decoded)."""
    return api.TxResult(hashlib.sha256(raw).digest(), False, "overloaded", "ingress full")


def _overloaded(message: str) -> JSONResponse:
    resp = _error(429, "OVERLOADED", message)
    resp.headers["Retry-After"] = str(RETRY_AFTER_S)
    return resp


def tx_result_json(result: api.TxResult) -> dict[str, Any]:
    """One item of the ``POST /v1/txs`` answer: the code is the one ``POST /v1/tx`` would
    answer with 422 (or 429 ``OVERLOADED``)."""
    if result.accepted:
        return {"tx_hash": to_hex(result.tx_hash), "accepted": True}
    code = (result.reason or "rejected").upper()
    return {"tx_hash": to_hex(result.tx_hash), "accepted": False, "code": code,
            "message": result.detail or str(result.reason)}  # fmt: skip


@contextlib.contextmanager
def _malformed_on_value_error() -> Iterator[None]:
    """A parser's ValueError is the client's mistake here (elsewhere it would be a bug)."""
    try:
        yield
    except ValueError as e:
        raise BadRequest(str(e)) from None


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The request body, refused with 413 past ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"request body over {limit} bytes")
    return b"".join(chunks)


class _Handlers:
    """The request handlers of one node's API (parsing and status codes; the views build
    the JSON)."""

    def __init__(self, node: NodeApi) -> None:
        self.node = node
        self.views = node.views

    async def submit_tx(self, request: Request) -> Response:
        body = await read_body(request)
        if self.node.ingress_room() <= 0:
            return self._shed(1)
        tx = parse_tx_body(body)
        try:
            result = await self.node.submit_tx(tx)
        except Overloaded as e:
            return _overloaded(str(e))
        except trio.TooSlowError:
            return _error(503, "TIMEOUT", "the node did not answer in time; retry")
        if not result.accepted:
            code = (result.reason or "rejected").upper()
            msg = f"{result.reason}: {result.detail}" if result.detail else str(result.reason)
            return _error(422, code, msg)
        return JSONResponse({"tx_hash": to_hex(result.tx_hash), "status": "pending"})

    async def submit_txs(self, request: Request) -> Response:
        body = await read_body(request, MAX_BATCH_BODY)
        room = self.node.ingress_room()
        if room <= 0:
            return self._shed(len(_batch_items(body)))
        txs, shed = split_txs_body(body, room)
        try:
            results = await self.node.submit_txs(txs)
        except Overloaded as e:
            return _overloaded(str(e))
        except trio.TooSlowError:
            return _error(503, "TIMEOUT", "the node did not answer in time; retry")
        if shed:
            self.node.metrics.rpc_tx.labels("overloaded").inc(len(shed))
            results = [*results, *(shed_result(raw) for raw in shed)]
        items = [tx_result_json(r) for r in results]
        accepted = sum(1 for r in results if r.accepted)
        return JSONResponse({"accepted": accepted, "results": items})

    def _shed(self, n: int) -> Response:
        ask = getattr(self.node, "ingress_closed", None)
        closed: str | None = ask() if ask is not None else None
        self.node.metrics.rpc_tx.labels("overloaded" if closed is None else "catching_up").inc(n)
        if closed is not None:  # catching up: another node can take it now
            resp = _error(503, "CATCHING_UP", closed)
            resp.headers["Retry-After"] = str(RETRY_AFTER_S)
            return resp
        return _overloaded("the node's ingress is full; retry later")

    async def tx_status(self, request: Request) -> Response:
        with _malformed_on_value_error():
            tx_hash = from_hex(request.path_params["tx_hash"], 32, "tx_hash")
        return JSONResponse(self.views.tx(tx_hash))

    async def block(self, request: Request) -> Response:
        height = parse_height(request.path_params["height"])
        doc = self.views.block(height)
        if doc is None:
            return _error(404, "NOT_FOUND", f"no certified block at height {height} on this node")
        return JSONResponse(doc)

    async def account(self, request: Request) -> Response:
        with _malformed_on_value_error():
            address = parse_address(request.path_params["address"])
        return JSONResponse(self.views.account(address))

    async def health(self, request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def metrics(self, request: Request) -> Response:
        metrics = self.node.metrics
        return Response(metrics.render(), media_type=metrics.content_type)


def _getter(fn: Callable[[], dict[str, Any]]) -> Callable[[Request], Awaitable[Response]]:
    async def handler(request: Request) -> Response:
        return JSONResponse(fn())

    return handler


def make_app(node: NodeApi, extra_routes: Sequence[BaseRoute] = ()) -> Starlette:
    """The API over ``node``; ``extra_routes`` are served too (the Ethereum JSON-RPC at ``/``,
    :mod:`sequencer_node.shell.eth_rpc`)."""
    h, views = _Handlers(node), node.views
    return Starlette(
        exception_handlers={
            BadRequest: _malformed,
            HTTPException: _http_error,
            Exception: _internal_error,
        },
        routes=[
            Route("/v1/tx", h.submit_tx, methods=["POST"]),
            Route("/v1/txs", h.submit_txs, methods=["POST"]),
            Route("/v1/tx/{tx_hash}", h.tx_status, methods=["GET"]),
            Route("/v1/blocks/{height}", h.block, methods=["GET"]),
            Route("/v1/status", _getter(views.status), methods=["GET"]),
            Route("/v1/account/{address}", h.account, methods=["GET"]),
            Route("/v1/schedule", _getter(views.schedule), methods=["GET"]),
            Route("/v1/evidence", _getter(views.evidence), methods=["GET"]),
            Route("/v1/batches", _getter(views.batches), methods=["GET"]),
            Route("/v1/fees", _getter(views.fees), methods=["GET"]),
            Route("/health", h.health, methods=["GET"]),
            Route("/metrics", h.metrics, methods=["GET"]),
            *extra_routes,
        ],
    )


async def _malformed(request: Request, exc: Exception) -> Response:
    return _error(400, "MALFORMED", str(exc))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "TOO_LARGE"}.get(
        exc.status_code, "BAD_REQUEST"
    )
    return _error(exc.status_code, code, str(exc.detail))


async def _internal_error(request: Request, exc: Exception) -> Response:
    """A bug: logged with its traceback, answered with a JSON error that carries none."""
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return _error(500, "INTERNAL", "internal error; see the node's log")


async def serve_rpc(
    node: NodeApi,
    host: str,
    port: int,
    shutdown_trigger: Callable[[], Awaitable[Any]],
    *,
    extra_routes: Sequence[BaseRoute] = (),
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the API until ``shutdown_trigger`` returns; ``started(url)`` once bound.

    Raises OSError if the address cannot be bound (e.g. the port is in use).
    """
    from hypercorn.config import Config
    from hypercorn.trio import serve

    config = Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.h11_max_incomplete_size = 16 * 1024
    config.graceful_timeout = 2.0
    config.keep_alive_timeout = 5.0
    app = make_app(node, extra_routes)
    async with trio.open_nursery() as nursery:
        urls: list[str] = await nursery.start(
            functools.partial(serve, app, config, shutdown_trigger=shutdown_trigger)  # type: ignore[arg-type]
        )
        task_status.started(urls[0])
