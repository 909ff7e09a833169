"""Sans-IO authenticated key exchange between two sequencers (no sockets, no clock).

Theory of operation
-------------------
Messages (frame bodies; ``I`` initiator, ``R`` responder)::

    1. I -> R  HandshakeHello(protocol, chain_id, e_I)                     plaintext
    2. R -> I  HandshakeHello(protocol, chain_id, e_R)                     plaintext
       R -> I  HandshakeAuth(id_R, sig_R)                 sealed with k_hs(R->I)
    3. I -> R  HandshakeAuth(id_I, sig_I)                 sealed with k_hs(I->R)
    4. R -> I  HandshakeAccept(id_I)                      sealed with k_app(R->I)

* ``transcript = sha256("seqnet/p2p-handshake/v1" 0x00 || hello_I || hello_R)``: the protocol
  name and version, the chain id, both ephemeral keys, and (by their order) the roles.
* ``shared = X25519(e_self, e_peer)``; HKDF-SHA256(ikm=shared, salt=transcript,
  info="seqnet/p2p-keys/v1") gives four keys: handshake and application, one per direction.
* ``sig = Ed25519(identity, "seqnet/p2p-auth/v1" 0x00 || role || transcript || identity)``.
  The domain differs from every wire signing domain (``seqnet/v1/...``), so a handshake
  signature can never be replayed as a vote or a transfer, and the reverse.
* Auth messages are encrypted under keys only the two ephemeral-key holders know, so a relay
  cannot swap in its own identity (identity misbinding), and signing the transcript binds each
  identity to this session's ephemeral keys (no man in the middle).
* The responder checks ``is_allowed(id_I)`` before it decrypts any application frame; a
  stranger gets no HandshakeAccept and the connection is closed. The initiator returns only
  after HandshakeAccept, so a refused initiator learns it from a clear error.
* ChaCha20-Poly1305 nonces are 96-bit counters per direction (4 zero bytes, 8-byte big-endian
  counter). Any replayed, dropped, reordered or modified frame fails authentication.

Rules: every method either succeeds or raises :class:`HandshakeError` and moves to ``ERROR``;
nothing leaves ``ERROR``. Anything else raised is a bug.
"""

from __future__ import annotations

import enum
import hashlib
import struct
from collections.abc import Callable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sequencer_node.shell.errors import HandshakeError, LocalProtocolError, RemoteProtocolError
from sequencer_node.shell.p2p_messages import HandshakeAccept, HandshakeAuth, HandshakeHello
from sequencer_node.shell.scoring import Offense
from sequencer_node.wire.codec import CodecError, decode, encode
from sequencer_node.wire.crypto import SigningKey, verify

PROTOCOL = "seqnet-p2p/1"
TRANSCRIPT_DOMAIN = b"seqnet/p2p-handshake/v1\x00"
KEY_INFO = b"seqnet/p2p-keys/v1"
AUTH_DOMAIN = b"seqnet/p2p-auth/v1\x00"
AEAD_TAG_BYTES = 16
_NONCE = struct.Struct(">4xQ")
_MAX_COUNTER = (1 << 64) - 1

IsAllowed = Callable[[bytes], bool]


class Role(enum.Enum):
    INITIATOR = b"I"
    RESPONDER = b"R"


class State(enum.Enum):
    START = "start"
    AWAIT_HELLO = "await_hello"  # initiator sent its hello / responder waits for it
    AWAIT_AUTH = "await_auth"
    AWAIT_ACCEPT = "await_accept"  # initiator only
    DONE = "done"
    ERROR = "error"


class Cipher:
    """ChaCha20-Poly1305 in one direction, with a counter nonce."""

    __slots__ = ("_aead", "counter")

    def __init__(self, key: bytes) -> None:
        self._aead = ChaCha20Poly1305(key)
        self.counter = 0

    def _next_nonce(self) -> bytes:
        if self.counter >= _MAX_COUNTER:
            raise LocalProtocolError("nonce counter exhausted; reconnect for fresh keys")
        nonce = _NONCE.pack(self.counter)
        self.counter += 1
        return nonce

    def seal(self, plaintext: bytes) -> bytes:
        return self._aead.encrypt(self._next_nonce(), plaintext, None)

    def open(self, ciphertext: bytes) -> bytes:
        """Decrypt the next frame; a tampered, replayed or reordered frame raises."""
        try:
            return self._aead.decrypt(self._next_nonce(), ciphertext, None)
        except InvalidTag:
            raise RemoteProtocolError(
                "frame failed authentication (tampered, replayed or reordered)",
                Offense.DECRYPT_FAILURE,
            ) from None


def auth_payload(role: Role, transcript: bytes, identity: bytes) -> bytes:
    return AUTH_DOMAIN + role.value + transcript + identity


class Handshake:
    """One side of the handshake. Feed frame bodies in, send the frame bodies it returns.

    Args:
        role: INITIATOR (dialled out) or RESPONDER (accepted).
        identity: our Ed25519 sequencer key.
        chain_id: both sides must agree.
        is_allowed: ``is_allowed(pubkey)`` is True for identities we talk to.
        ephemeral_seed: 32 random bytes for the X25519 key (randomness is an input).
    """

    def __init__(
        self,
        role: Role,
        *,
        identity: SigningKey,
        chain_id: int,
        is_allowed: IsAllowed,
        ephemeral_seed: bytes,
    ) -> None:
        if len(ephemeral_seed) != 32:
            raise ValueError("the ephemeral seed has 32 bytes")
        self.role = role
        self.state = State.START
        self._identity = identity
        self._chain_id = chain_id
        self._is_allowed = is_allowed
        self._eph = X25519PrivateKey.from_private_bytes(ephemeral_seed)
        eph_pub = self._eph.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self._hello = encode(HandshakeHello(PROTOCOL, chain_id, eph_pub))
        self._transcript = b""
        self._hs_send: Cipher | None = None
        self._hs_recv: Cipher | None = None
        self._app_keys: tuple[bytes, bytes] | None = None
        #: Set when DONE: the peer's identity and the application ciphers.
        self.peer_identity: bytes | None = None
        self.send_cipher: Cipher | None = None
        self.recv_cipher: Cipher | None = None

    @property
    def done(self) -> bool:
        return self.state is State.DONE

    def initial_frames(self) -> list[bytes]:
        """Frames to send as soon as the stream is open (the initiator's hello)."""
        if self.state is not State.START:
            raise LocalProtocolError("initial_frames() called twice")
        self.state = State.AWAIT_HELLO
        return [self._hello] if self.role is Role.INITIATOR else []

    def receive_frame(self, body: bytes) -> list[bytes]:
        """Process one frame body from the peer; return the frame bodies to send back.

        Raises:
            HandshakeError: the peer is on another chain or protocol, sent a bad or
                misplaced message, proved a wrong signature, or is not allowed.
        """
        try:
            return self._receive(body)
        except RemoteProtocolError as e:
            self.state = State.ERROR
            if isinstance(e, HandshakeError):
                raise
            raise HandshakeError(str(e), e.offense) from None
        except CodecError as e:
            self.state = State.ERROR
            raise HandshakeError(f"malformed handshake message: {e}") from None

    def _receive(self, body: bytes) -> list[bytes]:
        state, role = self.state, self.role
        if state is State.AWAIT_HELLO:
            self._on_hello(decode(body, HandshakeHello))
            self.state = State.AWAIT_AUTH
            return [] if role is Role.INITIATOR else [self._hello, self._seal_auth()]
        if state is State.AWAIT_AUTH:
            assert self._hs_recv is not None
            auth = decode(self._hs_recv.open(body), HandshakeAuth)
            self._check_auth(auth)
            if role is Role.INITIATOR:
                self.state = State.AWAIT_ACCEPT
                return [self._seal_auth()]
            self._finish()
            assert self.send_cipher is not None
            assert self.peer_identity is not None
            self.state = State.DONE
            return [self.send_cipher.seal(encode(HandshakeAccept(self.peer_identity)))]
        if state is State.AWAIT_ACCEPT:
            self._finish()
            assert self.recv_cipher is not None
            accept = decode(self.recv_cipher.open(body), HandshakeAccept)
            if accept.initiator != self._identity.public_key:
                raise HandshakeError("the peer accepted a different identity")
            self.state = State.DONE
            return []
        raise LocalProtocolError(f"receive_frame() in state {state.name}")

    def _on_hello(self, hello: HandshakeHello) -> None:
        if hello.protocol != PROTOCOL:
            raise HandshakeError(f"peer speaks {hello.protocol!r}, we speak {PROTOCOL!r}")
        if hello.chain_id != self._chain_id:
            raise HandshakeError(
                f"peer is on chain id {hello.chain_id}, we are on {self._chain_id}; "
                "check --chain-id on both nodes"
            )
        peer_hello = encode(hello)
        if peer_hello == self._hello:
            raise HandshakeError("peer echoed our own ephemeral key")
        first, second = (
            (self._hello, peer_hello) if self.role is Role.INITIATOR else (peer_hello, self._hello)
        )
        self._transcript = hashlib.sha256(TRANSCRIPT_DOMAIN + first + second).digest()
        try:
            shared = self._eph.exchange(X25519PublicKey.from_public_bytes(hello.ephemeral))
        except ValueError:
            raise HandshakeError("peer sent a degenerate X25519 key") from None
        okm = HKDF(hashes.SHA256(), 128, self._transcript, KEY_INFO).derive(shared)
        hs_i2r, hs_r2i, app_i2r, app_r2i = (okm[i : i + 32] for i in range(0, 128, 32))
        if self.role is Role.INITIATOR:
            self._hs_send, self._hs_recv = Cipher(hs_i2r), Cipher(hs_r2i)
            self._app_keys = (app_i2r, app_r2i)
        else:
            self._hs_send, self._hs_recv = Cipher(hs_r2i), Cipher(hs_i2r)
            self._app_keys = (app_r2i, app_i2r)

    def _seal_auth(self) -> bytes:
        assert self._hs_send is not None
        me = self._identity.public_key
        sig = self._identity.sign(auth_payload(self.role, self._transcript, me))
        return self._hs_send.seal(encode(HandshakeAuth(me, sig)))

    def _check_auth(self, auth: HandshakeAuth) -> None:
        peer_role = Role.RESPONDER if self.role is Role.INITIATOR else Role.INITIATOR
        payload = auth_payload(peer_role, self._transcript, auth.identity)
        if not verify(auth.identity, auth.signature, payload):
            raise HandshakeError(
                "peer's identity signature over the handshake transcript is invalid",
                Offense.INVALID_SIGNATURE,
            )
        if not self._is_allowed(auth.identity):
            raise HandshakeError(
                f"peer identity {auth.identity.hex()} is not an allowed sequencer "
                "(not registered on L1 / not in the allowlist, or banned)"
            )
        self.peer_identity = auth.identity

    def _finish(self) -> None:
        assert self._app_keys is not None
        if self.send_cipher is None:
            self.send_cipher, self.recv_cipher = (
                Cipher(self._app_keys[0]),
                Cipher(self._app_keys[1]),
            )
