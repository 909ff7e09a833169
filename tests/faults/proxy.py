"""A Trio TCP proxy per link that can blackhole, refuse, delay, drop, duplicate and cut.

Every node dials its peers (and the L1) at a proxy's address; the proxy forwards to the real
listener and applies the :class:`Faults` currently set on it, which the test changes at any
time. The proxy knows only the node's outer framing (a 4-byte big-endian length, then the
body: ``sequencer_node/shell/framing.py``), re-implemented here on purpose so the harness does
not run the code it tests. With ``framed=False`` (the L1's HTTP) it forwards raw chunks.

What each fault looks like to the nodes:

* ``blackhole``: a silent partition. Nothing is forwarded in either direction while it is set
  (bytes wait in bounded queues, then TCP back-pressure holds the sender), new connections
  are accepted but stall. Like a pulled cable under TCP: when it ends, what was held arrives.
* ``refuse``: the far side is down: existing connections are closed, new ones closed at once.
* ``delay_ms`` / ``jitter_ms``: each unit (frame, or chunk when unframed) is delivered that
  much later; order is kept, as TCP keeps it.
* ``drop`` / ``duplicate``: each frame is lost / sent twice with that probability. Frames are
  encrypted with a counter nonce, so the receiver cannot decrypt the rest of the stream and
  (rightly: loss is impossible under TCP, so this is tampering) closes it and charges the peer.
* ``cut``: with that probability a frame is cut in the middle and the connection closed.

Randomness comes from one seeded :class:`random.Random` per proxy, so a run is repeatable up
to scheduling.
"""

from __future__ import annotations

import dataclasses
import random
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

import trio

HEADER = struct.Struct(">I")
#: Units a direction may hold (delayed or blackholed) before the proxy stops reading.
QUEUE_UNITS = 512
CHUNK = 64 * 1024
#: Writer-queue items: (deliver at, data); None ends the stream, CUT closes the connection.
CUT = "cut"
_Item = tuple[float, bytes | str | None]


@dataclass(frozen=True, slots=True)
class Faults:
    """What a proxy does to the traffic it forwards (the default forwards untouched)."""

    blackhole: bool = False
    refuse: bool = False
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    drop: float = 0.0
    duplicate: float = 0.0
    cut: float = 0.0

    @property
    def clean(self) -> bool:
        return self == Faults()


@dataclass(slots=True)
class ProxyStats:
    connections: int = 0
    units: int = 0
    dropped: int = 0
    duplicated: int = 0
    cuts: int = 0
    refused: int = 0


@dataclass(eq=False)
class _Conn:
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)


class LinkProxy:
    """Listens on 127.0.0.1 and forwards every connection to ``upstream``.

    ``await nursery.start(proxy.run)`` returns the port; set faults with :meth:`set`.
    """

    def __init__(
        self,
        name: str,
        upstream: tuple[str, int],
        *,
        framed: bool = True,
        seed: int = 0,
        port: int = 0,
    ) -> None:
        self.name = name
        self.upstream = upstream
        self.framed = framed
        self.port = port
        self.faults = Faults()
        self.stats = ProxyStats()
        self._rng = random.Random(f"{seed}:{name}")
        self._conns: set[_Conn] = set()
        self._changed = trio.Event()
        self._progress = trio.Event()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def set(self, faults: Faults | None = None, **changes: object) -> None:
        """Replace the faults (or change some fields); takes effect at once."""
        base = faults if faults is not None else self.faults
        self.faults = dataclasses.replace(base, **changes)  # type: ignore[arg-type]
        if self.faults.refuse:
            self.reset()
        self._changed.set()
        self._changed = trio.Event()

    def heal(self) -> None:
        self.set(Faults())

    def reset(self) -> None:
        """Close every open connection now (the nodes see a reset and redial)."""
        for c in list(self._conns):
            c.scope.cancel()

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(self.port, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            task_status.started(self.port)
            await trio.serve_listeners(self._handle, listeners, handler_nursery=nursery)

    async def _handle(self, down: trio.SocketStream) -> None:
        if self.faults.refuse:
            self.stats.refused += 1
            await down.aclose()
            return
        try:
            up = await trio.open_tcp_stream(*self.upstream)
        except OSError:
            await down.aclose()
            return
        if self.faults.refuse:  # set while the upstream connection was being opened
            self.stats.refused += 1
            await up.aclose()
            await down.aclose()
            return
        self.stats.connections += 1
        conn = _Conn()
        self._conns.add(conn)
        try:
            with conn.scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._direction, down, up, conn)
                    nursery.start_soon(self._direction, up, down, conn)
        finally:
            self._conns.discard(conn)
            with trio.CancelScope(shield=True):
                await down.aclose()
                await up.aclose()

    async def _direction(self, src: trio.SocketStream, dst: trio.SocketStream, conn: _Conn) -> None:
        send, recv = trio.open_memory_channel[_Item](QUEUE_UNITS)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._writer, recv, dst, conn)
            await self._reader(src, send)

    async def _reader(self, src: trio.SocketStream, send: trio.MemorySendChannel[_Item]) -> None:
        buf = bytearray()
        last_at = 0.0
        async with send:
            while True:
                try:
                    data = await src.receive_some(CHUNK)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    data = b""
                if not data:
                    await send.send((last_at, None))  # end of stream
                    return
                buf += data
                for unit in self._units(buf):
                    for out in self._apply(unit):
                        last_at = max(last_at, self._deliver_at())
                        await send.send((last_at, out))

    def _units(self, buf: bytearray) -> list[bytes]:
        """Whole frames taken from ``buf`` (or everything, unframed)."""
        if not self.framed:
            out = [bytes(buf)]
            buf.clear()
            return out
        units: list[bytes] = []
        pos = 0
        while len(buf) - pos >= HEADER.size:
            (length,) = HEADER.unpack_from(buf, pos)
            end = pos + HEADER.size + length
            if len(buf) < end:
                break
            units.append(bytes(buf[pos:end]))
            pos = end
        del buf[:pos]
        return units

    async def wait_stats(self, predicate: Callable[[ProxyStats], bool]) -> None:
        """Wait until ``predicate(self.stats)`` holds (bound it with a cancel scope)."""
        while not predicate(self.stats):
            await self._progress.wait()

    def _apply(self, unit: bytes) -> list[bytes | str]:
        f = self.faults
        self.stats.units += 1
        self._progress.set()
        self._progress = trio.Event()
        rng = self._rng
        if f.drop and rng.random() < f.drop:
            self.stats.dropped += 1
            return []
        if f.cut and rng.random() < f.cut:
            self.stats.cuts += 1
            return [unit[: max(1, len(unit) // 2)], CUT]
        if f.duplicate and rng.random() < f.duplicate:
            self.stats.duplicated += 1
            return [unit, unit]
        return [unit]

    def _deliver_at(self) -> float:
        f = self.faults
        if not f.delay_ms and not f.jitter_ms:
            return trio.current_time()
        ms = max(0.0, f.delay_ms + self._rng.uniform(-f.jitter_ms, f.jitter_ms))
        return trio.current_time() + ms / 1000

    async def _writer(
        self, recv: trio.MemoryReceiveChannel[_Item], dst: trio.SocketStream, conn: _Conn
    ) -> None:
        async with recv:
            async for at, data in recv:
                await trio.sleep_until(at)
                while self.faults.blackhole:
                    await self._changed.wait()
                if data is None:
                    try:
                        await dst.send_eof()
                    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                        conn.scope.cancel()
                    return
                if isinstance(data, str):  # CUT
                    conn.scope.cancel()
                    return
                try:
                    await dst.send_all(data)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    conn.scope.cancel()
                    return


class ProxyMesh:
    """One proxy per directed p2p link ``i -> j`` (what ``i`` dials to reach ``j``).

    A link ``{i, j}`` is both proxies, so every fault here is symmetric.
    """

    def __init__(self, real_ports: list[int], seed: int) -> None:
        self.n = len(real_ports)
        self.proxies: dict[tuple[int, int], LinkProxy] = {
            (i, j): LinkProxy(f"p2p {i}->{j}", ("127.0.0.1", real_ports[j]), seed=seed)
            for i in range(self.n)
            for j in range(self.n)
            if i != j
        }

    async def start(self, nursery: trio.Nursery) -> None:
        for p in self.proxies.values():
            await nursery.start(p.run)

    def dial_list(self, i: int) -> list[str]:
        """The addresses node ``i`` is told to dial (one proxy per peer)."""
        return [self.proxies[(i, j)].address for j in range(self.n) if j != i]

    def link(self, i: int, j: int) -> list[LinkProxy]:
        return [self.proxies[(i, j)], self.proxies[(j, i)]]

    def set_link(self, i: int, j: int, faults: Faults) -> None:
        for p in self.link(i, j):
            p.set(faults)

    def isolate(self, i: int, faults: Faults) -> None:
        for j in range(self.n):
            if j != i:
                self.set_link(i, j, faults)

    def partition(self, groups: list[set[int]], faults: Faults | None = None) -> None:
        """Apply ``faults`` (a blackhole by default) to every link between two groups."""
        f = faults or Faults(blackhole=True)
        side = {i: g for g, members in enumerate(groups) for i in members}
        for (i, j), p in self.proxies.items():
            if side.get(i) != side.get(j):
                p.set(f)

    def everywhere(self, faults: Faults) -> None:
        for p in self.proxies.values():
            p.set(faults)

    def reset_all(self) -> None:
        for p in self.proxies.values():
            p.reset()

    def heal(self) -> None:
        for p in self.proxies.values():
            p.heal()

    def totals(self) -> ProxyStats:
        out = ProxyStats()
        for p in self.proxies.values():
            for f in dataclasses.fields(ProxyStats):
                setattr(out, f.name, getattr(out, f.name) + getattr(p.stats, f.name))
        return out
