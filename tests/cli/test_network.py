"""``seqctl status|leaders|evidence|batches|blob`` against a real L1 mock and the fake node."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from sequencer_node.clients.l1 import L1Client
from sequencer_node.system.commandline import EXIT_FAILED, EXIT_UNREACHABLE
from sequencer_node.wire.blobs import BYTES_PER_BLOB, kzg_to_versioned_hash
from sequencer_node.wire.codec import encode
from sequencer_node.wire.crypto import SigningKey
from sequencer_node.wire.l1calls import SubmitBatch, make_call
from tests.cli.conftest import L1, Node, running_l1, seqctl
from tests.l1.helpers import L1_CHAIN, OTHER, OWNERS, SEQ_KEYS, batch_header, batch_params
from tests.l1.test_staking import double_vote

Keystore = Callable[[SigningKey], Path]


def test_status(fake_node: Node) -> None:
    r = seqctl("status", "--node-url", fake_node.url, "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["role"] == "leader"
    heads = data["heads"]
    assert heads["unsafe"]["height"] == heads["certified"]["height"] + 1
    assert data["node_url"] == fake_node.url
    r = seqctl("status", "--node-url", fake_node.url)
    assert r.exit_code == 0, r.output
    assert "(leader)" in r.stdout
    assert "unsafe " in r.stdout
    assert "finalized " in r.stdout
    assert "L1 block 118" in r.stdout
    assert "127.0.0.1:9002" in r.stdout  # the peer table
    r = seqctl("status", "--node-url", "http://127.0.0.1:9")
    assert r.exit_code == EXIT_UNREACHABLE
    assert "check --node-url" in r.stderr


def test_status_shows_the_last_batch_state(fake_node: Node) -> None:
    # issue 14, friction 6: the state was always "-" (/v1/status has no state; /v1/batches has)
    fake = fake_node.fake
    fake.status_extra["last_batch"] = {"number": 7, "first_height": 1, "last_height": 9,
                                       "l1_block": 118}  # fmt: skip
    fake.batches = [{"number": 7, "state": "accepted"}, {"number": 8, "state": "posted"}]
    r = seqctl("status", "--node-url", fake_node.url, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["last_batch"]["state"] == "accepted"
    r = seqctl("status", "--node-url", fake_node.url)
    assert "accepted, L1 block 118" in r.stdout


def test_status_and_batches_show_a_stalled_batcher(fake_node: Node, l1: L1) -> None:
    # issue 16: a refused or stalled batch is visible in seqctl status and seqctl batches
    fake = fake_node.fake
    stall = {
        "batch": 3,
        "reason": "batch 3: rejected: first_height 2; expected 1",
        "since": 1.0,
        "seconds": 42.0,
    }
    fake.status_extra["last_batch"] = {
        "number": 2,
        "first_height": 1,
        "last_height": 9,
        "l1_block": 118,
        "stalled": stall,
        "abandoned": 1,
    }
    r = seqctl("status", "--node-url", fake_node.url)
    assert r.exit_code == 0, r.output
    assert "STALLED at batch 3 for 42.0 s: batch 3: rejected: first_height 2" in r.stdout
    assert "(1 certificates abandoned)" in r.stdout
    r = seqctl("batches", "--l1-url", l1.url, "--node-url", fake_node.url, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["batching"]["stalled"]["batch"] == 3
    r = seqctl("batches", "--l1-url", l1.url, "--node-url", fake_node.url)
    assert "batching: STALLED at batch 3" in r.stdout
    fake.status_extra["last_batch"] = {"number": 2, "stalled": None, "abandoned": 0}
    r = seqctl("status", "--node-url", fake_node.url)
    assert "batching" in r.stdout
    assert "STALLED" not in r.stdout


def test_leaders(fake_node: Node) -> None:
    r = seqctl("leaders", "--node-url", fake_node.url, "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["current"]["epoch"] == 3
    assert len(data["next"]["leaders"]) == 4
    r = seqctl("leaders", "--node-url", fake_node.url)
    assert r.exit_code == 0
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["schedule", "epoch", "position", "leader", "stake"]
    assert lines[2].split() == ["current", "3", "0", "0x" + "11" * 32, "50.0%"]
    assert lines[-1].split() == ["next", "4", "2-3", "0x" + "11" * 32, "-"]


def test_evidence_list_and_submit(
    l1: L1, fake_node: Node, keystore: Keystore, pwfile: Path, tmp_path: Path
) -> None:
    r = seqctl("evidence", "list", "--node-url", fake_node.url)
    assert r.exit_code == 0
    assert r.stdout.strip() == "no evidence"
    offender = SEQ_KEYS[1].public_key
    fake_node.fake.evidence.append(
        {
            "kind": "double_vote",
            "offender": "0x" + offender.hex(),
            "round": 5,
            "submitted": False,
            "l1_tx": None,
        }
    )
    r = seqctl("evidence", "list", "--node-url", fake_node.url, "--json")
    assert r.exit_code == 0
    assert json.loads(r.stdout)["evidence"][0]["round"] == 5

    ev = tmp_path / "ev.hex"
    ev.write_text("0x" + encode(double_vote(SEQ_KEYS[1])).hex() + "\n")
    base = ["--from", str(keystore(OTHER)), "--password-file", str(pwfile), "--l1-url", l1.url]
    r = seqctl("evidence", "submit", str(ev), *base, "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["kind"] == "DoubleVote"
    assert out["offender"] == "0x" + offender.hex()
    assert out["offender_status"] == "slashed"
    assert out["offender_stake"] == "27000"  # 10 % of 30000 slashed
    # binary works too; the same offence is refused by the L1 with its reason
    ev.write_bytes(encode(double_vote(SEQ_KEYS[1])))
    r = seqctl("evidence", "submit", str(ev), *base)
    assert r.exit_code == EXIT_FAILED
    assert "the L1 refused the evidence" in r.stderr
    ev.write_text("not evidence at all")
    r = seqctl("evidence", "submit", str(ev), *base)
    assert r.exit_code == EXIT_FAILED
    assert "does not hold encoded evidence" in r.stderr
    ev.write_bytes(encode(batch_header(l1.node.chain)))
    r = seqctl("evidence", "submit", str(ev), *base)
    assert r.exit_code == EXIT_FAILED
    assert "holds a BatchHeader, not evidence" in r.stderr


def test_batches_and_blob_get(fake_node: Node, tmp_path: Path) -> None:
    with running_l1(tmp_path / "l1", blob_retention_epochs=1) as l1:
        r = seqctl("batches", "--l1-url", l1.url)
        assert r.exit_code == 0
        assert "no batches" in r.stdout
        chain = l1.node.chain
        # a calldata batch, then a 2-blob batch, each mined by the on-demand miner
        l1.bg.call(_submit, l1.url, batch_params(batch_header(chain, blocks=4)))
        l1.mine(1)
        p = batch_params(batch_header(chain, blocks=6, blobs=2))
        l1.bg.call(_submit_trusted, l1, p)
        l1.mine(1)
        assert len(chain.batches) == 2
        fake_node.fake.batches.extend(
            [{"number": 0, "txs": 10, "bytes": 1000}, {"number": 1, "txs": 0, "bytes": 0}]
        )
        r = seqctl("batches", "--l1-url", l1.url, "--node-url", fake_node.url, "--json")
        assert r.exit_code == 0, r.output
        data = json.loads(r.stdout)
        first, second = data["batches"]
        assert (first["number"], first["first_height"], first["last_height"]) == (0, 1, 4)
        assert (first["da"], first["bytes"], first["txs"], first["bytes_per_tx"]) == (
            "calldata",
            5,
            10,
            100.0,
        )
        assert int(first["fee_wei"]) > 0
        assert (second["da"], second["blobs"], second["first_height"]) == ("blobs", 2, 5)
        assert int(second["fee_wei"]) > int(first["fee_wei"]) // 10
        human = seqctl("batches", "--l1-url", l1.url, "--last", "1")
        assert human.exit_code == 0
        assert "blobs x2" in human.stdout
        assert "pass --node-url" in human.stdout
        assert "2 batches on the L1" in human.stdout

        block = second["l1_block"]
        out = tmp_path / "blobs.bin"
        r = seqctl("blob", "get", str(block), "--l1-url", l1.url, "--out", str(out), "--json")
        assert r.exit_code == 0, r.output
        got = json.loads(r.stdout)
        assert [b["index"] for b in got["blobs"]] == [0, 1]
        assert got["blobs"][0]["versioned_hash"] == "0x" + p.certificate.header.blob_hashes[0].hex()
        assert out.stat().st_size == 2 * BYTES_PER_BLOB
        r = seqctl("blob", "get", str(block), "--index", "1", "--l1-url", l1.url)
        assert r.exit_code == 0
        assert "1 blob\n" in r.stdout
        r = seqctl("blob", "get", str(block), "--index", "5", "--l1-url", l1.url)
        assert r.exit_code == EXIT_FAILED
        assert "no blob at index 5" in r.stderr
        r = seqctl("blob", "get", "99999", "--l1-url", l1.url)
        assert r.exit_code == EXIT_FAILED
        assert "does not exist yet" in r.stderr
        r = seqctl("blob", "get", "soon", "--l1-url", l1.url)
        assert r.exit_code == EXIT_FAILED
        # past the retention window (1 epoch): a clear message saying since when
        l1.mine(2 * 32)
        r = seqctl("blob", "get", str(block), "--l1-url", l1.url)
        assert r.exit_code == EXIT_FAILED
        assert "no longer served" in r.stderr
        assert "since epoch 2" in r.stderr
    r = seqctl("batches", "--l1-url", "http://127.0.0.1:9")
    assert r.exit_code == EXIT_UNREACHABLE


async def _submit_trusted(l1: L1, params: SubmitBatch) -> None:
    """Pool a blob batch without the L1's KZG check (its proofs are known good: the all-zero
    blob), which would load the trusted setup (seconds) for nothing."""
    call = make_call(params, OWNERS[0], l1.node.chain.pending_nonce(OWNERS[0].address), L1_CHAIN)
    async with l1.node.lock:
        l1.node.pool_verified(call, tuple(kzg_to_versioned_hash(c) for c in params.commitments))


async def _submit(url: str, params: object) -> None:
    async with L1Client(url) as client:
        await client.submit_batch(params, OWNERS[0])  # type: ignore[arg-type]
