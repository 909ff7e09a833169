"""The nesting check every JSON endpoint runs on a body's bytes before parsing it."""

from __future__ import annotations

import json
from unittest import mock

import pytest

from l1_mock.server.params import MAX_JSON_DEPTH, PARSE_ERROR, RpcError, parse_body
from sequencer_node.system.json_depth import json_depth


def test_depth_counts_arrays_and_objects_and_skips_strings() -> None:
    assert json_depth(b'{"a": [1, {"b": "[[[{"}]}') == 3
    assert json_depth(b'"\\"[[["') == 0
    assert json_depth(b"42") == 0


def test_the_l1_refuses_a_deep_body_without_parsing_it() -> None:
    # json.loads recursed once per level in C: a deep enough body crashed the L1's process
    # (a segfault under load) before the depth of the parsed document was checked.
    body = b"[" * 200_000 + b"]" * 200_000
    with (
        mock.patch.object(json, "loads", side_effect=AssertionError("parsed")),
        pytest.raises(RpcError) as e,
    ):
        parse_body(body)
    assert e.value.code == PARSE_ERROR
    assert str(MAX_JSON_DEPTH) in e.value.message
