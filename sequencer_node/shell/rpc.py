"""The node's HTTP API (starlette, served by hypercorn's Trio worker): JSON under ``/v1``,
``/health`` and Prometheus ``/metrics``. Documented in ``docs/node-api.md``.

Conventions: bytes are ``0x`` hex, amounts decimal strings; errors are
``{"error": {"code": "...", "message": "..."}}`` with 400 (malformed request), 404 (unknown),
422 (a transaction the node refused), 429 (input queue full: retry later), 503 (shutting
down or too slow). Request bodies are limited to ``MAX_BODY`` bytes.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import trio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sequencer_node.core import api
from sequencer_node.shell.metrics import NodeMetrics
from sequencer_node.wire.codec import CodecError, decode
from sequencer_node.wire.crypto import parse_address
from sequencer_node.wire.hexstr import from_hex, to_hex
from sequencer_node.wire.messages import Transaction

log = logging.getLogger(__name__)

#: A transaction is ~200 bytes; 64 KiB leaves room and bounds what a client can make us read.
MAX_BODY = 64 * 1024


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


class NodeApi(Protocol):
    """What the API needs from the node (implemented by
    :class:`~sequencer_node.shell.node_service.Node`;
    a Protocol so that this module does not import the runner)."""

    @property
    def metrics(self) -> NodeMetrics: ...
    @property
    def views(self) -> Views: ...
    async def submit_tx(self, tx: Transaction) -> api.TxResult: ...


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def make_app(node: NodeApi) -> Starlette:
    views = node.views

    async def submit_tx(request: Request) -> Response:
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                return _error(413, "TOO_LARGE", f"request body over {MAX_BODY} bytes")
        try:
            doc = json.loads(body)
            raw = bytes.fromhex(str(doc["tx"]).removeprefix("0x"))
            tx = decode(raw, Transaction)
        except (ValueError, KeyError, TypeError) as e:
            return _error(400, "MALFORMED", f'expected {{"tx": "0x<encoded Transaction>"}}: {e}')
        except CodecError as e:
            return _error(400, "MALFORMED", f"not a canonical Transaction: {e}")
        try:
            result = await node.submit_tx(tx)
        except Overloaded as e:
            return _error(429, "OVERLOADED", str(e))
        except trio.TooSlowError:
            return _error(503, "TIMEOUT", "the node did not answer in time; retry")
        if not result.accepted:
            code = (result.reason or "rejected").upper()
            msg = f"{result.reason}: {result.detail}" if result.detail else str(result.reason)
            return _error(422, code, msg)
        return JSONResponse({"tx_hash": to_hex(result.tx_hash), "status": "pending"})

    async def tx_status(request: Request) -> Response:
        try:
            h = from_hex(request.path_params["tx_hash"], 32, "tx_hash")
        except ValueError as e:
            return _error(400, "MALFORMED", str(e))
        return JSONResponse(views.tx(h))

    async def block(request: Request) -> Response:
        text = request.path_params["height"]
        if not text.isdigit() or len(text) > 20:
            return _error(400, "MALFORMED", "height must be a non-negative integer")
        doc = views.block(int(text))
        if doc is None:
            return _error(404, "NOT_FOUND", f"no certified block at height {text} on this node")
        return JSONResponse(doc)

    async def account(request: Request) -> Response:
        try:
            address = parse_address(request.path_params["address"])
        except ValueError as e:
            return _error(400, "MALFORMED", str(e))
        return JSONResponse(views.account(address))

    def getter(fn: Callable[[], dict[str, Any]]) -> Callable[[Request], Awaitable[Response]]:
        async def handler(request: Request) -> Response:
            return JSONResponse(fn())

        return handler

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def metrics(request: Request) -> Response:
        return Response(node.metrics.render(), media_type=node.metrics.content_type)

    return Starlette(
        routes=[
            Route("/v1/tx", submit_tx, methods=["POST"]),
            Route("/v1/tx/{tx_hash}", tx_status, methods=["GET"]),
            Route("/v1/blocks/{height}", block, methods=["GET"]),
            Route("/v1/status", getter(views.status), methods=["GET"]),
            Route("/v1/account/{address}", account, methods=["GET"]),
            Route("/v1/schedule", getter(views.schedule), methods=["GET"]),
            Route("/v1/evidence", getter(views.evidence), methods=["GET"]),
            Route("/v1/batches", getter(views.batches), methods=["GET"]),
            Route("/health", health, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ]
    )


async def serve_rpc(
    node: NodeApi,
    host: str,
    port: int,
    shutdown_trigger: Callable[[], Awaitable[Any]],
    *,
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
    app = make_app(node)
    async with trio.open_nursery() as nursery:
        urls: list[str] = await nursery.start(
            functools.partial(serve, app, config, shutdown_trigger=shutdown_trigger)  # type: ignore[arg-type]
        )
        task_status.started(urls[0])
