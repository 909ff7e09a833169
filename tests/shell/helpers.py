"""Shared helpers for the node shell tests: keys, allowlists, stream pairs."""

from __future__ import annotations

from collections.abc import Callable

import trio
import trio.testing

from sequencer_node.shell.handshake import Handshake, Role
from sequencer_node.shell.transport import (
    SecureConnection,
    TransportConfig,
    secure_accept,
    secure_connect,
)
from sequencer_node.wire.crypto import SigningKey
from sequencer_node.wire.messages import Vote

CHAIN = 901
KEYS = [SigningKey.deterministic(f"node-test-{i}") for i in range(6)]
A, B, C, D, STRANGER = KEYS[0], KEYS[1], KEYS[2], KEYS[3], KEYS[5]
MEMBERS = frozenset(k.public_key for k in KEYS[:5])


def allowed(pubkey: bytes) -> bool:
    return pubkey in MEMBERS


def vote(n: int, key: SigningKey = A) -> Vote:
    return Vote(bytes([n % 256]) * 32, n, n, 0, key.public_key, bytes(64))


def handshake(role: Role, key: SigningKey, *, chain: int = CHAIN, seed: int = 1) -> Handshake:
    return Handshake(
        role, identity=key, chain_id=chain, is_allowed=allowed, ephemeral_seed=bytes([seed]) * 32
    )


def trickle_stream_pair() -> tuple[trio.abc.Stream, trio.abc.Stream]:
    """Like memory_stream_pair, but every receive_some gets at most one byte."""

    def one_way() -> tuple[trio.testing.MemorySendStream, trio.testing.MemoryReceiveStream]:
        s = trio.testing.MemorySendStream()
        r = trio.testing.MemoryReceiveStream()

        def pump() -> None:
            trio.testing.memory_stream_pump(s, r, max_bytes=1)

        async def apump() -> None:
            pump()

        s.send_all_hook = apump
        s.close_hook = pump  # close must reach the receiver too
        r.receive_some_hook = apump
        return s, r

    s1, r1 = one_way()
    s2, r2 = one_way()
    return trio.StapledStream(s1, r2), trio.StapledStream(s2, r1)


async def connect_pair(
    client_key: SigningKey = A,
    server_key: SigningKey = B,
    *,
    pair: Callable[[], tuple[trio.abc.Stream, trio.abc.Stream]] | None = None,
    config: TransportConfig | None = None,
) -> tuple[SecureConnection, SecureConnection]:
    left, right = (pair or trio.testing.memory_stream_pair)()
    result: dict[str, SecureConnection] = {}

    async def client() -> None:
        result["c"] = await secure_connect(
            left, identity=client_key, chain_id=CHAIN, is_allowed=allowed, config=config
        )

    async def server() -> None:
        result["s"] = await secure_accept(
            right, identity=server_key, chain_id=CHAIN, is_allowed=allowed, config=config
        )

    async with trio.open_nursery() as n:
        n.start_soon(client)
        n.start_soon(server)
    return result["c"], result["s"]


class MemoryListener(trio.abc.Listener[trio.abc.Stream]):
    """A listener fed by MemoryNetwork.connect (no sockets)."""

    def __init__(self) -> None:
        self.send, self.recv = trio.open_memory_channel[trio.abc.Stream](64)

    async def accept(self) -> trio.abc.Stream:
        try:
            return await self.recv.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise trio.ClosedResourceError from None

    async def aclose(self) -> None:
        await self.recv.aclose()


class MemoryNetwork:
    """In-memory 'TCP': addresses map to listeners; connect() makes a stream pair."""

    def __init__(
        self, pair: Callable[[], tuple[trio.abc.Stream, trio.abc.Stream]] | None = None
    ) -> None:
        self.listeners: dict[str, MemoryListener] = {}
        self.pair = pair or trio.testing.memory_stream_pair
        self.dials: list[tuple[float, str]] = []

    def listen(self, name: str) -> MemoryListener:
        self.listeners[name] = MemoryListener()
        return self.listeners[name]

    async def connect(self, address: object) -> trio.abc.Stream:
        self.dials.append((trio.current_time(), str(address)))
        listener = self.listeners.get(str(address))
        if listener is None:
            raise OSError(f"connection refused: {address}")
        a, b = self.pair()
        try:
            listener.send.send_nowait(b)
        except (trio.WouldBlock, trio.BrokenResourceError) as e:
            raise OSError(f"connection refused: {address}") from e
        return a
