"""Fuzz targets (Hypothesis, bounded by the profile: 100 inputs each in CI) for the L1's request
parsers (issue 12): the JSON-RPC body parser, the parameter parsers, the method dispatch and the
Beacon block ids. Whatever comes in, the answer is a JSON-RPC error or a Beacon 400/404, never
an unexpected exception (which the HTTP server would turn into a 500)."""

from __future__ import annotations

import atexit
import dataclasses
import shutil
import tempfile
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import trio
from hypothesis import given
from hypothesis import strategies as st

from l1_mock.server import L1Service, L1Settings
from l1_mock.server.beacon import BeaconError, find_block
from l1_mock.server.jsonrpc import JsonRpc
from l1_mock.server.params import (
    INVALID_PARAMS,
    MAX_JSON_DEPTH,
    MAX_QUANTITY,
    PARSE_ERROR,
    RpcError,
    json_depth,
    parse_body,
    parse_hex,
    parse_int,
)
from tests.l1.helpers import genesis

#: Strings that have broken number parsers: signs, underscores, whitespace, non-ASCII digits.
TRICKY = st.sampled_from(
    ["-1", "+1", " 1", "1 ", "1_0", "0x", "0x-1", "-0x1", "0X1", "\u00b2", "\u0661", "\uff11",
     "1e3", "0x" + "f" * 16, "0x1" + "0" * 16, "9" * 21, "18446744073709551615",
     "18446744073709551616", "latest", "", "0b1", "0o7", "١٢"]
)  # fmt: skip
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text() | TRICKY,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


@cache
def _api() -> JsonRpc:
    g = genesis()
    g = dataclasses.replace(g, config=dataclasses.replace(g.config, genesis_time=1_700_000_000))
    data = Path(tempfile.mkdtemp(prefix="l1-fuzz-"))
    service = L1Service.open(g, L1Settings(data, 2, False, kzg_workers=0))
    atexit.register(shutil.rmtree, data, ignore_errors=True)
    atexit.register(service.store.close)
    trio.run(service.mine, 3)
    return JsonRpc(service)


def _outcome(fn: Callable[..., Any], *args: Any) -> tuple[Any, Exception | None]:
    """(result, None) or (None, the RpcError/BeaconError raised): anything else propagates."""
    try:
        return fn(*args), None
    except (RpcError, BeaconError) as e:
        return None, e


@given(st.binary(max_size=512) | JSON.map(lambda v: repr(v).encode()))
def test_any_body_parses_or_is_a_parse_error(body: bytes) -> None:
    doc, err = _outcome(parse_body, body)
    if isinstance(err, RpcError):
        assert err.code == PARSE_ERROR
    else:
        assert json_depth(doc, MAX_JSON_DEPTH) <= MAX_JSON_DEPTH


@given(st.integers(min_value=1, max_value=5000))
def test_any_nesting_is_parsed_or_refused(depth: int) -> None:
    for body in (b"[" * depth + b"]" * depth, b'{"a":' * depth + b"0" + b"}" * depth):
        _, err = _outcome(parse_body, body)
        if depth <= MAX_JSON_DEPTH:
            assert err is None
        else:
            assert isinstance(err, RpcError)
            assert err.code == PARSE_ERROR


@given(JSON)
def test_numbers_are_ascii_non_negative_and_bounded(v: Any) -> None:
    n, err = _outcome(parse_int, v, "n")
    if isinstance(err, RpcError):
        assert err.code == INVALID_PARAMS
        return
    assert 0 <= n <= MAX_QUANTITY
    if isinstance(v, str):
        assert v.isascii()
        assert v.strip() == v
        assert "_" not in v
        assert not v.startswith(("-", "+"))


@given(JSON | st.text(alphabet="0x123456789abcdefABCDEF \n_-", max_size=20).map("0x{}".format))
def test_hex_data_is_strict(v: Any) -> None:
    raw, err = _outcome(parse_hex, v, "data")
    if isinstance(err, RpcError):
        assert err.code == INVALID_PARAMS
        return
    assert isinstance(v, str)
    assert "0x" + raw.hex() == v.lower()


METHODS = sorted(m for m in _api().methods if not m.startswith("dev_"))


@given(
    st.sampled_from(METHODS) | st.text(max_size=12),
    st.lists(JSON, max_size=3) | JSON,
    JSON,
)
def test_any_request_gets_a_result_or_a_json_rpc_error(method: str, params: Any, rid: Any) -> None:
    api = _api()
    resp = trio.run(api.answer, {"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
    assert set(resp) == {"jsonrpc", "id", "result"} or set(resp) == {"jsonrpc", "id", "error"}
    if "error" in resp:
        assert isinstance(resp["error"]["code"], int)
        assert isinstance(resp["error"]["message"], str)


@given(st.text(max_size=80) | TRICKY)
def test_any_beacon_block_id_is_found_or_a_400_or_404(block_id: str) -> None:
    _, err = _outcome(find_block, _api().chain, block_id)
    if err is not None:
        assert isinstance(err, BeaconError)
        assert err.status in (400, 404)
