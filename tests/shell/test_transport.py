"""The Trio transport over in-memory streams: handshake, bad frames, keepalive, timeouts."""

from __future__ import annotations

import os

import pytest
import trio
import trio.testing

from sequencer_node.shell.errors import ConnectionClosed, HandshakeError, RemoteProtocolError
from sequencer_node.shell.framing import encode_frame
from sequencer_node.shell.handshake import Role
from sequencer_node.shell.p2p_messages import HandshakeHello
from sequencer_node.shell.scoring import Offense
from sequencer_node.shell.transport import (
    SecureConnection,
    TransportConfig,
    secure_accept,
    secure_connect,
)
from sequencer_node.wire.codec import encode

from .helpers import (
    CHAIN,
    STRANGER,
    A,
    B,
    allowed,
    connect_pair,
    handshake,
    trickle_stream_pair,
    vote,
)


async def test_messages_flow_both_ways_with_gossip_flag():
    c, s = await connect_pair()
    assert c.peer_identity == B.public_key
    assert s.peer_identity == A.public_key
    await c.send_message(vote(1), gossip=True)
    await s.send_message(vote(2))
    got = await s.receive()
    assert got.message == vote(1)
    assert got.gossip
    assert got.raw == encode(vote(1))
    got = await c.receive()
    assert got.message == vote(2)
    assert not got.gossip


async def test_one_byte_trickle_still_works():
    c, s = await connect_pair(pair=trickle_stream_pair)
    await c.send_encoded([(encode(vote(i)), False) for i in range(5)])
    for i in range(5):
        assert (await s.receive()).message == vote(i)
    assert c.statistics().writes == 1
    assert c.statistics().frames_sent == 5


async def test_lockstep_stream_pair_works():
    c, s = await connect_pair(pair=trio.testing.lockstep_stream_pair)
    async with trio.open_nursery() as n:
        n.start_soon(c.send_message, vote(7))
        assert (await s.receive()).message == vote(7)


async def test_wrong_chain_id_fails_both_sides():
    left, right = trio.testing.memory_stream_pair()
    errors: list[Exception] = []

    async def side(fn, stream, chain):
        try:
            await fn(stream, identity=A, chain_id=chain, is_allowed=allowed)
        except HandshakeError as e:
            errors.append(e)

    async with trio.open_nursery() as n:
        n.start_soon(side, secure_connect, left, CHAIN)
        n.start_soon(side, secure_accept, right, CHAIN + 1)
    assert len(errors) == 2
    assert any("chain id" in str(e) for e in errors)


async def test_unknown_identity_is_refused_and_its_frames_never_read():
    """A stranger that pushes an application frame right after its auth gets nothing in."""
    left, right = trio.testing.memory_stream_pair()
    outcome: dict[str, object] = {}

    async def stranger():
        hs = handshake(Role.INITIATOR, STRANGER)
        await left.send_all(encode_frame(hs.initial_frames()[0]))
        from sequencer_node.shell.framing import NEED_DATA, FrameDecoder

        dec = FrameDecoder()
        out: list[bytes] = []
        while hs.state.name != "AWAIT_ACCEPT":
            while (f := dec.next_frame()) is NEED_DATA:
                dec.receive_data(await left.receive_some())
            out += hs.receive_frame(f)
        # Its auth, then a protocol message sealed as if it had been accepted.
        hs._finish()
        assert hs.send_cipher is not None
        await left.send_all(
            b"".join(encode_frame(x) for x in out)
            + encode_frame(hs.send_cipher.seal(b"\x00" + encode(vote(1))))
        )
        outcome["stranger_read"] = await left.receive_some()

    async def server():
        try:
            outcome["conn"] = await secure_accept(
                right, identity=B, chain_id=CHAIN, is_allowed=allowed
            )
        except HandshakeError as e:
            outcome["error"] = e

    async with trio.open_nursery() as n:
        n.start_soon(stranger)
        n.start_soon(server)
    assert "conn" not in outcome
    assert "not an allowed sequencer" in str(outcome["error"])
    assert outcome["stranger_read"] == b""  # closed, no HandshakeAccept


async def test_refused_initiator_gets_a_clear_error():
    left, right = trio.testing.memory_stream_pair()
    errors: dict[str, str] = {}

    async def side(name, fn, stream, key):
        try:
            await fn(stream, identity=key, chain_id=CHAIN, is_allowed=allowed)
        except HandshakeError as e:
            errors[name] = str(e)

    async with trio.open_nursery() as n:
        n.start_soon(side, "client", secure_connect, left, STRANGER)
        n.start_soon(side, "server", secure_accept, right, B)
    assert "closed the connection during the handshake" in errors["client"]
    assert "not an allowed sequencer" in errors["server"]


async def test_handshake_timeout(autojump_clock):
    left, _right = trio.testing.memory_stream_pair()
    config = TransportConfig(handshake_timeout_s=5)
    start = trio.current_time()
    with pytest.raises(HandshakeError) as e:
        await secure_connect(left, identity=A, chain_id=CHAIN, is_allowed=allowed, config=config)
    assert e.value.offense is Offense.TIMEOUT
    assert trio.current_time() - start == pytest.approx(5)


async def _expect_offense(s: SecureConnection, offense: Offense) -> None:
    with pytest.raises(RemoteProtocolError) as e:
        await s.receive()
    assert e.value.offense is offense


async def test_oversized_frame_header_is_refused():
    c, s = await connect_pair(config=TransportConfig(max_frame=4096))
    await c.stream.send_all((4097).to_bytes(4, "big"))
    await _expect_offense(s, Offense.OVERSIZED_FRAME)


async def test_truncated_frame_then_eof():
    c, s = await connect_pair()
    frame = encode_frame(c._send_cipher.seal(b"\x00" + encode(vote(1))))
    await c.stream.send_all(frame[:-3])
    await c.stream.aclose()
    await _expect_offense(s, Offense.TRUNCATED_FRAME)


async def test_clean_close_at_frame_boundary():
    c, s = await connect_pair()
    await c.send_message(vote(1))
    await c.aclose()
    assert (await s.receive()).message == vote(1)
    with pytest.raises(ConnectionClosed):
        await s.receive()


async def test_garbage_bytes_fail_authentication():
    c, s = await connect_pair()
    await c.stream.send_all(encode_frame(os.urandom(200)))
    await _expect_offense(s, Offense.DECRYPT_FAILURE)


async def test_valid_frame_with_bad_content_is_malformed_message():
    c, s = await connect_pair()
    bad = encode(vote(1)) + b"\x00"  # trailing bytes
    await c.stream.send_all(encode_frame(c._send_cipher.seal(b"\x00" + bad)))
    await _expect_offense(s, Offense.MALFORMED_MESSAGE)


async def test_unknown_flag_is_a_malformed_message():
    """The flag is inside the AEAD: the peer's own doing, not the path's (full cost)."""
    c, s = await connect_pair()
    await c.stream.send_all(encode_frame(c._send_cipher.seal(b"\x07" + encode(vote(1)))))
    await _expect_offense(s, Offense.MALFORMED_MESSAGE)


async def test_handshake_message_after_handshake_is_unexpected():
    c, s = await connect_pair()
    await c.send_message(HandshakeHello("seqnet-p2p/1", CHAIN, bytes(32)))
    await _expect_offense(s, Offense.UNEXPECTED_MESSAGE)


async def test_replayed_frame_breaks_the_connection():
    c, s = await connect_pair()
    frame = encode_frame(c._send_cipher.seal(b"\x00" + encode(vote(1))))
    await c.stream.send_all(frame + frame)
    assert (await s.receive()).message == vote(1)
    await _expect_offense(s, Offense.DECRYPT_FAILURE)


async def test_reordered_frames_break_the_connection():
    c, s = await connect_pair()
    f1 = encode_frame(c._send_cipher.seal(b"\x00" + encode(vote(1))))
    f2 = encode_frame(c._send_cipher.seal(b"\x00" + encode(vote(2))))
    await c.stream.send_all(f2 + f1)
    await _expect_offense(s, Offense.DECRYPT_FAILURE)


async def test_idle_timeout_without_keepalive(autojump_clock):
    _c, s = await connect_pair(config=TransportConfig(idle_timeout_s=30))
    start = trio.current_time()
    await _expect_offense(s, Offense.TIMEOUT)
    assert trio.current_time() - start == pytest.approx(30)


async def test_keepalive_pings_are_answered_and_keep_the_link_up(autojump_clock):
    config = TransportConfig(idle_timeout_s=30, keepalive_interval_s=10)
    c, s = await connect_pair(config=config)
    async with trio.open_nursery() as n:
        n.start_soon(c.keepalive)
        with trio.move_on_after(300):  # ten idle timeouts of virtual time
            await s.receive()
            pytest.fail("a ping must never be returned as an application message")
        await c.send_message(vote(3))
        assert (await s.receive()).message == vote(3)
        n.cancel_scope.cancel()
    # The server answered each of the ~30 pings with a pong that the client eats silently.
    with trio.move_on_after(1):
        await c.receive()
        pytest.fail("a pong must never be returned as an application message")
    assert s.statistics().frames_sent >= 29
    assert c.statistics().frames_received >= 29


async def test_slowloris_trickle_hits_the_frame_deadline(autojump_clock):
    c, s = await connect_pair(config=TransportConfig(idle_timeout_s=30))
    frame = encode_frame(c._send_cipher.seal(b"\x00" + encode(vote(1))))

    async def trickle() -> None:
        for byte in frame:
            await c.stream.send_all(bytes([byte]))
            await trio.sleep(10)  # each byte well within the idle timeout

    start = trio.current_time()
    async with trio.open_nursery() as n:
        n.start_soon(trickle)
        await _expect_offense(s, Offense.TIMEOUT)
        n.cancel_scope.cancel()
    assert trio.current_time() - start == pytest.approx(30)
