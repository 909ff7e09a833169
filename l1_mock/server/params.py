"""Parsing of JSON-RPC parameters into typed values, with the JSON-RPC error to answer when a
parameter is malformed."""

from __future__ import annotations

from typing import Any

#: JSON-RPC error codes (EIP-1474 where one fits).
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
REJECTED = -32000


class RpcError(Exception):
    """An error answer: JSON-RPC ``code`` and ``message``."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


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


def param(params: list[Any], i: int, default: Any = None) -> Any:
    """The ``i``-th positional parameter, or ``default`` when it is absent."""
    return params[i] if len(params) > i else default
