"""Parsing of JSON-RPC requests and parameters into typed values, with the error to answer when
something is malformed. Pure: no I/O, so it can be fuzzed on its own (tests/l1/test_fuzz_rpc.py).

Rules (issue 12): numbers are ASCII only (``0x`` + hex digits, or decimal digits), never
negative, and at most :data:`MAX_QUANTITY` (2**64 - 1), so a number reaching the chain or SQLite
is always in range; hex data is ``0x`` + an even number of ASCII hex digits; a request body
nests at most :data:`MAX_JSON_DEPTH` levels.
"""

from __future__ import annotations

import json
import re
from typing import Any

from sequencer_node.system.json_depth import json_depth as raw_json_depth

#: JSON-RPC error codes (EIP-1474 where one fits).
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
REJECTED = -32000

#: The largest number a parameter may hold (the wire codec's U64).
MAX_QUANTITY = 2**64 - 1
#: Containers nested in one request body (a JSON-RPC request needs 4: batch, request, params,
#: a parameter object).
MAX_JSON_DEPTH = 32

_HEX_QUANTITY = re.compile(r"0x[0-9a-fA-F]{1,64}")
_DECIMAL = re.compile(r"[0-9]{1,78}")
_HEX_DATA = re.compile(r"0x(?:[0-9a-fA-F]{2})*")


class RpcError(Exception):
    """An error answer: JSON-RPC ``code`` and ``message``."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def parse_body(body: bytes) -> Any:
    """The decoded JSON of a request body; RpcError(PARSE_ERROR) if it is not JSON or nests
    deeper than :data:`MAX_JSON_DEPTH`."""
    if raw_json_depth(body) > MAX_JSON_DEPTH:
        raise RpcError(PARSE_ERROR, f"request nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        doc = json.loads(body)
    except RecursionError:
        raise RpcError(PARSE_ERROR, f"request nests deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError:
        raise RpcError(PARSE_ERROR, "request is not valid JSON") from None
    if json_depth(doc, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise RpcError(PARSE_ERROR, f"request nests deeper than {MAX_JSON_DEPTH} levels")
    return doc


def json_depth(doc: Any, limit: int) -> int:
    """How deeply ``doc`` nests lists and objects, counted up to ``limit + 1`` (iterative: a
    deep document cannot exhaust the stack)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(doc, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (list, dict)):
            depth += 1
            deepest = max(deepest, depth)
            if deepest > limit:
                return deepest
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, depth) for child in children)
    return deepest


def parse_hex(v: Any, what: str, length: int | None = None) -> bytes:
    if not isinstance(v, str) or not v.startswith("0x"):
        raise RpcError(INVALID_PARAMS, f"{what} must be a 0x-prefixed hex string")
    if not _HEX_DATA.fullmatch(v):
        raise RpcError(INVALID_PARAMS, f"{what} is not valid hex (0x and pairs of 0-9a-f)")
    raw = bytes.fromhex(v[2:])
    if length is not None and len(raw) != length:
        raise RpcError(INVALID_PARAMS, f"{what} must be {length} bytes, got {len(raw)}")
    return raw


def parse_int(v: Any, what: str, maximum: int = MAX_QUANTITY) -> int:
    """A non-negative integer at most ``maximum``: a JSON integer, a ``0x`` quantity or a
    decimal string of ASCII digits."""
    n: int | None = None
    if isinstance(v, int) and not isinstance(v, bool):
        n = v
    elif isinstance(v, str) and _HEX_QUANTITY.fullmatch(v):
        n = int(v, 16)
    elif isinstance(v, str) and _DECIMAL.fullmatch(v):
        n = int(v)
    if n is None or n < 0:
        raise RpcError(
            INVALID_PARAMS, f"{what} must be a non-negative integer or 0x quantity, got {v!r:.40}"
        )
    if n > maximum:
        raise RpcError(INVALID_PARAMS, f"{what} {n} is out of range (at most {maximum})")
    return n


def param(params: list[Any], i: int, default: Any = None) -> Any:
    """The ``i``-th positional parameter, or ``default`` when it is absent."""
    return params[i] if len(params) > i else default
