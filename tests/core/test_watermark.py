"""Never sign twice: the watermark rule, and a core restarted from its record."""

from __future__ import annotations

import msgpack
import pytest

from sequencer_node.core import api
from sequencer_node.core.watermark import (
    Kind,
    decode_record,
    empty_record,
    may_sign,
    record_signature,
)
from sequencer_node.wire.codec import CodecError, decode, encode
from sequencer_node.wire.messages import QuorumCertificate, TimeoutCertificate

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


def test_nothing_but_that_timeout_is_signed_in_a_round_after_its_timeout() -> None:
    # A restarted node re-signs its timeout from the record's QC: nothing signed later in the
    # round may have raised that QC (the watermark holds the rule, not only its callers).
    rec = record_signature(empty_record(1, b"\x09" * 32), Kind.TIMEOUT, 7, D1, None)
    assert not may_sign(rec, Kind.VOTE, 7, D2)
    assert not may_sign(rec, Kind.PROPOSAL, 7, D2)
    assert may_sign(rec, Kind.TIMEOUT, 7, D1)  # the same timeout again
    assert may_sign(rec, Kind.VOTE, 8, D2)
    assert may_sign(rec, Kind.PROPOSAL, 8, D2)


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


def _tc(round_: int) -> TimeoutCertificate:
    return TimeoutCertificate(round_, 1, 0, (), None)


def test_the_record_keeps_the_highest_tc_it_signed_after() -> None:
    rec = record_signature(empty_record(1, b"\x09" * 32), Kind.TIMEOUT, 5, D1, None, tc=_tc(4))
    assert rec.last_tc == _tc(4)
    rec = record_signature(rec, Kind.TIMEOUT, 6, D2, None)  # entered by a QC: the TC stays
    assert rec.last_tc == _tc(4)
    rec = record_signature(rec, Kind.TIMEOUT, 8, D1, None, tc=_tc(7))
    assert rec.last_tc == _tc(7)
    assert decode_record(encode(rec)) == rec


def _as_version_2(rec: api.PersistedState) -> bytes:
    """The bytes a node of the previous release wrote for ``rec`` (no ``last_tc``)."""
    tag, version, body = msgpack.unpackb(encode(rec), raw=False)
    assert (version, body[-1]) == (3, None)
    raw: bytes = msgpack.packb([tag, 2, body[:-1]], use_bin_type=True)
    return raw


def test_a_version_2_record_is_read_as_version_3_without_a_tc() -> None:
    """A data directory written before the record kept the TC must start: refusing it would
    leave the operator only the choice of deleting the record (the one way to double-sign)."""
    qc = QuorumCertificate(D1, 17, 99, 2, ())
    rec = record_signature(empty_record(7, b"\x09" * 32), Kind.VOTE, 100, D2, qc)
    assert decode_record(_as_version_2(rec)) == rec
    with pytest.raises(CodecError):
        decode(_as_version_2(rec), api.PersistedState)  # the strict decoder alone refuses it


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\xc1",
        msgpack.packb([64, 1, []]),
        msgpack.packb([64, 4, []]),
        msgpack.packb([65, 2, []]),
        msgpack.packb([64, 2, [1, 2]]),
    ],
    ids=["empty", "not-msgpack", "version-1", "version-4", "other-tag", "short-body"],
)
def test_anything_else_than_a_version_2_or_3_record_is_refused(raw: bytes) -> None:
    with pytest.raises(CodecError):
        decode_record(raw)


def test_a_restarted_core_sends_the_tc_of_its_record_with_its_timeout() -> None:
    """After a crash in a round entered by a TC, the restarted node's timeout carries that TC
    (the peers that never saw it move on by it). Here it voted in that round before the crash:
    a timeout of the round is still to be signed."""
    from sequencer_node.core.sequencer import SequencerCore
    from sequencer_node.sim.harness import Simulation
    from sequencer_node.wire.messages import TimeoutMessage

    sim = Simulation(23)
    tc = _tc(40)
    rec = record_signature(
        empty_record(sim.config_kw["chain_id"], sim.keys[0].public_key),
        Kind.VOTE, 41, D1, None, tc=tc,
    )  # fmt: skip
    core = SequencerCore(sim.config_for(sim.instances[0]), sim.genesis, persisted=rec)
    assert core.round == 41
    assert core.last_tc == tc
    timeout_ms = int(sim.config_kw["timeout_base_ms"])
    core.tick(0)
    out = core.tick(timeout_ms + 1)
    persists = [e for e in out if isinstance(e, api.PersistWatermark)]
    assert persists
    sent = core.handle(api.WatermarkPersisted(persists[-1].seq), timeout_ms + 2)
    timeouts = [
        e.message
        for e in sent
        if isinstance(e, api.Broadcast) and isinstance(e.message, TimeoutMessage)
    ]
    assert len(timeouts) == 1
    assert timeouts[0].last_tc == tc


def test_a_core_restarted_in_a_round_it_timed_out_in_sends_that_timeout_at_once() -> None:
    """Its timeout may have died with the process, and the round's TC may need it: it goes out
    again at the first tick, the same bytes (the QC of the record), not a round timeout
    later."""
    from sequencer_node.core.sequencer import SequencerCore
    from sequencer_node.sim.harness import Simulation
    from sequencer_node.wire.codec import message_id
    from sequencer_node.wire.messages import Timeout, TimeoutMessage

    sim = Simulation(23)
    key = sim.keys[0]
    qc = QuorumCertificate(D1, 9, 40, 0, ())
    t = Timeout(41, 0, 40, D1, key.public_key, bytes(64))
    rec = record_signature(
        empty_record(sim.config_kw["chain_id"], key.public_key),
        Kind.TIMEOUT, 41, message_id(t), qc,
    )  # fmt: skip
    core = SequencerCore(sim.config_for(sim.instances[0]), sim.genesis, persisted=rec)
    assert core.round == 41
    out = core.tick(0)
    persists = [e for e in out if isinstance(e, api.PersistWatermark)]
    assert persists
    assert persists[-1].record == rec  # nothing new signed: the same statement
    sent = core.handle(api.WatermarkPersisted(persists[-1].seq), 1)
    timeouts = [
        e.message
        for e in sent
        if isinstance(e, api.Broadcast) and isinstance(e.message, TimeoutMessage)
    ]
    assert len(timeouts) == 1
    assert timeouts[0].timeout.round == 41
    assert timeouts[0].high_qc == qc
