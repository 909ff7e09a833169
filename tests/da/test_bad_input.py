"""Bad input of every shape gets a 4xx with a JSON error, never a 500 or a hang."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.da.helpers import USERS, genesis, ns, pfb
from tests.da.test_server import Da, _serve, pfb_json

NASTY_SEGMENTS = [
    "", "0", "00", "-0", "+1", " 1", "1 ", "1.0", "1e2", "0x1", "\u0661", "\uff11", "\u00b2",
    "9" * 19, "9" * 20, "9" * 400, "head", "HEAD", "latest", "null", "%00", "%2F", "..",
    "0x", "0x" + "0" * 57, "0x" + "0" * 58, "0x" + "f" * 58, "0x" + "g" * 58, "0X" + "0" * 58,
    "0x" + "00" * 20, "\u00e9", "\ud7ff",
]  # fmt: skip
PATHS = [
    "/v1/headers/{a}",
    "/v1/blocks/{a}/blobs",
    "/v1/blobs/{a}/{b}",
    "/v1/blobs/1/{b}",
    "/v1/accounts/{a}",
    "/v1/attestations/{a}",
    "/v1/pointers/{a}/{b}",
    "/v1/pointers/1/{b}",
]
VALUES: list[Any] = [
    None, True, False, -1, 0, 1.5, 2**64, 2**200, "", "0x", "0x0", "0xzz", "1", "-1", "\u0661",
    [], {}, [1], {"a": 1}, "0x" + "00" * 29, "0x" + "00" * 32, "0x" + "00" * 64, "x" * 1000,
]  # fmt: skip


@pytest.fixture
async def da(tmp_path: Path) -> AsyncIterator[Da]:
    async for d in _serve(tmp_path / "da", genesis(), attestation_window=1):
        yield d


def _check(r: Any) -> None:
    assert r.status_code < 500, (r.request.url, r.text)
    if r.status_code >= 400:
        body = r.json()
        assert body["code"] == r.status_code
        assert isinstance(body["message"], str)
        assert body["message"]


async def test_nasty_path_segments(da: Da) -> None:
    assert (await da.submit(pfb(USERS[0], 0, ns(1), b"x"))).status_code == 200
    await da.produce(2)
    rng = random.Random(15)
    for template in PATHS:
        for a in NASTY_SEGMENTS:
            b = rng.choice(NASTY_SEGMENTS)
            _check(await da.http.get(template.format(a=a, b=b)))


async def test_nasty_submission_bodies(da: Da) -> None:
    good = pfb_json(pfb(USERS[0], 0, ns(1), b"x"))
    rng = random.Random(15)
    for key in good:
        for v in VALUES:
            _check(await da.http.post("/v1/blobs", json={**good, key: v}))
    for _ in range(60):
        body = {k: rng.choice([*VALUES, good[k]]) for k in good if rng.random() < 0.9}
        body.update({rng.choice(["extra", "Nonce"]): 1} if rng.random() < 0.2 else {})
        _check(await da.http.post("/v1/blobs", json=body))
    for raw in [b"", b"null", b"1", b'"s"', b"[", b"{" * 10_000, json.dumps([good]).encode()]:
        _check(await da.http.post("/v1/blobs", content=raw))
    # only the untouched submission (e.g. "nonce": 0 is its own value) may have got in
    assert [pfb_json(p) for p in da.node.chain.pool.values()] in ([], [good])
