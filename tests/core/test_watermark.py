"""Never sign twice: the watermark rule, and a core restarted from its record."""

from __future__ import annotations

import pytest

from sequencer_node.core import api
from sequencer_node.core.watermark import Kind, empty_record, may_sign, record_signature
from sequencer_node.wire.codec import decode, encode
from sequencer_node.wire.messages import QuorumCertificate

D1, D2 = b"\x01" * 32, b"\x02" * 32


def test_rule_allows_only_higher_rounds_or_the_same_statement() -> None:
    rec = empty_record(1, b"\x09" * 32)
    assert may_sign(rec, Kind.VOTE, 5, D1)
    rec = record_signature(rec, Kind.VOTE, 5, D1, None)
    assert may_sign(rec, Kind.VOTE, 5, D1)  # identical bytes again: harmless
    assert not may_sign(rec, Kind.VOTE, 5, D2)  # conflicting: refused
    assert not may_sign(rec, Kind.VOTE, 4, D2)  # below the watermark: refused
    assert may_sign(rec, Kind.VOTE, 6, D2)
    assert may_sign(rec, Kind.TIMEOUT, 5, D2)  # kinds are separate slots


def test_the_recorded_high_qc_is_the_highest_by_rank_not_by_round() -> None:
    """A late closing QC of epoch e can carry a higher round than the first QCs of epoch e + 1;
    the record must keep the QC of e + 1 (the lock argument of section 3a compares ranks), or a
    restarted node would hold a lower lock than before its crash."""
    new_epoch = QuorumCertificate(D1, 17, 99, 2, ())
    late_closing = QuorumCertificate(D2, 18, 100, 1, ())
    rec = record_signature(empty_record(1, b"\x09" * 32), Kind.VOTE, 100, D1, new_epoch)
    rec = record_signature(rec, Kind.TIMEOUT, 101, D2, late_closing)
    assert rec.high_qc == new_epoch


def test_record_round_trips_through_the_codec() -> None:
    rec = record_signature(empty_record(7, b"\x09" * 32), Kind.PROPOSAL, 3, D1, None)
    assert decode(encode(rec)) == rec
    assert isinstance(decode(encode(rec)), api.PersistedState)


def _lonely_core() -> tuple[object, int]:
    from sequencer_node.core.sequencer import SequencerCore
    from sequencer_node.sim.harness import Simulation

    sim = Simulation(21)
    return SequencerCore(sim.config_for(sim.instances[0]), sim.genesis), int(
        sim.config_kw["timeout_base_ms"]
    )


def test_no_signature_leaves_before_the_watermark_is_acknowledged() -> None:
    from sequencer_node.core.sequencer import SequencerCore
    from sequencer_node.wire.messages import TimeoutMessage

    core, timeout_ms = _lonely_core()
    assert isinstance(core, SequencerCore)
    core.tick(0)
    out = core.tick(timeout_ms + 1)  # no peers: the round times out, a timeout gets signed
    persists = [e for e in out if isinstance(e, api.PersistWatermark)]
    assert len(persists) == 1
    assert persists[0].record.timeout_round == core.round
    assert not [e for e in out if isinstance(e, api.Broadcast)]
    # the retransmission timer fires again before the ack: still nothing may leave
    again = core.tick(3 * timeout_ms)
    assert not [e for e in again if isinstance(e, api.Broadcast)]
    released = core.handle(api.WatermarkPersisted(persists[0].seq), 3 * timeout_ms)
    sent = [e.message for e in released if isinstance(e, api.Broadcast)]
    assert len(sent) == 1
    assert isinstance(sent[0], TimeoutMessage)


def test_a_core_restarted_from_its_record_starts_above_every_signed_round() -> None:
    from sequencer_node.core.sequencer import SequencerCore
    from sequencer_node.sim.harness import Simulation

    sim = Simulation(22)
    rec = record_signature(
        empty_record(sim.config_kw["chain_id"], sim.keys[0].public_key), Kind.VOTE, 40, D1, None
    )
    core = SequencerCore(sim.config_for(sim.instances[0]), sim.genesis, persisted=rec)
    assert core.round >= 40
    other = empty_record(sim.config_kw["chain_id"], sim.keys[1].public_key)
    with pytest.raises(ValueError, match="another key"):
        SequencerCore(sim.config_for(sim.instances[0]), sim.genesis, persisted=other)
