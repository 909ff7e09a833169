"""The L1's HTTP server: the routes of the JSON-RPC and Beacon APIs on hypercorn's Trio worker,
with block production running beside it until cancelled or signalled."""

from __future__ import annotations

import logging

import trio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from l1_mock.server.beacon import BeaconApi
from l1_mock.server.jsonrpc import JsonRpc, jsonrpc_endpoint
from l1_mock.server.service import L1Service
from sequencer_node.system.signals import run_until_signal

log = logging.getLogger("l1_mock")


def make_app(service: L1Service) -> Starlette:
    beacon = BeaconApi(service)

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True, "head": service.chain.head.number})

    return Starlette(
        routes=[
            Route(
                "/",
                jsonrpc_endpoint(JsonRpc(service, remote_dev=service.settings.remote_dev)),
                methods=["POST"],
            ),
            Route("/health", health, methods=["GET"]),
            Route("/eth/v1/beacon/blob_sidecars/{block_id}", beacon.blob_sidecars, methods=["GET"]),
            Route("/eth/v1/beacon/blobs/{block_id}", beacon.blobs, methods=["GET"]),
        ]
    )


async def serve(
    service: L1Service,
    host: str,
    port: int,
    *,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the API and mine blocks until cancelled; report the bound URL when ready, which
    includes the KZG worker having loaded the trusted setup (seconds on a busy machine: a blob
    batch sent before would wait for it, past a client's timeout)."""
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
            binds = await nursery.start(hypercorn_serve, make_app(service), config)
            url = binds[0]
            log.info("L1 mock listening on %s (chain id %d)", url, service.chain.config.chain_id)
            nursery.start_soon(service.run_miner)
            # Load the trusted setup in the KZG worker now, not on the first blob batch.
            await service.kzg.warm_up()
            task_status.started(url)
    finally:
        service.kzg.close()


async def serve_until_signal(service: L1Service, host: str, port: int) -> None:
    """Serve until SIGTERM or SIGINT, then stop gracefully (the CLI's ``run``)."""
    await run_until_signal(serve, service, host, port, log=log)
