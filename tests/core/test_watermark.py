"""Never sign twice: the watermark rule, and a core restarted from its record."""

from __future__ import annotations

from sequencer_node.core import api
from sequencer_node.core.watermark import Kind, empty_record, may_sign, record_signature
from sequencer_node.wire.codec import decode, encode

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


def test_record_round_trips_through_the_codec() -> None:
    rec = record_signature(empty_record(7, b"\x09" * 32), Kind.PROPOSAL, 3, D1, None)
    assert decode(encode(rec)) == rec
    assert isinstance(decode(encode(rec)), api.PersistedState)
