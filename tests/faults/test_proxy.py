"""The fault proxy on its own: a framed echo server behind it, each fault observed from a
client (no node involved)."""

from __future__ import annotations

import pytest
import trio

from tests.faults.proxy import HEADER, Faults, LinkProxy


def frame(body: bytes) -> bytes:
    return HEADER.pack(len(body)) + body


async def _echo(stream: trio.SocketStream) -> None:
    try:
        while data := await stream.receive_some(65536):
            await stream.send_all(data)
    except trio.BrokenResourceError:
        pass


@pytest.fixture
async def proxy(nursery: trio.Nursery) -> LinkProxy:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    nursery.start_soon(trio.serve_listeners, _echo, listeners)
    p = LinkProxy("test", ("127.0.0.1", port), seed=1)
    await nursery.start(p.run)
    return p


async def _read(stream: trio.SocketStream, n: int, limit_s: float = 5.0) -> bytes:
    out = b""
    with trio.fail_after(limit_s):
        while len(out) < n:
            data = await stream.receive_some(n - len(out))
            if not data:
                break
            out += data
    return out


async def test_clean_proxy_forwards_both_ways(proxy: LinkProxy) -> None:
    s = await trio.open_tcp_stream("127.0.0.1", proxy.port)
    msg = frame(b"hello") + frame(b"world")
    await s.send_all(msg)
    assert await _read(s, len(msg)) == msg
    await s.aclose()


async def test_delay_holds_each_frame_back(proxy: LinkProxy) -> None:
    proxy.set(delay_ms=150)
    s = await trio.open_tcp_stream("127.0.0.1", proxy.port)
    t0 = trio.current_time()
    await s.send_all(frame(b"x"))
    assert await _read(s, 5) == frame(b"x")
    # once on the way in, once on the way back
    assert trio.current_time() - t0 >= 0.29


async def test_blackhole_holds_until_healed(proxy: LinkProxy) -> None:
    s = await trio.open_tcp_stream("127.0.0.1", proxy.port)
    proxy.set(blackhole=True)
    await s.send_all(frame(b"held"))
    with trio.move_on_after(0.3) as scope:
        await s.receive_some(100)
    assert scope.cancelled_caught, "a blackholed link delivered data"
    proxy.heal()
    assert await _read(s, 8) == frame(b"held")


async def test_refuse_closes_existing_and_new_connections(proxy: LinkProxy) -> None:
    s = await trio.open_tcp_stream("127.0.0.1", proxy.port)
    proxy.set(refuse=True)
    assert await _read(s, 1) == b""
    s2 = await trio.open_tcp_stream("127.0.0.1", proxy.port)
    assert await _read(s2, 1) == b""
    assert proxy.stats.refused >= 1


async def test_drop_and_duplicate_whole_frames(proxy: LinkProxy) -> None:
    s = await trio.open_tcp_stream("127.0.0.1", proxy.port)
    proxy.set(Faults(drop=1.0))
    await s.send_all(frame(b"lost"))
    with trio.fail_after(5):
        await proxy.wait_stats(lambda st: st.dropped >= 1)
    proxy.set(drop=0.0, duplicate=1.0)
    await s.send_all(frame(b"twice"))
    # duplicated on the way in (2), each echoed and duplicated on the way back (4)
    assert await _read(s, 4 * 9) == frame(b"twice") * 4
    assert proxy.stats.dropped == 1
    assert proxy.stats.duplicated == 3  # one on the way in, two on the way back


async def test_cut_sends_half_a_frame_then_closes(proxy: LinkProxy) -> None:
    s = await trio.open_tcp_stream("127.0.0.1", proxy.port)
    proxy.set(cut=1.0)
    body = bytes(range(100))
    await s.send_all(frame(body))
    got = await _read(s, 200)
    assert got == b""  # the upstream got a half frame; the client's side was closed
    assert proxy.stats.cuts == 1


async def test_frames_split_across_writes_are_reassembled(proxy: LinkProxy) -> None:
    proxy.set(delay_ms=1)
    s = await trio.open_tcp_stream("127.0.0.1", proxy.port)
    msg = frame(b"a" * 1000)
    for i in range(0, len(msg), 7):
        await s.send_all(msg[i : i + 7])
    assert await _read(s, len(msg)) == msg
