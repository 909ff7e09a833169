"""Frame decoder: arbitrary chunking, limits checked before allocation, truncation."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sequencer_node.shell.errors import RemoteProtocolError
from sequencer_node.shell.framing import NEED_DATA, FrameDecoder, encode_frame
from sequencer_node.shell.scoring import Offense


def drain(dec: FrameDecoder) -> list[bytes]:
    out = []
    while (f := dec.next_frame()) is not NEED_DATA:
        assert isinstance(f, bytes)
        out.append(f)
    return out


@given(
    bodies=st.lists(st.binary(min_size=1, max_size=300), max_size=20),
    cuts=st.lists(st.integers(min_value=0, max_value=7000), max_size=30),
)
def test_any_chunking_gives_the_same_frames(bodies, cuts):
    data = b"".join(encode_frame(b) for b in bodies)
    points = sorted({c for c in cuts if c < len(data)} | {0, len(data)})
    dec = FrameDecoder(max_frame=1000)
    got: list[bytes] = []
    for a, b in itertools.pairwise(points):
        dec.receive_data(data[a:b])
        got += drain(dec)
    dec.receive_data(b"")
    got += drain(dec)
    assert got == bodies
    assert dec.at_eof


def test_oversized_length_is_refused_from_the_header_alone():
    dec = FrameDecoder(max_frame=1024)
    dec.receive_data(b"\xff\xff\xff\xff")  # 4 GiB claimed; only 4 bytes buffered
    with pytest.raises(RemoteProtocolError) as e:
        dec.next_frame()
    assert e.value.offense is Offense.OVERSIZED_FRAME
    dec = FrameDecoder(max_frame=1024)
    dec.receive_data((1025).to_bytes(4, "big"))
    with pytest.raises(RemoteProtocolError):
        dec.next_frame()
    dec = FrameDecoder(max_frame=1024)
    dec.receive_data(encode_frame(b"x" * 1024, 1024))
    assert dec.next_frame() == b"x" * 1024


def test_zero_length_frame_is_malformed():
    dec = FrameDecoder()
    dec.receive_data(b"\x00\x00\x00\x00")
    with pytest.raises(RemoteProtocolError) as e:
        dec.next_frame()
    assert e.value.offense is Offense.MALFORMED_FRAME


@pytest.mark.parametrize("cut", [1, 3, 4, 5, 9])
def test_stream_ending_inside_a_frame_is_truncated(cut):
    data = encode_frame(b"hello")  # 9 bytes
    dec = FrameDecoder()
    dec.receive_data(data[:cut])
    dec.receive_data(b"")
    if cut == len(data):
        assert dec.next_frame() == b"hello"
        assert dec.at_eof
        return
    with pytest.raises(RemoteProtocolError) as e:
        dec.next_frame()
    assert e.value.offense is Offense.TRUNCATED_FRAME


def test_encode_frame_refuses_empty_and_oversized_bodies():
    with pytest.raises(ValueError, match="outside"):
        encode_frame(b"")
    with pytest.raises(ValueError, match="outside"):
        encode_frame(b"x" * 11, 10)
