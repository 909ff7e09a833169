"""The L1's view of external DA, end to end over HTTP: an attestation verified against the DA
genesis committee, then a blob's pointer verified against it without the blob, then the blob's
bytes against the pointer (what the follower checks)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from l1_mock.da.server import DASettings
from sequencer_node.wire.da import attest
from sequencer_node.wire.da.attest import AttestationError, Committee
from tests.da.helpers import COMMITTEE, DA_CHAIN, USERS, genesis, ns, pfb
from tests.da.test_server import Da, _serve

GENESIS = genesis()
COMMITTEE_SET = Committee(GENESIS.committee)


async def _with(tmp: Path, **settings: Any) -> AsyncIterator[Da]:
    async for d in _serve(tmp, GENESIS, **settings):
        yield d


@pytest.fixture
async def da(tmp_path: Path) -> AsyncIterator[Da]:
    async for d in _with(tmp_path / "da", attestation_window=2, committee_keys=tuple(COMMITTEE)):
        yield d


async def test_attested_pointer_verifies_like_the_l1_would(da: Da) -> None:
    data = b"an L2 batch" * 300
    assert (await da.submit(pfb(USERS[0], 0, ns(4), b"someone else"))).status_code == 200
    assert (await da.submit(pfb(USERS[1], 0, ns(5), data))).status_code == 200
    await da.produce()
    r = await da.http.get("/v1/attestations/latest")
    assert r.status_code == 404  # heights 1..2 are not complete
    r = await da.http.get("/v1/pointers/1/1")
    assert r.status_code == 404
    assert "not attested yet" in r.json()["message"]
    await da.produce()
    att = attest.attestation_from_json((await da.http.get("/v1/attestations/latest")).json())
    assert (att.commitment.nonce, att.commitment.start, att.commitment.end) == (0, 1, 3)
    attest.verify_attestation(att, COMMITTEE_SET, DA_CHAIN)  # what the L1 checks and stores
    body = (await da.http.get("/v1/pointers/1/1")).json()
    assert body["attestationNonce"] == 0
    pointer = attest.pointer_from_json(body["pointer"])
    proof = attest.pointer_proof_from_json(body["proof"])
    attest.verify_pointer(pointer, proof, att.commitment)  # what the L1 inbox checks
    assert pointer.namespace == ns(5)
    got = await da.read_namespace(pointer.height, pointer.namespace)
    assert got == [data]
    assert attest.verify_blob(pointer, got[0])  # what the follower checks
    # a pointer proven against another attestation's root fails
    await da.produce(2)
    other = attest.attestation_from_json((await da.http.get("/v1/attestations/1")).json())
    with pytest.raises(AttestationError, match="not covered"):
        attest.verify_pointer(pointer, proof, other.commitment)


async def test_a_minority_of_the_committee_cannot_attest(tmp_path: Path) -> None:
    async for d in _with(tmp_path / "da", attestation_window=1, committee_keys=(COMMITTEE[0],)):
        await d.produce()
        att = attest.attestation_from_json((await d.http.get("/v1/attestations/0")).json())
        assert len(att.signatures) == 1
        with pytest.raises(AttestationError, match="more than 2/3"):
            attest.verify_attestation(att, COMMITTEE_SET, DA_CHAIN)


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("/v1/attestations/5", "not complete"),
        ("/v1/attestations/x", "ASCII digits"),
        ("/v1/pointers/1/9", "no blob 9"),
        ("/v1/pointers/0/0", "no attestation"),
        ("/v1/pointers/1/\uff10", "ASCII digits"),
    ],
)
async def test_attestation_errors(da: Da, path: str, words: str) -> None:
    await da.produce(2)
    r = await da.http.get(path)
    assert r.status_code in (400, 404), r.text
    assert words in r.json()["message"]


async def test_attestations_can_be_off(tmp_path: Path) -> None:
    async for d in _with(tmp_path / "da", attestation_window=0):
        await d.produce()
        r = await d.http.get("/v1/attestations/latest")
        assert r.status_code == 404
        assert "no attestations" in r.json()["message"]


def test_settings_default_to_a_window_and_no_keys() -> None:
    s = DASettings(Path("x"), 1)
    assert s.attestation_window == 10
    assert s.committee_keys == ()
