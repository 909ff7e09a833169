"""The compression ratio a proposer learns from its last batch, and the next cut it guides:
the ratio is measured on the same body estimate :func:`pick_count` scales (not on the blocks'
encoding, which the proposer would otherwise make a second time only for its length)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import cast

import pytest

from sequencer_node.batcher.builder import draft_batch, estimate_body_bytes, pick_count
from sequencer_node.batcher.kzg_worker import Prepared
from sequencer_node.batching.compression import Algorithm
from sequencer_node.clients.l1 import L1Client
from sequencer_node.wire import codec
from sequencer_node.wire.l1calls import MAX_CALLDATA
from tests.batcher.helpers import KEYS, l2_chain
from tests.batcher.test_service import Net, make_service


def test_the_learned_ratio_lets_the_next_cut_take_what_the_last_payload_held(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocks = l2_chain(25, 30)
    last = blocks[:20]
    draft = draft_batch(last, algorithm=Algorithm.BROTLI, da="calldata", max_payload=MAX_CALLDATA)
    # The service is not run: no L1 is reached, no worker started.
    svc = make_service(tmp_path, cast(L1Client, None), KEYS[0], Net(), da="calldata")
    encodes = 0
    real = codec.encode

    def counting(msg: object) -> bytes:
        nonlocal encodes
        encodes += 1
        return real(msg)

    monkeypatch.setattr("sequencer_node.batcher.service.encode", counting)
    svc._learn_ratio(Prepared(draft, (), ()), blocks)
    assert encodes == 0  # learning reads no encoding
    estimate = sum(estimate_body_bytes(b) for b in last)
    assert svc._ratio == pytest.approx(len(draft.payload) / estimate * 1.1)
    # A payload limit 10 % over the last payload (the learned margin): the next cut over the
    # same kind of blocks takes as many as that payload held, not one more.
    limit = math.ceil(len(draft.payload) * 1.1) + 1
    count = pick_count(
        blocks,
        now_ms=blocks[0].block.header.timestamp_ms,
        max_payload=limit,
        fill_target=0.9,
        max_age_ms=10**9,
        ratio=svc._ratio,
    )
    assert count == len(last)
