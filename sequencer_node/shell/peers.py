"""The peer manager: listens, dials a static peer list, keeps one secure connection per peer
identity, gossips, scores peers and delivers every inbound message to ONE channel.

Theory of operation
-------------------
* **Readiness.** ``await nursery.start(manager.run)`` returns the bound TCP port once the
  listener is accepting. Cancelling ``run`` (or calling :meth:`PeerManager.close`) closes every
  connection and then the inbound channel, so the consumer sees ``trio.EndOfChannel``.
* **Identity, not address.** Dialled and accepted streams go through the handshake; the peer's
  Ed25519 key identifies it. ``is_allowed`` (registered on L1, or an allowlist) and the ban list
  are checked inside the handshake, before the peer can send a protocol message.
* **One connection per identity.** If both sides dial at once, the connection *initiated by
  the lower public key* wins, on both sides (each side computes the same answer). A new
  connection with the same initiator as the old one replaces it (the old one is stale, e.g.
  the peer restarted). So does any new connection while the old one has carried no frame for
  ``stale_link_s`` (a live peer pings every ``keepalive_interval_s``): a peer that restarted
  behind a dead path (a crashed host, a blackhole) is heard once the old link has been
  silent that long, not after the old link's idle timeout. A dialer whose peer is connected
  (by the other direction) waits for that connection to end instead of redialling.
* **Reconnect.** Failed dials back off exponentially from ``backoff_initial_s`` to
  ``backoff_max_s`` with "equal jitter" (half fixed, half random from the injected
  ``random.Random``), so restarted nodes do not dial in lockstep.
* **Outbound.** Each peer has a bounded queue (``outbound_queue`` messages). Enqueueing never
  waits: a full queue means the peer is too slow, and it is dropped (disconnected, not
  penalised). One writer task per peer takes everything queued (up to
  ``max_coalesce_bytes``) and sends it with one ``send_all`` (write coalescing).
* **Inbound.** One reader task per peer: strict decoding (the transport), token buckets per
  peer for messages and bytes (a message over the rate is dropped and charged FLOOD), gossip
  dedup by message id, relay of new gossip to ``fanout`` peers except the source
  (``auto_relay``; off if the node prefers to relay only what its core has validated, via
  :meth:`relay`; on a full mesh to at most ``relay_fanout`` random peers: the origin sent it
  to every peer itself, so relaying to all made n^2 copies of each vote and block, the
  16-node collapse of issue 13, while a few random relays still reach a node whose link to
  the origin is down), then one
  ``(peer_pubkey, message)`` into :attr:`inbound`. A full inbound channel makes the readers
  wait (TCP backpressure), which is the intended overload behaviour.
* **Validation hook.** ``validate(peer, message)`` (optional) runs after dedup and before
  delivery and relay: a cheap stateless check (e.g. a vote's signature, every transaction of a
  gossiped batch) so that invalid messages are charged to the sender and never relayed. It
  returns None, one :class:`Offense`, or an iterable of offenses (one per invalid item of a
  batch), each charged in turn until the sender is banned; a message with any offense is
  dropped. A repeat of an already-seen gossip message is dropped without penalty. An
  optional ``prepare(peer, message)`` is awaited first: work that may wait without holding
  the event loop (the node checks a batch's signatures in worker threads there, so that the
  validate hook finds them remembered).
* **Handshake slots.** Inbound connections in their handshake are admitted by
  :class:`~sequencer_node.shell.handshake_slots.HandshakeSlots`: bounded in total, per remote
  address and per key, strangers evicted before known validators.
* **Scoring.** Framing, crypto and decoding errors close the connection and charge the peer;
  the core charges semantic offenses with :meth:`penalize`. A score at the threshold bans the
  identity for ``ban_s``; the node itself never stops for a peer's fault.

Everything here runs in the caller's Trio run; ``broadcast``, ``send_to`` and ``penalize``
are synchronous and never block, so the single core-owning task can call them freely.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import random
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field

import trio

from sequencer_node.shell.errors import ConnectionClosed, HandshakeError, RemoteProtocolError
from sequencer_node.shell.gossip import SeenCache, TxBatcher, choose_targets
from sequencer_node.shell.handshake import IsAllowed, Role
from sequencer_node.shell.handshake_slots import HandshakeSlots, PendingHandshake
from sequencer_node.shell.p2p_messages import TxBatch
from sequencer_node.shell.scoring import Offense, ScoreBoard, ScoringConfig, Verdict
from sequencer_node.shell.transport import (
    SecureConnection,
    TransportConfig,
    secure_accept,
    secure_connect,
)
from sequencer_node.system.hostport import HostPort
from sequencer_node.system.retry import backoff_delay
from sequencer_node.wire.codec import encode
from sequencer_node.wire.crypto import SigningKey
from sequencer_node.wire.messages import Transaction

log = logging.getLogger(__name__)

#: The validate hook: ``validate(peer, message)`` returns None (or nothing) if the message
#: may be delivered and relayed, else the offense(s) to charge; an iterable is consumed lazily.
Validate = Callable[[bytes, object], Offense | Iterable[Offense] | None]
#: The prepare hook: ``await prepare(peer, message)`` runs before the validate hook, for work
#: that may wait without holding the event loop (the node checks signatures in worker
#: threads there). It decides nothing: the validate hook still does.
Prepare = Callable[[bytes, object], Awaitable[None]]

_IO_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError, OSError)


#: A peer's TCP address: the shared ``HOST:PORT`` type (one parser for every flag and registry
#: field that names an endpoint).
PeerAddress = HostPort


@dataclass(frozen=True, slots=True)
class PeerConfig:
    transport: TransportConfig = field(default_factory=TransportConfig)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    #: Messages queued per peer before the peer counts as too slow and is dropped.
    outbound_queue: int = 4096
    max_coalesce_bytes: int = 1024 * 1024
    #: Buffer of the single inbound channel consumed by the core-owning task.
    inbound_buffer: int = 1024
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    #: None: flood to every peer (small networks); k: relay to k random peers.
    fanout: int | None = None
    #: With ``fanout=None`` (full mesh: the origin sends to every peer), a relay goes to at
    #: most this many random peers (None: all). 4 nodes relay to the 2 others either way.
    relay_fanout: int | None = 3
    seen_cache_size: int = 100_000
    seen_ttl_s: float = 300.0
    auto_relay: bool = True
    #: Inbound connections still in their handshake: in total, per remote address, per key
    #: (see :mod:`~sequencer_node.shell.handshake_slots`).
    max_pending_handshakes: int = 64
    max_pending_per_host: int = 8
    max_pending_per_key: int = 2
    max_peers: int = 256
    #: Client transactions disseminated in the last ``resend_window_s`` (at most
    #: ``resend_max_bytes`` of frames) are sent again to a peer that (re)connects: on a full
    #: mesh each goes to each peer once and nobody relays it, so a session that broke with it
    #: in flight, or a peer that was away when it went out, would otherwise never get it. The
    #: window covers a failed handshake (10 s) and a redial after it.
    resend_window_s: float = 60.0
    resend_max_bytes: int = 16 * 1024 * 1024
    #: An established link silent (not even a Ping) for this long gives way to a new
    #: connection from the same identity, whoever dialled. Above the keepalive interval
    #: (10 s), below the idle timeout (30 s) that would close it anyway.
    stale_link_s: float = 15.0


@dataclass(frozen=True, slots=True)
class PeerStatus:
    identity: bytes
    address: str
    direction: str  # "in" or "out"
    connected_at: float
    queued: int
    score: float
    frames_sent: int
    frames_received: int


@dataclass(frozen=True, slots=True)
class PeerManagerStatistics:
    connected: int
    messages_in: int
    messages_out: int
    bytes_out: int  # encoded message bytes handed to the connections (before framing)
    duplicates_dropped: int
    rejected: int  # refused by the validate hook (charged to the sender)
    relayed: int
    slow_peer_drops: int
    handshake_failures: int
    handshakes_evicted: int  # pending handshakes evicted for a newcomer (slot rules)
    refused_peer_limit: int
    bans: int
    offenses: dict[str, int]
    #: Disseminated frames sent again to a peer that (re)connected (``resend_window_s``).
    resent: int = 0
    #: Silent links given up for a new connection from the same identity (``stale_link_s``).
    stale_links_replaced: int = 0


class _Peer:
    """One live connection and its bounded outbound queue."""

    def __init__(self, conn: SecureConnection, address: str, queue: int, now: float) -> None:
        self.conn = conn
        self.identity = conn.peer_identity
        self.address = address
        self.direction = "out" if conn.role is Role.INITIATOR else "in"
        self.connected_at = now
        self.scope = trio.CancelScope()
        self.closed = trio.Event()
        self.send, self.recv = trio.open_memory_channel[tuple[bytes, bool]](queue)


class PeerManager:
    """See the module docstring. Create, ``await nursery.start(pm.run)``, consume ``inbound``."""

    def __init__(
        self,
        identity: SigningKey,
        chain_id: int,
        *,
        is_allowed: IsAllowed,
        peers: Sequence[PeerAddress] = (),
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
        config: PeerConfig | None = None,
        rng: random.Random | None = None,
        connect: Callable[[PeerAddress], Awaitable[trio.abc.Stream]] | None = None,
        listeners: Sequence[trio.abc.Listener[trio.abc.Stream]] | None = None,
        validate: Validate | None = None,
        prepare: Prepare | None = None,
    ) -> None:
        self.identity = identity
        self.chain_id = chain_id
        self.config = config or PeerConfig()
        self._is_allowed = is_allowed
        self._addresses = list(peers)
        self._listen = (listen_host, listen_port)
        self._rng = rng or random.Random()
        self._connect = connect or _tcp_connect
        self._listeners = listeners
        self._validate = validate
        self._prepare = prepare
        self._peers: dict[bytes, _Peer] = {}
        self._scores = ScoreBoard(self.config.scoring)
        self._seen = SeenCache(self.config.seen_cache_size, self.config.seen_ttl_s)
        self._recent: deque[tuple[float, bytes]] = deque()
        self._recent_bytes = 0
        self._inbound_send, self.inbound = trio.open_memory_channel[tuple[bytes, object]](
            self.config.inbound_buffer
        )
        self._changed = trio.Event()
        self._run_scope: trio.CancelScope | None = None
        self._dial_nursery: trio.Nursery | None = None
        c = self.config
        self._slots = HandshakeSlots(
            c.max_pending_handshakes, c.max_pending_per_host, c.max_pending_per_key
        )
        self._slot_scopes: dict[PendingHandshake, trio.CancelScope] = {}
        self._closing = False
        self._stats = dict.fromkeys(
            (
                "messages_in",
                "messages_out",
                "bytes_out",
                "duplicates_dropped",
                "rejected",
                "relayed",
                "slow_peer_drops",
                "handshake_failures",
                "handshakes_evicted",
                "refused_peer_limit",
                "bans",
                "resent",
                "stale_links_replaced",
            ),
            0,
        )

    # --- lifecycle -------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen, dial and serve until cancelled or :meth:`close`; ``started(port)``."""
        listeners = self._listeners
        port = 0
        if listeners is None:
            host, want = self._listen
            tcp = await trio.open_tcp_listeners(want, host=host)
            port = tcp[0].socket.getsockname()[1]
            listeners = tcp
        try:
            with trio.CancelScope() as self._run_scope:
                async with trio.open_nursery() as nursery:
                    self._dial_nursery = nursery
                    for listener in listeners:
                        nursery.start_soon(self._accept_loop, listener, nursery)
                    for address in self._addresses:
                        nursery.start_soon(self._dial_loop, address)
                    task_status.started(port)
        finally:
            self._dial_nursery = None
            with trio.CancelScope(shield=True):
                for listener in listeners:
                    await listener.aclose()
                await self._inbound_send.aclose()

    def add_peer(self, address: PeerAddress) -> bool:
        """Also dial ``address`` from now on (e.g. a sequencer registered on L1 after start).
        False if it is already dialled, or the manager is not running or is closing."""
        if address in self._addresses or self._dial_nursery is None or self._closing:
            return False
        self._addresses.append(address)
        self._dial_nursery.start_soon(self._dial_loop, address)
        return True

    def close(self) -> None:
        """Stop now: close the listener and every connection (``run`` returns)."""
        self._closing = True
        if self._run_scope is not None:
            self._run_scope.cancel()

    async def shutdown(self, timeout_s: float = 2.0) -> None:
        """Graceful stop: refuse new connections and dials, send what is already queued to
        each peer (for at most ``timeout_s``), then :meth:`close`."""
        self._closing = True
        for peer in list(self._peers.values()):
            peer.send.close()  # its writer drains the queue, then ends the connection
        with trio.move_on_after(timeout_s):
            await self.wait_until(lambda: not self._peers)
        self.close()

    async def _accept_loop(
        self, listener: trio.abc.Listener[trio.abc.Stream], nursery: trio.Nursery
    ) -> None:
        while True:
            try:
                stream = await listener.accept()
            except OSError as e:  # EMFILE and friends: back off, keep serving
                log.warning("accept failed: %s", e)
                await trio.sleep(0.1)
                continue
            nursery.start_soon(self._handle_incoming, stream)

    async def _handle_incoming(self, stream: trio.abc.Stream) -> None:
        address = _remote_address(stream)
        host = address.rpartition(":")[0] or address
        admission = self._slots.admit(
            host, known=host in self._known_hosts(), now=trio.current_time()
        )
        for victim in admission.evict:
            self._stats["handshakes_evicted"] += 1
            self._slot_scopes.pop(victim).cancel()
        slot = admission.slot
        if slot is None or self._closing:
            if slot is not None:
                self._slots.release(slot)
            await stream.aclose()
            return
        conn = None
        with trio.CancelScope() as self._slot_scopes[slot]:
            try:
                conn = await secure_accept(
                    stream,
                    identity=self.identity,
                    chain_id=self.chain_id,
                    is_allowed=lambda pk: self._admit_key(slot, pk),
                    config=self.config.transport,
                )
            except (HandshakeError, *_IO_ERRORS) as e:
                self._stats["handshake_failures"] += 1
                log.info("inbound handshake failed: %s", e)
            finally:
                self._slots.release(slot)
                self._slot_scopes.pop(slot, None)
        if conn is None:  # failed, or evicted for a newcomer
            self._notify()
            with trio.CancelScope(shield=True):
                await stream.aclose()
            return
        await self._serve(conn, address)

    def _admit_key(self, slot: PendingHandshake, pubkey: bytes) -> bool:
        allowed = self._allowed(pubkey)
        return self._slots.present_key(slot, pubkey, allowed=allowed) and allowed

    def _known_hosts(self) -> set[str]:
        """Addresses of known validators: those we dial, and those of connected peers."""
        hosts = {a.host for a in self._addresses}
        hosts.update(p.address.rpartition(":")[0].strip("[]") for p in self._peers.values())
        return hosts

    async def _dial_loop(self, address: PeerAddress) -> None:
        attempt = 0
        known: bytes | None = None
        while not self._closing:
            current = self._peers.get(known) if known is not None else None
            if current is not None:
                await current.closed.wait()
                attempt = 0
            if attempt:
                await trio.sleep(
                    backoff_delay(
                        attempt,
                        initial_s=self.config.backoff_initial_s,
                        max_s=self.config.backoff_max_s,
                        rng=self._rng,
                    )
                )
            attempt += 1
            try:
                stream = await self._connect(address)
                conn = await secure_connect(
                    stream,
                    identity=self.identity,
                    chain_id=self.chain_id,
                    is_allowed=self._allowed,
                    config=self.config.transport,
                )
            except (HandshakeError, *_IO_ERRORS) as e:
                log.info("dial %s failed (attempt %d): %s", address, attempt, e)
                continue
            known = conn.peer_identity
            if known == self.identity.public_key:
                log.warning("peer address %s is this node itself; not dialling it", address)
                await conn.aclose()
                return
            attempt = 1  # after a drop, wait one base delay before redialling
            await self._serve(conn, str(address))

    def _allowed(self, pubkey: bytes) -> bool:
        if pubkey == self.identity.public_key:
            return True  # a self-dial completes and is then closed by the dialer
        if self._scores.is_banned(pubkey, trio.current_time()):
            return False
        return self._is_allowed(pubkey)

    # --- one connection --------------------------------------------------------------------

    async def _serve(self, conn: SecureConnection, address: str) -> None:
        peer = self._register(conn, address)
        if peer is None:
            await conn.aclose()
            return
        try:
            with peer.scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._writer, peer)
                    nursery.start_soon(self._keepalive, peer)
                    await self._reader(peer)
                    nursery.cancel_scope.cancel()
        finally:
            if self._peers.get(peer.identity) is peer:
                del self._peers[peer.identity]
            peer.send.close()
            peer.closed.set()
            self._notify()
            await conn.aclose()

    def _register(self, conn: SecureConnection, address: str) -> _Peer | None:
        ident = conn.peer_identity
        if ident == self.identity.public_key or self._closing:
            return None
        old = self._peers.get(ident)
        if old is None and len(self._peers) >= self.config.max_peers:
            log.warning("peer limit %d reached; refusing %s", self.config.max_peers, address)
            self._stats["refused_peer_limit"] += 1
            self._notify()
            return None
        if old is not None:
            if not self._prefer_new(old.conn, conn):
                return None
            old.scope.cancel()
        peer = _Peer(conn, address, self.config.outbound_queue, trio.current_time())
        conn.drop_gossip = functools.partial(self._gossip_filter, ident)
        self._peers[ident] = peer
        self._resend_recent(peer)
        self._notify()
        return peer

    def _prefer_new(self, old: SecureConnection, new: SecureConnection) -> bool:
        me, them = self.identity.public_key, new.peer_identity

        def initiator(c: SecureConnection) -> bytes:
            return me if c.role is Role.INITIATOR else them

        if initiator(old) == initiator(new):
            return True
        if initiator(new) == min(me, them):
            return True
        silent = trio.current_time() - old.last_frame_at
        if silent > self.config.stale_link_s:
            log.info("peer %s: replacing a link silent for %.1f s with its new connection",
                     them.hex()[:16], silent)  # fmt: skip
            self._stats["stale_links_replaced"] += 1
            return True
        return False

    async def _keepalive(self, peer: _Peer) -> None:
        try:
            await peer.conn.keepalive()
        except _IO_ERRORS:
            peer.scope.cancel()

    async def _writer(self, peer: _Peer) -> None:
        limit = self.config.max_coalesce_bytes
        try:
            async for first in peer.recv:
                batch, size = [first], len(first[0])
                while size < limit:
                    try:
                        item = peer.recv.receive_nowait()
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                    batch.append(item)
                    size += len(item[0])
                await peer.conn.send_encoded(batch)
                self._stats["messages_out"] += len(batch)
                self._stats["bytes_out"] += size
            peer.scope.cancel()  # the queue was closed and drained (shutdown): hang up
        except _IO_ERRORS as e:
            log.info("peer %s: send failed: %s", peer.identity.hex()[:16], e)
            peer.scope.cancel()

    async def _reader(self, peer: _Peer) -> None:
        ident = peer.identity
        while True:
            try:
                inbound = await peer.conn.receive()
            except RemoteProtocolError as e:
                log.info("peer %s: %s", ident.hex()[:16], e)
                self.penalize(ident, e.offense)
                return
            except (ConnectionClosed, *_IO_ERRORS):
                return
            # A gossiped message was metered and deduplicated before its decoding
            # (_gossip_filter); a direct one is metered here.
            if not inbound.gossip:
                if not self._scores.allow_message(ident, trio.current_time(), len(inbound.raw)):
                    if self.penalize(ident, Offense.FLOOD) is Verdict.BAN:
                        return
                    continue
                self._stats["messages_in"] += 1
            if self._prepare is not None:
                await self._prepare(ident, inbound.message)
            verdict = self._check(ident, inbound.message)
            if verdict is Verdict.BAN:
                return
            if verdict is not None:
                continue
            if inbound.gossip and self.config.auto_relay:
                self._stats["relayed"] += self._gossip_raw(
                    inbound.raw, exclude=(ident,), relay=True
                )
            try:
                await self._inbound_send.send((ident, inbound.message))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return  # the node stopped consuming: it is shutting down

    def _gossip_filter(self, ident: bytes, raw: bytes) -> bool:
        """The transport's hook for a gossiped message, decrypted but not yet decoded: charge
        ``ident``'s rate (a message over it is dropped and charged FLOOD, which may ban) and
        drop a message seen before, so that a duplicate costs a decrypt and a hash, never a
        strict decode. True: drop it."""
        now = trio.current_time()
        if not self._scores.allow_message(ident, now, len(raw)):
            self.penalize(ident, Offense.FLOOD)  # a ban cancels the reader
            return True
        self._stats["messages_in"] += 1
        if not self._seen.add(hashlib.sha256(raw).digest(), now):
            self._stats["duplicates_dropped"] += 1
            return True
        return False

    def _check(self, ident: bytes, message: object) -> Verdict | None:
        """Run the validate hook and charge ``ident`` for each offense it finds (stopping at a
        ban, so a long invalid batch is not checked to its end); None if the message passes."""
        if self._validate is None:
            return None
        found = self._validate(ident, message)
        if found is None:
            return None
        verdict: Verdict | None = None
        for offense in (found,) if isinstance(found, Offense) else found:
            verdict = self.penalize(ident, offense)
            if verdict is Verdict.BAN:
                break
        if verdict is not None:
            self._stats["rejected"] += 1
        return verdict

    def _drop(self, peer: _Peer) -> None:
        """Forget ``peer`` now (no more sends to it) and make its tasks close the stream."""
        if self._peers.get(peer.identity) is peer:
            del self._peers[peer.identity]
            self._notify()
        peer.send.close()
        peer.scope.cancel()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    # --- API for the core-owning task ------------------------------------------------------

    def broadcast(self, msg: object, *, exclude: Collection[bytes] = ()) -> int:
        """Gossip ``msg`` (marked seen, so echoes are dropped); returns how many peers it was
        queued for. Never blocks; a peer whose queue is full is dropped."""
        raw = encode(msg)
        self._seen.add(hashlib.sha256(raw).digest(), trio.current_time())
        return self._gossip_raw(raw, exclude=exclude)

    def disseminate(self, msg: object) -> int:
        """Send ``msg`` once to every connected peer, not to be relayed, on a full mesh
        (``fanout=None``: every peer gets it from us directly, so relayed copies would only be
        dropped as duplicates after costing a decrypt each); gossip it when the fanout
        limits who we reach. For client transactions (``TxBatch``): a peer this node is not
        linked to gets them in the blocks that include them."""
        if self.config.fanout is not None:
            return self.broadcast(msg)
        raw = encode(msg)
        self._recent.append((trio.current_time(), raw))
        self._recent_bytes += len(raw)
        self._trim_recent()
        return sum(self._enqueue(p, raw, False) for p in list(self._peers.values()))

    def _trim_recent(self) -> None:
        since = trio.current_time() - self.config.resend_window_s
        while self._recent and (
            self._recent[0][0] < since or self._recent_bytes > self.config.resend_max_bytes
        ):
            self._recent_bytes -= len(self._recent.popleft()[1])

    def _resend_recent(self, peer: _Peer) -> None:
        """Send a (re)connected peer what was disseminated in the last ``resend_window_s``
        (a duplicate of what it already has costs it one mempool lookup)."""
        self._trim_recent()
        for _, raw in list(self._recent):
            if not self._enqueue(peer, raw, False):
                return
            self._stats["resent"] += 1

    def relay(self, msg: object, *, source: bytes) -> int:
        """Relay a message received from ``source`` (for ``auto_relay=False``)."""
        return self._gossip_raw(encode(msg), exclude=(source,), relay=True)

    def _gossip_raw(self, raw: bytes, *, exclude: Collection[bytes], relay: bool = False) -> int:
        fanout = self.config.fanout
        if relay and fanout is None:
            fanout = self.config.relay_fanout
        targets = choose_targets(self._peers, exclude=exclude, fanout=fanout, rng=self._rng)
        return sum(self._enqueue(self._peers[t], raw, True) for t in targets)

    def send_to(self, peer: bytes, msg: object, *, gossip: bool = False) -> bool:
        """Send ``msg`` to one peer (not relayed, unless flagged as ``gossip``). False if not
        connected or just dropped for being too slow. Never blocks."""
        p = self._peers.get(peer)
        return p is not None and self._enqueue(p, encode(msg), gossip)

    def connected(self) -> list[bytes]:
        """The identities of the connected peers, sorted."""
        return sorted(self._peers)

    def _enqueue(self, peer: _Peer, raw: bytes, gossip: bool) -> bool:
        try:
            peer.send.send_nowait((raw, gossip))
        except trio.WouldBlock:
            self._stats["slow_peer_drops"] += 1
            log.warning("peer %s is too slow (queue full); dropping it", peer.identity.hex()[:16])
            self._drop(peer)
            return False
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            return False
        return True

    def penalize(self, peer: bytes, offense: Offense) -> Verdict:
        """Charge ``peer`` for ``offense``; on BAN it is disconnected and refused for a while."""
        verdict = self._scores.penalize(peer, offense, trio.current_time())
        if verdict is Verdict.BAN:
            p = self._peers.get(peer)
            if p is not None:
                self._stats["bans"] += 1
                log.warning("peer %s banned after %s", peer.hex()[:16], offense.value)
                self._drop(p)
        return verdict

    def disconnect(self, peer: bytes) -> None:
        """Close the connection to ``peer`` now, without penalty (e.g. it left the validator
        set; ``is_allowed`` then keeps it out)."""
        p = self._peers.get(peer)
        if p is not None:
            self._drop(p)

    def is_connected(self, peer: bytes) -> bool:
        return peer in self._peers

    def peers(self) -> list[PeerStatus]:
        now = trio.current_time()
        out = []
        for ident, p in sorted(self._peers.items()):
            st = p.conn.statistics()
            out.append(
                PeerStatus(
                    ident,
                    p.address,
                    p.direction,
                    p.connected_at,
                    p.recv.statistics().current_buffer_used,
                    self._scores.status(ident, now).score,
                    st.frames_sent,
                    st.frames_received,
                )
            )
        return out

    def score(self, peer: bytes) -> float:
        return self._scores.status(peer, trio.current_time()).score

    def is_banned(self, peer: bytes) -> bool:
        return self._scores.is_banned(peer, trio.current_time())

    def statistics(self) -> PeerManagerStatistics:
        return PeerManagerStatistics(
            connected=len(self._peers),
            offenses={o.value: n for o, n in self._scores.offense_counts.items() if n},
            **self._stats,
        )

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds; re-checked whenever a peer connects or
        disconnects, an inbound handshake fails, or a peer is refused for the peer limit."""
        while not predicate():
            await self._changed.wait()

    async def wait_peers(self, n: int) -> None:
        """Wait until at least ``n`` peers are connected."""
        await self.wait_until(lambda: len(self._peers) >= n)

    async def wait_disconnected(self, peer: bytes) -> None:
        await self.wait_until(lambda: peer not in self._peers)


async def _tcp_connect(address: PeerAddress) -> trio.abc.Stream:
    return await trio.open_tcp_stream(address.host, address.port)


def _remote_address(stream: trio.abc.Stream) -> str:
    sock = getattr(stream, "socket", None)
    try:
        host, port = sock.getpeername()[:2]  # type: ignore[union-attr]
    except (AttributeError, OSError, TypeError, ValueError):
        return "inbound"
    return f"{host}:{port}"


async def run_tx_ingress(
    manager: PeerManager,
    transactions: trio.MemoryReceiveChannel[Transaction],
    batcher: TxBatcher | None = None,
    on_batch: Callable[[TxBatch, float], None] | None = None,
) -> None:
    """Send client transactions to the peers in TxBatch frames (a few ms or N txs per frame),
    once per peer (:meth:`PeerManager.disseminate`); ``on_batch(batch, now)`` sees each one
    first (the node's compact-block index).

    The RPC puts accepted transactions into ``transactions`` with ``send_nowait`` (a full
    channel means "busy, retry"). Returns, after flushing, when that channel is closed.
    """
    batcher = batcher or TxBatcher()

    def send(batch: TxBatch | None) -> None:
        if batch is not None:
            if on_batch is not None:
                on_batch(batch, trio.current_time())
            manager.disseminate(batch)

    while True:
        deadline = batcher.deadline()
        with trio.move_on_at(math.inf if deadline is None else deadline):
            try:
                tx = await transactions.receive()
            except trio.EndOfChannel:
                send(batcher.flush())
                return
            now = trio.current_time()
            batch = batcher.add(tx, now)
            # What is already queued joins without a wait per transaction (a request's
            # transactions arrive together: one task step each was a fifth of a loaded node's),
            # up to a full batch: the next one starts after a checkpoint.
            while batch is None:
                try:
                    tx = transactions.receive_nowait()
                except (trio.WouldBlock, trio.EndOfChannel):
                    break  # the end is seen by the next receive()
                batch = batcher.add(tx, now)
            send(batch)
            continue
        send(batcher.poll(trio.current_time()))
