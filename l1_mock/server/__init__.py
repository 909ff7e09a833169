"""The mock L1's Trio shell, one job per module: :mod:`.service` (the running chain, its store
and block production), :mod:`.views` (JSON views of blocks, receipts, stake), :mod:`.params`
(JSON-RPC parameter parsing), :mod:`.jsonrpc` (the JSON-RPC methods), :mod:`.beacon` (the
Beacon blob endpoints), :mod:`.http` (the routes and the hypercorn server)."""

from l1_mock.server.http import make_app, serve, serve_until_signal
from l1_mock.server.service import L1Service, L1Settings

__all__ = ["L1Service", "L1Settings", "make_app", "serve", "serve_until_signal"]
