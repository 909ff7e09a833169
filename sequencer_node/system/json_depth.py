"""How deeply a JSON request body nests, measured on its bytes before any parsing.

Every HTTP server of the project (the node's RPC, its Ethereum JSON-RPC, the L1 mock's
JSON-RPC) refuses a body that nests deeper than its limit *before* handing it to
``json.loads``: the C parser recurses once per level, and a deep enough document exhausts the
stack of the thread that parses it (a segfault, not a RecursionError, on a small thread stack).
"""

from __future__ import annotations

import re

_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_BRACKETS = re.compile(rb"[\[\]{}]")


def json_depth(body: bytes) -> int:
    """How deeply arrays and objects nest in ``body`` (strings skipped); not a validator: a
    malformed body is the parser's to refuse."""
    depth = deepest = 0
    for m in _BRACKETS.finditer(_JSON_STRING.sub(b"", body)):
        depth += 1 if m.group() in (b"[", b"{") else -1
        deepest = max(deepest, depth)
    return deepest


__all__ = ["json_depth"]
