"""The sans-IO handshake: success, chain and identity checks, tampering, bad signatures."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sequencer_node.shell.errors import HandshakeError
from sequencer_node.shell.handshake import Handshake, Role, State
from sequencer_node.shell.p2p_messages import HandshakeHello
from sequencer_node.shell.scoring import Offense
from sequencer_node.wire.codec import decode, encode
from sequencer_node.wire.crypto import SigningKey

from .helpers import CHAIN, STRANGER, A, B, allowed, handshake


def run(i: Handshake, r: Handshake, tamper=None) -> None:
    """Shuttle frames between the two sides until both are done (or one raises)."""
    to_r = i.initial_frames()
    r.initial_frames()
    to_i: list[bytes] = []
    step = 0
    while to_r or to_i:
        for f in to_r:
            f = tamper(step, "to_r", f) if tamper else f
            step += 1
            to_i += r.receive_frame(f)
        to_r = []
        for f in to_i:
            f = tamper(step, "to_i", f) if tamper else f
            step += 1
            to_r += i.receive_frame(f)
        to_i = []


def test_success_gives_matching_session_keys_and_identities():
    i, r = handshake(Role.INITIATOR, A, seed=1), handshake(Role.RESPONDER, B, seed=2)
    run(i, r)
    assert i.done
    assert r.done
    assert i.peer_identity == B.public_key
    assert r.peer_identity == A.public_key
    for sender, receiver in ((i, r), (r, i)):
        assert sender.send_cipher
        assert receiver.recv_cipher
        ct = sender.send_cipher.seal(b"payload")
        assert receiver.recv_cipher.open(ct) == b"payload"


def test_wrong_chain_id_is_refused_by_the_responder():
    i = handshake(Role.INITIATOR, A, chain=CHAIN + 1)
    r = handshake(Role.RESPONDER, B, seed=2)
    with pytest.raises(HandshakeError, match="chain id"):
        run(i, r)
    assert r.state is State.ERROR


def test_stranger_is_refused_before_any_protocol_message():
    i, r = handshake(Role.INITIATOR, STRANGER), handshake(Role.RESPONDER, B, seed=2)
    sent_to_initiator: list[bytes] = []

    def spy(step, direction, frame):
        if direction == "to_i":
            sent_to_initiator.append(frame)
        return frame

    with pytest.raises(HandshakeError, match="not an allowed sequencer"):
        run(i, r, spy)
    assert r.state is State.ERROR
    assert r.send_cipher is None
    assert r.recv_cipher is None
    assert len(sent_to_initiator) == 2  # hello + auth; never HandshakeAccept


def test_initiator_refuses_a_responder_it_does_not_allow():
    i = Handshake(
        Role.INITIATOR,
        identity=A,
        chain_id=CHAIN,
        is_allowed=lambda k: k != B.public_key,
        ephemeral_seed=b"\x01" * 32,
    )
    with pytest.raises(HandshakeError, match="not an allowed"):
        run(i, handshake(Role.RESPONDER, B, seed=2))


@pytest.mark.parametrize("field", ["ephemeral", "chain_id", "protocol"])
def test_tampered_hello_breaks_the_handshake(field):
    mitm_key = bytes.fromhex("09" + "00" * 31)  # X25519 base point: a valid public key

    def tamper(step, direction, frame):
        if step == 1:  # the responder's hello on its way to the initiator
            hello = decode(frame, HandshakeHello)
            new: object = {
                "ephemeral": mitm_key,
                "chain_id": CHAIN + 7,
                "protocol": "seqnet-p2p/0",
            }[field]
            return encode(dataclasses.replace(hello, **{field: new}))  # type: ignore[arg-type]
        return frame

    i, r = handshake(Role.INITIATOR, A), handshake(Role.RESPONDER, B, seed=2)
    with pytest.raises(HandshakeError):
        run(i, r, tamper)
    assert i.state is State.ERROR


def test_auth_from_another_session_is_refused():
    """Replaying a recorded responder auth into a fresh session fails (new transcript)."""
    recorded: list[bytes] = []

    def record(step: int, direction: str, frame: bytes) -> bytes:
        recorded.append(frame)
        return frame

    run(handshake(Role.INITIATOR, A), handshake(Role.RESPONDER, B, seed=2), record)
    i = handshake(Role.INITIATOR, A, seed=3)
    i.initial_frames()
    i.receive_frame(recorded[1])  # the genuine hello is fine, but our key is different now
    with pytest.raises(HandshakeError) as e:
        i.receive_frame(recorded[2])
    assert e.value.offense is Offense.DECRYPT_FAILURE


class _BadSigner(SigningKey):
    __slots__ = ()

    def sign(self, data: bytes) -> bytes:
        sig = bytearray(super().sign(data))
        sig[0] ^= 1
        return bytes(sig)


def test_bad_identity_signature_is_refused_and_named():
    bad = _BadSigner(A._key)
    i = Handshake(
        Role.INITIATOR, identity=bad, chain_id=CHAIN, is_allowed=allowed, ephemeral_seed=b"\1" * 32
    )
    r = handshake(Role.RESPONDER, B, seed=2)
    with pytest.raises(HandshakeError) as e:
        run(i, r)
    assert e.value.offense is Offense.INVALID_SIGNATURE
    assert r.state is State.ERROR


def test_garbage_instead_of_hello_is_a_handshake_error():
    r = handshake(Role.RESPONDER, B)
    r.initial_frames()
    with pytest.raises(HandshakeError, match="malformed"):
        r.receive_frame(b"\xc1garbage")
    with pytest.raises(Exception, match="state ERROR"):
        r.receive_frame(b"again")


@settings(max_examples=60)
@given(data=st.data())
def test_any_bit_flip_in_transit_fails_cleanly(data):
    """Flip one bit of one handshake frame: the handshake must fail with HandshakeError
    (never another exception, never two 'done' sides with different keys)."""
    frames: list[bytes] = []

    def record(step: int, direction: str, frame: bytes) -> bytes:
        frames.append(frame)
        return frame

    run(handshake(Role.INITIATOR, A), handshake(Role.RESPONDER, B, seed=2), record)
    target = data.draw(st.integers(0, len(frames) - 1), label="frame")
    bit = data.draw(st.integers(0, len(frames[target]) * 8 - 1), label="bit")

    def flip(step: int, direction: str, frame: bytes) -> bytes:
        if step != target:
            return frame
        b = bytearray(frame)
        b[bit // 8] ^= 1 << (bit % 8)
        return bytes(b)

    i, r = handshake(Role.INITIATOR, A), handshake(Role.RESPONDER, B, seed=2)
    with pytest.raises(HandshakeError):
        run(i, r, flip)
    assert State.ERROR in (i.state, r.state)
