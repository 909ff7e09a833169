"""Run a ``seqctl`` command's async body and map L1/node errors to exit codes 1 and 3."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import trio

from sequencer_node.clients.l1 import BlobsPruned, L1Rejected, L1Unavailable
from sequencer_node.clients.node import NodeClient, NodeRejected, NodeUnavailable
from sequencer_node.system.commandline import EXIT_UNREACHABLE, fail

T = TypeVar("T")


def run_async(fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    """``trio.run(fn, *args)``; unreachable L1/node -> exit 3, refusals -> exit 1."""
    try:
        return trio.run(fn, *args)
    except L1Unavailable as e:
        fail(f"{e}; check --l1-url (or $SEQ_L1_URL) and that the L1 runs", EXIT_UNREACHABLE)
    except L1Rejected as e:
        fail(f"the L1 refused: {e.reason}")
    except BlobsPruned as e:
        fail(str(e))
    except NodeUnavailable as e:
        fail(f"{e}; check --node-url (or $SEQ_NODE_URL) and that the node runs", EXIT_UNREACHABLE)
    except NodeRejected as e:
        fail(f"the node refused: {e}")


def ask_node(node_url: str, request: Callable[[NodeClient], Awaitable[T]]) -> T:
    """One request to the node at ``node_url`` (e.g. ``lambda node: node.fees()``), run as
    :func:`run_async` runs a command's body (same exit codes)."""

    async def go() -> T:
        async with NodeClient(node_url) as node:
            return await request(node)

    return run_async(go)
