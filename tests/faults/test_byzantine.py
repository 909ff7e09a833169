"""The test-only byzantine mode (:mod:`sequencer_node.shell.byzantine`): refused without the
test flag; each strategy injects what it says, and what it injects is valid evidence (the L1's
own check, ``verify_evidence``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from sequencer_node.cli.sequencer_node_command import main
from sequencer_node.shell.byzantine import (
    ENV_ALLOW,
    MAX_INJECTIONS,
    Byzantine,
    ByzantineRefused,
    Strategy,
    parse_strategies,
    require_allowed,
)
from sequencer_node.shell.p2p_messages import TxBatch
from sequencer_node.wire.certificates import verify_evidence
from sequencer_node.wire.crypto import SigningKey, sign_message, verify_message
from sequencer_node.wire.messages import (
    Block,
    BlockHeader,
    DoubleProposal,
    DoubleVote,
    Proposal,
    Vote,
)

CHAIN = 901
KEY = SigningKey.from_seed(b"\x07" * 32)
PEERS = [bytes([i]) * 32 for i in (1, 2, 3)]


class FakePeers:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes | None, object, bool]] = []

    def broadcast(self, msg: object) -> int:
        self.sent.append((None, msg, True))
        return len(PEERS)

    def send_to(self, peer: bytes, msg: object, *, gossip: bool = False) -> bool:
        self.sent.append((peer, msg, gossip))
        return True

    def connected(self) -> list[bytes]:
        return list(PEERS)


def block(round_: int) -> Block:
    h = BlockHeader(5, round_, 0, b"\x01" * 32, 1_000, KEY.public_key, b"\x02" * 32,
                    b"\x03" * 32, 0, 0)  # fmt: skip
    return Block(sign_message(Proposal(h, bytes(64)), KEY, CHAIN), (), (), None, None)


def vote(round_: int) -> Vote:
    return sign_message(Vote(b"\x04" * 32, 5, round_, 0, KEY.public_key, bytes(64)), KEY, CHAIN)


def records(tmp_path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (tmp_path / "byzantine.jsonl").read_text().splitlines()]


def test_refused_without_the_test_flag() -> None:
    with pytest.raises(ByzantineRefused):
        require_allowed({})
    require_allowed({ENV_ALLOW: "1"})
    with pytest.raises(ByzantineRefused):
        parse_strategies("equivocate,be-nice")
    assert parse_strategies("twin, gossip-flood") == {Strategy.TWIN, Strategy.GOSSIP_FLOOD}


def test_the_cli_refuses_byzantine_without_the_env_var(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv(ENV_ALLOW, raising=False)
    res = CliRunner().invoke(
        main, ["run", "--data-dir", str(tmp_path / "d"), "--byzantine", "equivocate"]
    )
    assert res.exit_code == 2
    assert ENV_ALLOW in res.output
    assert "--byzantine" not in CliRunner().invoke(main, ["run", "--help"]).output


def test_equivocate_sends_two_signed_blocks_to_the_two_halves(tmp_path) -> None:
    byz = Byzantine({Strategy.EQUIVOCATE}, KEY, CHAIN, tmp_path)
    peers = FakePeers()
    assert byz.on_broadcast(block(7), peers)  # the original is not broadcast as well
    assert [p for p, _, _ in peers.sent] == PEERS
    assert all(g for _, _, g in peers.sent)  # honest nodes pass both on
    a, b = (m for _, m, _ in peers.sent[:2])
    assert isinstance(a, Block)
    assert isinstance(b, Block)
    assert a != b
    assert all(verify_message(m.proposal, KEY.public_key, CHAIN) for m in (a, b))
    assert verify_evidence(DoubleProposal(a.proposal, b.proposal), CHAIN) == KEY.public_key
    assert records(tmp_path)[0]["kind"] == "double_proposal"
    assert records(tmp_path)[0]["round"] == 7


def test_injections_stop_after_the_limit(tmp_path) -> None:
    byz = Byzantine({Strategy.EQUIVOCATE, Strategy.DOUBLE_VOTE}, KEY, CHAIN, tmp_path)
    peers = FakePeers()
    took = [byz.on_broadcast(block(r), peers) for r in range(10, 20)]
    assert took == [True] * MAX_INJECTIONS + [False] * (10 - MAX_INJECTIONS)
    for r in range(10, 20):
        byz.on_broadcast(vote(r), peers)
    kinds = [r["kind"] for r in records(tmp_path)]
    assert kinds.count("double_proposal") == MAX_INJECTIONS
    assert kinds.count("double_vote") == MAX_INJECTIONS


def test_double_vote_adds_a_second_signed_vote(tmp_path) -> None:
    byz = Byzantine({Strategy.DOUBLE_VOTE}, KEY, CHAIN, tmp_path)
    peers = FakePeers()
    v = vote(9)
    assert not byz.on_broadcast(v, peers)  # the node still sends its own vote
    ((_, other, _),) = peers.sent
    assert isinstance(other, Vote)
    assert verify_evidence(DoubleVote(v, other), CHAIN) == KEY.public_key


def test_twin_records_every_signed_statement(tmp_path) -> None:
    byz = Byzantine({Strategy.TWIN}, KEY, CHAIN, tmp_path)
    peers = FakePeers()
    assert not byz.on_broadcast(block(3), peers)
    assert not byz.on_broadcast(vote(3), peers)
    assert [(r["kind"], r["round"]) for r in records(tmp_path)] == [("proposal", 3), ("vote", 3)]
    assert not peers.sent


def test_gossip_flood_batches_are_full_and_all_forged(tmp_path) -> None:
    batch = Byzantine({Strategy.GOSSIP_FLOOD}, KEY, CHAIN, tmp_path)._bad_batch(1)
    assert isinstance(batch, TxBatch)
    assert len(batch.transactions) == 4096
    assert not any(verify_message(tx, tx.sender, CHAIN) for tx in batch.transactions[:50])
