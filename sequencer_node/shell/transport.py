"""Trio transport: an authenticated, encrypted, framed message connection over any stream.

``await secure_connect(stream, ...)`` / ``await secure_accept(stream, ...)`` run the
:mod:`~sequencer_node.shell.handshake` under a deadline and return a :class:`SecureConnection`.
Each application frame is ``length || ChaCha20-Poly1305(flag || canonical message)``; the flag
says whether the sender gossiped the message (relay it) or sent it to us directly.

Errors: a broken link or a misbehaving peer raises :class:`RemoteProtocolError` (with the
offense to charge) from ``receive()``; the connection is then unusable and must be closed. A
frame that does not decrypt or is badly framed is a link failure (anyone on the path can cause
it: a lost, duplicated or altered frame), charged lightly by the scoring
(:data:`~sequencer_node.shell.scoring.LINK_FAILURES`); what decrypted is the peer's own. A
clean close at a frame boundary raises :class:`ConnectionClosed`. Expected I/O errors
(``trio.BrokenResourceError``, ``trio.ClosedResourceError``) propagate as they are.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import trio

from sequencer_node.shell.errors import ConnectionClosed, HandshakeError, RemoteProtocolError
from sequencer_node.shell.framing import (
    DEFAULT_MAX_FRAME,
    HEADER,
    NEED_DATA,
    FrameDecoder,
    encode_frame,
)
from sequencer_node.shell.handshake import Cipher, Handshake, IsAllowed, Role
from sequencer_node.shell.p2p_messages import HANDSHAKE_MESSAGES, Ping, Pong
from sequencer_node.shell.scoring import Offense
from sequencer_node.wire.codec import CodecError, decode, encode
from sequencer_node.wire.crypto import SigningKey

FLAG_DIRECT = 0
FLAG_GOSSIP = 1
#: Handshake frames are small; a stranger must not make us buffer megabytes.
HANDSHAKE_MAX_FRAME = 1024


@dataclass(frozen=True, slots=True)
class TransportConfig:
    max_frame: int = DEFAULT_MAX_FRAME
    handshake_timeout_s: float = 10.0
    #: No complete frame (pings included) for this long: the peer is gone, or trickling.
    idle_timeout_s: float = 30.0
    keepalive_interval_s: float = 10.0
    #: A single send_all taking longer than this: the peer is too slow, drop it.
    send_timeout_s: float = 30.0
    receive_chunk: int = 256 * 1024


@dataclass(frozen=True, slots=True)
class Inbound:
    """One received message: the decoded message, its canonical bytes, and the gossip flag."""

    message: object
    raw: bytes
    gossip: bool


@dataclass(frozen=True, slots=True)
class ConnectionStatistics:
    frames_sent: int
    frames_received: int
    bytes_sent: int
    bytes_received: int
    writes: int  # send_all calls; frames_sent / writes is the coalescing factor


class SecureConnection:
    """An established session with one authenticated peer."""

    def __init__(
        self,
        stream: trio.abc.Stream,
        decoder: FrameDecoder,
        send_cipher: Cipher,
        recv_cipher: Cipher,
        peer_identity: bytes,
        role: Role,
        config: TransportConfig,
    ) -> None:
        self.stream = stream
        self.peer_identity = peer_identity
        self.role = role
        self.config = config
        self._decoder = decoder
        self._send_cipher = send_cipher
        self._recv_cipher = recv_cipher
        self._send_lock = trio.Lock()
        self._ping_nonce = 0
        self._frames_sent = self._frames_received = 0
        self._bytes_sent = self._bytes_received = self._writes = 0
        #: When the last complete frame arrived (or the session began): a live peer sends at
        #: least a Ping every ``keepalive_interval_s``, so a longer silence means a dead path.
        self.last_frame_at = trio.current_time()
        #: Called with the bytes of each gossiped message after decryption and before the
        #: strict decode; True drops the frame (a duplicate: the owner meters and dedups).
        self.drop_gossip: Callable[[bytes], bool] | None = None

    # --- sending ---------------------------------------------------------------------------

    async def send_message(self, msg: object, *, gossip: bool = False) -> None:
        await self.send_encoded([(encode(msg), gossip)])

    async def send_encoded(self, items: Sequence[tuple[bytes, bool]]) -> None:
        """Seal and send already-encoded messages in ONE ``send_all`` (write coalescing).

        Raises:
            trio.TooSlowError: the peer did not take the bytes within ``send_timeout_s``.
        """
        if not items:
            return
        async with self._send_lock:
            # Sealing under the lock keeps nonce order equal to byte order on the stream.
            seal, max_frame = self._send_cipher.seal, self.config.max_frame
            data = b"".join(
                encode_frame(seal((b"\x01" if g else b"\x00") + body), max_frame)
                for body, g in items
            )
            with trio.fail_after(self.config.send_timeout_s):
                await self.stream.send_all(data)
            self._frames_sent += len(items)
            self._bytes_sent += len(data)
            self._writes += 1

    # --- receiving -------------------------------------------------------------------------

    async def receive(self) -> Inbound:
        """The next application message; pings are answered here and never returned.

        Raises:
            RemoteProtocolError: bad frame, failed authentication, malformed or unexpected
                message, or no frame within ``idle_timeout_s``. Close the connection.
            ConnectionClosed: the peer closed cleanly.
        """
        while True:
            body = await self._receive_frame()
            plaintext = self._recv_cipher.open(body)
            self._frames_received += 1
            flag, raw = plaintext[:1], plaintext[1:]
            if flag not in (b"\x00", b"\x01"):
                # The flag is inside the AEAD: the peer sent it, not the path.
                raise RemoteProtocolError(f"unknown frame flag {flag!r}", Offense.MALFORMED_MESSAGE)
            if flag == b"\x01" and self.drop_gossip is not None and self.drop_gossip(raw):
                continue
            try:
                msg: object = decode(raw)
            except CodecError as e:
                raise RemoteProtocolError(
                    f"malformed message: {e}", Offense.MALFORMED_MESSAGE
                ) from None
            if isinstance(msg, HANDSHAKE_MESSAGES):
                raise RemoteProtocolError(
                    f"{type(msg).__name__} after the handshake", Offense.UNEXPECTED_MESSAGE
                )
            if isinstance(msg, Ping):
                await self.send_message(Pong(msg.nonce))
                continue
            if isinstance(msg, Pong):
                continue
            return Inbound(msg, raw, flag == b"\x01")

    async def _receive_frame(self) -> bytes:
        # One deadline per frame, not per chunk: a peer trickling one byte at a time
        # (slowloris) cannot hold a half-frame buffer open for longer than the idle timeout.
        deadline = trio.current_time() + self.config.idle_timeout_s
        while True:
            frame = self._decoder.next_frame()
            if frame is not NEED_DATA:
                assert isinstance(frame, bytes)
                self._bytes_received += len(frame) + HEADER.size
                self.last_frame_at = trio.current_time()
                return frame
            if self._decoder.at_eof:
                raise ConnectionClosed("peer closed the connection")
            with trio.move_on_at(deadline) as scope:
                data = await self.stream.receive_some(self.config.receive_chunk)
            if scope.cancelled_caught:
                raise RemoteProtocolError(
                    f"no complete frame within {self.config.idle_timeout_s} s", Offense.TIMEOUT
                )
            self._decoder.receive_data(data)

    # --- lifecycle -------------------------------------------------------------------------

    async def keepalive(self) -> None:
        """Send a Ping every ``keepalive_interval_s`` until cancelled (run it in a task)."""
        while True:
            await trio.sleep(self.config.keepalive_interval_s)
            self._ping_nonce += 1
            await self.send_message(Ping(self._ping_nonce))

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True):
            await self.stream.aclose()

    def statistics(self) -> ConnectionStatistics:
        return ConnectionStatistics(
            self._frames_sent,
            self._frames_received,
            self._bytes_sent,
            self._bytes_received,
            self._writes,
        )


async def _read_handshake_frame(stream: trio.abc.Stream, decoder: FrameDecoder) -> bytes:
    while True:
        frame = decoder.next_frame()
        if frame is not NEED_DATA:
            assert isinstance(frame, bytes)
            return frame
        if decoder.at_eof:
            raise HandshakeError(
                "peer closed the connection during the handshake (it may be on another "
                "chain, or not accept our identity)"
            )
        decoder.receive_data(await stream.receive_some(4096))


async def _secure(
    stream: trio.abc.Stream,
    role: Role,
    identity: SigningKey,
    chain_id: int,
    is_allowed: IsAllowed,
    config: TransportConfig,
    ephemeral_seed: bytes | None,
) -> SecureConnection:
    hs = Handshake(
        role,
        identity=identity,
        chain_id=chain_id,
        is_allowed=is_allowed,
        ephemeral_seed=ephemeral_seed if ephemeral_seed is not None else os.urandom(32),
    )
    decoder = FrameDecoder(HANDSHAKE_MAX_FRAME)
    ok = False
    try:
        with trio.fail_after(config.handshake_timeout_s):
            out = hs.initial_frames()
            while True:
                if out:
                    await stream.send_all(b"".join(encode_frame(f) for f in out))
                if hs.done:
                    break
                try:
                    frame = await _read_handshake_frame(stream, decoder)
                except RemoteProtocolError as e:
                    raise HandshakeError(f"bad handshake frame: {e}", e.offense) from None
                out = hs.receive_frame(frame)
        ok = True
    except trio.TooSlowError:
        raise HandshakeError(
            f"handshake not done within {config.handshake_timeout_s} s", Offense.TIMEOUT
        ) from None
    finally:
        if not ok:
            with trio.CancelScope(shield=True):
                await stream.aclose()
    decoder.max_frame = config.max_frame
    assert hs.send_cipher
    assert hs.recv_cipher
    assert hs.peer_identity
    return SecureConnection(
        stream, decoder, hs.send_cipher, hs.recv_cipher, hs.peer_identity, role, config
    )


async def secure_connect(
    stream: trio.abc.Stream,
    *,
    identity: SigningKey,
    chain_id: int,
    is_allowed: IsAllowed,
    config: TransportConfig | None = None,
    ephemeral_seed: bytes | None = None,
) -> SecureConnection:
    """Run the handshake as initiator; returns once the responder accepted us.

    Raises:
        HandshakeError: timeout, other chain, bad signature, identity not allowed (either
            way), or the peer hung up. The stream is closed.
    """
    return await _secure(
        stream,
        Role.INITIATOR,
        identity,
        chain_id,
        is_allowed,
        config or TransportConfig(),
        ephemeral_seed,
    )


async def secure_accept(
    stream: trio.abc.Stream,
    *,
    identity: SigningKey,
    chain_id: int,
    is_allowed: IsAllowed,
    config: TransportConfig | None = None,
    ephemeral_seed: bytes | None = None,
) -> SecureConnection:
    """Run the handshake as responder; a stranger is refused before any protocol message.

    Raises:
        HandshakeError: as for :func:`secure_connect`. The stream is closed.
    """
    return await _secure(
        stream,
        Role.RESPONDER,
        identity,
        chain_id,
        is_allowed,
        config or TransportConfig(),
        ephemeral_seed,
    )
