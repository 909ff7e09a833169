"""In-process tests of the node runner, the genesis file and the L1 watcher.

A one-validator chain certifies on its own, so the whole runner (store, core task, RPC, L1
follower) runs in the test's Trio loop against an in-process L1 mock. Budget: ~10 s.
"""

from __future__ import annotations

import dataclasses
import json
import socket
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from l1_mock.chain import TOKEN, ChainConfig, GenesisSequencer
from l1_mock.genesis import dev_genesis
from l1_mock.server import L1Service, L1Settings
from l1_mock.server import serve as serve_l1
from sequencer_node.clients.l1 import L1Client
from sequencer_node.core import api
from sequencer_node.genesis import GenesisError, L2Genesis, load_genesis, write_genesis
from sequencer_node.shell.l1_watcher import L1StartError, L1Watcher
from sequencer_node.shell.node_service import Node, NodeSettings, NodeStartError
from sequencer_node.shell.p2p_messages import CompactBlock
from sequencer_node.wire.codec import decode
from sequencer_node.wire.messages import Block, TimeoutMessage, Vote, block_hash
from tests.node_process.helpers import L1_CHAIN, L2_CHAIN, USERS, make_tx, tx_body

KEY = USERS[2]  # any key: the single validator of these tests
GENESIS = L2Genesis(
    chain_id=L2_CHAIN,
    l1_chain_id=L1_CHAIN,
    validators=((KEY.public_key, 50_000 * TOKEN),),
    balances=((USERS[0].address, 10**12),),
    seed=bytes(32),
    params={"block_time_ms": 50, "timeout_base_ms": 1000, "epoch_length": 20},
)


def l1_genesis() -> Any:
    g = dev_genesis(
        ChainConfig(chain_id=L1_CHAIN, l2_chain_id=L2_CHAIN, genesis_time=1_700_000_000),
        (GenesisSequencer(KEY.public_key, KEY.address, "", "", 50_000 * TOKEN),),
    )
    return g


@pytest.fixture
async def l1_url(tmp_path: Path) -> AsyncIterator[str]:
    node = L1Service.open(l1_genesis(), L1Settings(tmp_path / "l1", 1, auto_mine=False))
    async with trio.open_nursery() as nursery:
        url: str = await nursery.start(serve_l1, node, "127.0.0.1", 0)
        yield url
        nursery.cancel_scope.cancel()
    node.store.close()


def settings(tmp_path: Path, l1_url: str, **kw: Any) -> NodeSettings:
    base = NodeSettings(
        data_dir=tmp_path / "node",
        genesis=GENESIS,
        key=KEY,
        l1_url=l1_url,
        p2p_host="127.0.0.1",
        p2p_port=0,
        rpc_host="127.0.0.1",
        rpc_port=0,
        tick_s=0.02,
        l1_poll_s=0.1,
        l1_start_timeout_s=2.0,
        shutdown_timeout_s=3.0,
        batcher=False,
    )
    return dataclasses.replace(base, **kw)


async def wait_until(what: str, check: Any, limit_s: float = 15.0) -> Any:
    with trio.fail_after(limit_s):
        while True:
            got = await check()
            if got:
                return got
            await trio.sleep(0.02)
    raise AssertionError(what)  # pragma: no cover


# --- genesis -----------------------------------------------------------------------------


def test_genesis_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "g.json"
    write_genesis(path, GENESIS)
    assert load_genesis(path) == GENESIS
    doc = json.loads(path.read_text())
    assert doc["validators"][0]["stake"] == str(50_000 * TOKEN)  # decimal string, exact
    assert GENESIS.core_config(KEY).block_time_ms == 50
    assert GENESIS.core_genesis().snapshot.table() == {KEY.public_key: 50_000 * TOKEN}


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.pop("chain_id"), "missing field 'chain_id'"),
        (lambda d: d["validators"][0].update(stake="-5"), r"validators\[0\].stake"),
        (lambda d: d["validators"][0].update(public_key="0x12"), r"validators\[0\].public_key"),
        (lambda d: d["params"].update(block_tim_ms=5), "params.block_tim_ms: unknown"),
        (lambda d: d["params"].update(epoch_length=1), "epoch_length must be at least 3"),
        (lambda d: d.update(validators=[]), "validators"),
        (lambda d: d.update(l1_chain_id=L2_CHAIN), "must differ"),
    ],
)
def test_genesis_errors_name_the_field(tmp_path: Path, edit: Any, message: str) -> None:
    doc = GENESIS.to_json()
    edit(doc)
    path = tmp_path / "g.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(GenesisError, match=message):
        load_genesis(path)


def test_genesis_file_errors(tmp_path: Path) -> None:
    with pytest.raises(GenesisError, match="no such genesis file"):
        load_genesis(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(GenesisError, match="not valid JSON"):
        load_genesis(tmp_path / "bad.json")


# --- the runner --------------------------------------------------------------------------


async def test_runner_certifies_persists_before_signing_and_restarts(
    tmp_path: Path, l1_url: str
) -> None:
    node = Node(settings(tmp_path, l1_url))
    log: list[tuple[str, Any]] = []
    # Record the order of durable watermark writes and outgoing signed messages. The writes
    # are recorded from the start (they run in a worker thread: one started before a later
    # patch would go unrecorded while its release is sent after the patch).
    node.open()
    assert node.store is not None
    real_write = node.store.write_watermark

    def write(record: bytes, blocks: Sequence[Block] = ()) -> None:
        real_write(record, blocks)
        log.append(("persist", decode(record, api.PersistedState)))
        log.extend(("durable", block_hash(b.header)) for b in blocks)

    node.store.write_watermark = write  # type: ignore[method-assign]
    async with httpx.AsyncClient(timeout=5) as http, trio.open_nursery() as nursery:
        addrs = await nursery.start(node.run)
        assert node.pm is not None
        real_broadcast = node.pm.broadcast

        def broadcast(msg: Any, **kw: Any) -> int:
            log.append(("send", msg))
            return real_broadcast(msg, **kw)

        node.pm.broadcast = broadcast  # type: ignore[method-assign]

        async def height() -> int:
            r = await http.get(addrs.rpc_url + "/v1/status")
            return int(r.json()["heads"]["certified"]["height"])

        await wait_until("height 3", lambda: _ge(height, 3))
        r = await http.get(addrs.rpc_url + "/health")
        assert r.json() == {"ok": True}
        tx = make_tx(USERS[0], USERS[1].address, 5, 0)
        r = await http.post(addrs.rpc_url + "/v1/tx", json=tx_body(tx))
        assert r.status_code == 200, r.text
        tx_hash = r.json()["tx_hash"]

        async def certified() -> bool:
            doc = (await http.get(f"{addrs.rpc_url}/v1/tx/{tx_hash}")).json()
            return bool(doc["status"] == "certified")

        await wait_until("tx certified", certified)
        st = (await http.get(addrs.rpc_url + "/v1/status")).json()
        assert st["role"] == "leader"
        assert st["l1"]["up"] is True
        acct = (await http.get(f"{addrs.rpc_url}/v1/account/0x{USERS[1].address.hex()}")).json()
        assert acct["balance"] == "5"
        assert (await http.get(addrs.rpc_url + "/v1/blocks/99999")).status_code == 404
        assert (await http.get(addrs.rpc_url + "/v1/account/0x12")).status_code == 400
        metrics = (await http.get(addrs.rpc_url + "/metrics")).text
        # The state gauges are set at the scrape (not on a core tick): they are current.
        gauges = dict(
            line.rsplit(" ", 1) for line in metrics.splitlines() if line.startswith("seqnet_")
        )
        certified_now = int(float(gauges['seqnet_head_height{head="certified"}']))
        assert certified_now >= st["heads"]["certified"]["height"] >= 3
        assert float(gauges["seqnet_is_leader"]) == 1.0
        assert float(gauges["seqnet_round"]) >= st["round"]
        node.stop()
    assert node.store is None  # closed by the graceful stop
    # Never sign twice: each signed message left after a durable record that covers it.
    # Durable before votes: each vote left after its block was stored with a record, and each
    # proposal after the block of the QC it carries (issue 11, finding 6).
    persisted: api.PersistedState | None = None
    durable: set[bytes] = set()
    sent = 0
    for kind, item in log:
        if isinstance(item, CompactBlock):  # a proposal as batch digests: its block is signed
            item = item.block
        if kind == "persist":
            persisted = item
            continue
        if kind == "durable":
            durable.add(item)
            continue
        if isinstance(item, (Block, Vote, TimeoutMessage)):
            assert persisted is not None
            if isinstance(item, Block):
                assert persisted.proposal_round >= item.proposal.header.round
                justify = item.justify
                assert justify is None or justify.block_hash in durable
            elif isinstance(item, Vote):
                assert persisted.vote_round >= item.round
                assert item.block_hash in durable
            else:
                assert persisted.timeout_round >= item.timeout.round
            sent += 1
    assert sent >= 3
    top = st["heads"]["certified"]["height"]

    # Restart from the data directory: the chain and the watermark are restored.
    node2 = Node(settings(tmp_path, l1_url))
    node2.open()
    assert node2.core is not None
    assert node2.core.committed_height >= top
    assert node2.core.record is not None
    assert persisted is not None
    assert node2.core.record.proposal_round >= persisted.proposal_round
    assert node2.views.tx(bytes.fromhex(tx_hash[2:]))["status"] == "certified"
    # The block of the restored high QC is on disk (committed, or kept above the committed
    # chain and handed back to the core), so a restarted network can build on it.
    hq = node2.core.record.high_qc
    assert hq is not None
    assert node2.store is not None
    kept = {block_hash(b.header) for b, _ in node2.store.uncommitted()}
    assert hq.block_hash in kept | {node2.store.block_hash(hq.height)}
    assert node2.core.status().certified_height >= hq.height
    async with trio.open_nursery() as nursery:
        await nursery.start(node2.run)
        await wait_until(
            "progress after restart", _async(lambda: node2.core.committed_height > top + 2)
        )
        node2.stop()


async def _ge(f: Any, n: int) -> bool:
    return bool(await f() >= n)


def _async(f: Any) -> Any:
    async def g() -> Any:
        return f()

    return g


async def test_second_process_on_the_same_data_dir_is_refused(tmp_path: Path) -> None:
    a = Node(settings(tmp_path, "http://127.0.0.1:1"))
    a.open()
    try:
        with pytest.raises(NodeStartError, match="in use by another node process"):
            Node(settings(tmp_path, "http://127.0.0.1:1")).open()
    finally:
        a.close()


async def test_unreachable_l1_at_start_says_where_and_how_long(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    node = Node(settings(tmp_path, f"http://127.0.0.1:{port}", l1_start_timeout_s=0.5))
    with pytest.raises(L1StartError, match=rf"127.0.0.1:{port} is unreachable: tried for"):
        await node.run()
    assert node.store is None


async def test_wrong_l1_chain_is_refused(tmp_path: Path, l1_url: str) -> None:
    g = dataclasses.replace(GENESIS, l1_chain_id=12345)
    node = Node(settings(tmp_path, l1_url, genesis=g))
    with pytest.raises(L1StartError, match="chain id 900, but the genesis file says"):
        await node.run()


async def test_rpc_port_in_use_is_named(tmp_path: Path, l1_url: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        node = Node(settings(tmp_path, l1_url, rpc_port=port))
        with pytest.raises(BaseException) as info:  # noqa: PT011 - a group from the nursery
            await node.run()
        assert f"127.0.0.1:{port}" in _flatten(info.value)
        assert "port in use" in _flatten(info.value)
        assert node.store is None


def _flatten(e: BaseException) -> str:
    if isinstance(e, BaseExceptionGroup):
        return " | ".join(_flatten(x) for x in e.exceptions)
    return str(e)


# --- the L1 watcher ---------------------------------------------------------------------


async def test_follower_survives_an_l1_outage(tmp_path: Path) -> None:
    l1node = L1Service.open(l1_genesis(), L1Settings(tmp_path / "l1", 1, auto_mine=False))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    send, recv = trio.open_memory_channel[Any](100)
    # The client outlives the nursery: the watcher must be gone before the client closes (a
    # poll on a closed client raised, now and then, when the client was closed first).
    async with (
        L1Client(f"http://127.0.0.1:{port}", timeout=1.0) as l1,
        trio.open_nursery() as outer,
    ):
        scope = trio.CancelScope()

        async def serve_until_cancelled(
            task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
        ) -> None:
            with scope:
                await serve_l1(l1node, "127.0.0.1", port, task_status=task_status)

        await outer.start(serve_until_cancelled)
        follower = L1Watcher(
            l1, events=send, key=KEY, genesis_stake_epoch=0, poll_s=0.05, backoff_cap_s=0.5
        )
        await outer.start(follower.run)
        await l1.dev_mine(3)
        heads = await _receive_head(recv, 3)
        assert heads.head >= 3
        scope.cancel()  # the L1 goes away
        await wait_until("follower notices the outage", _async(lambda: not follower.up))
        await trio.sleep(0.3)  # a few failed polls (backoff), and no crash
        assert not follower.up
        # The L1 comes back on the same port, with more blocks.
        scope = trio.CancelScope()
        await outer.start(serve_until_cancelled)
        await l1.dev_mine(2)
        await wait_until("follower resumes", _async(lambda: follower.up and follower.head >= 5))
        heads = await _receive_head(recv, 5)
        assert heads.head >= 5
        scope.cancel()
        outer.cancel_scope.cancel()
    l1node.store.close()


async def _receive_head(recv: trio.MemoryReceiveChannel[Any], at_least: int) -> Any:
    with trio.fail_after(10):
        while True:
            ev = await recv.receive()
            if isinstance(ev, api.L1HeadChanged) and ev.head >= at_least:
                return ev


async def test_follower_submits_evidence_to_l1(tmp_path: Path, l1_url: str) -> None:
    from l1_mock.genesis import dev_key
    from sequencer_node.wire.crypto import sign_message
    from sequencer_node.wire.messages import DoubleVote

    a = sign_message(Vote(b"\x01" * 32, 5, 5, 0, KEY.public_key, bytes(64)), KEY, L2_CHAIN)
    b = sign_message(Vote(b"\x02" * 32, 5, 5, 0, KEY.public_key, bytes(64)), KEY, L2_CHAIN)
    send, _recv = trio.open_memory_channel[Any](100)
    async with L1Client(l1_url) as l1, trio.open_nursery() as nursery:
        follower = L1Watcher(l1, events=send, key=dev_key(0), genesis_stake_epoch=0, poll_s=0.05)
        await nursery.start(follower.run)
        sub = follower.submit_evidence(DoubleVote(a, b), KEY.public_key)
        assert (sub.kind.value, sub.round) == ("double_vote", 5)
        await wait_until("submitted", _async(lambda: sub.submitted))
        assert sub.l1_tx is not None
        await l1.dev_mine(1)
        receipt = await l1.receipt(sub.l1_tx)
        assert receipt is not None
        assert receipt.status == 1, receipt.reason
        info = await l1.sequencer(KEY.public_key)
        assert info is not None
        assert info.status == "slashed"
        # The same offence again is refused by L1: recorded, not retried forever.
        again = follower.submit_evidence(DoubleVote(a, b), KEY.public_key)
        await wait_until("refused", _async(lambda: again.error is not None))
        assert not again.submitted
        nursery.cancel_scope.cancel()


async def test_keyless_follower_node_follows_a_validator(tmp_path: Path, l1_url: str) -> None:
    from sequencer_node.shell.peers import PeerAddress

    follower = Node(settings(tmp_path, l1_url, key=None, data_dir=tmp_path / "follower"))
    follower.open()
    fid = follower.p2p_identity()
    assert follower.p2p_identity().public_key == fid.public_key  # stable across calls/restarts
    follower.close()
    validator = Node(settings(tmp_path, l1_url, allow_peers=frozenset({fid.public_key})))
    async with trio.open_nursery() as nursery:
        vaddr = await nursery.start(validator.run)
        await wait_until("validator at 5", _async(lambda: _height(validator) >= 5))
        follower = Node(
            settings(
                tmp_path,
                l1_url,
                key=None,
                data_dir=tmp_path / "follower",
                peers=(PeerAddress("127.0.0.1", vaddr.p2p_port),),
            )
        )
        await nursery.start(follower.run)
        target = _height(validator) + 3
        await wait_until("follower catches up", _async(lambda: _height(follower) >= target))
        assert follower.p2p_identity().public_key == fid.public_key
        assert follower.views.role() == "follower"
        assert follower.views.status()["node_id"] is None
        assert follower.views.block(target) == validator.views.block(target)
        follower.stop()
        validator.stop()


def _height(node: Node) -> int:
    """The node's stored committed height: what its views (and store) answer for. The core
    counts a block as committed before the worker thread has written it, so a test that
    waited on the core's height could read a block that was not there yet."""
    return node.stored_head.height


async def test_registered_set_changes_drop_peers_no_longer_admitted(
    tmp_path: Path, l1_url: str
) -> None:
    seen: list[set[bytes]] = []
    send, _recv = trio.open_memory_channel[Any](10)
    async with L1Client(l1_url) as l1:
        follower = L1Watcher(
            l1, events=send, key=None, genesis_stake_epoch=0,
            on_sequencers=lambda reg: seen.append(set(reg)),
        )  # fmt: skip
        await follower.refresh_sequencers()
        await follower.refresh_sequencers()  # unchanged: no second call
    assert seen == [{KEY.public_key}]

    class FakePeers:
        def __init__(self) -> None:
            self.dropped: list[bytes] = []

        def peers(self) -> list[Any]:
            return [
                type("P", (), {"identity": KEY.public_key})(),
                type("P", (), {"identity": USERS[0].public_key})(),
            ]

        def disconnect(self, peer: bytes) -> None:
            self.dropped.append(peer)

        def add_peer(self, address: Any) -> bool:
            return False

    node = Node(settings(tmp_path, l1_url))
    fake = FakePeers()
    node.pm = fake  # type: ignore[assignment]
    node._sequencers_changed({})
    assert fake.dropped == [USERS[0].public_key]  # KEY stays: it is a genesis validator


async def test_old_catch_up_ranges_are_served_from_the_store_and_rate_limited(
    tmp_path: Path, l1_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sequencer_node.shell.node_service as node_mod
    from sequencer_node.shell.scoring import Offense

    node = Node(settings(tmp_path, l1_url))
    async with trio.open_nursery() as nursery:
        await nursery.start(node.run)
        await wait_until("height 6", _async(lambda: _height(node) >= 6))
        node.stop()
    node = Node(settings(tmp_path, l1_url))
    node.open()
    sent: list[tuple[bytes, Any]] = []
    charged: list[Offense] = []

    class FakePeers:
        def send_to(self, peer: bytes, msg: Any) -> bool:
            sent.append((peer, msg))
            return True

        def penalize(self, peer: bytes, offense: Offense) -> None:
            charged.append(offense)

    node.pm = FakePeers()  # type: ignore[assignment]
    monkeypatch.setattr(node_mod, "_STORE_SYNC_LAG", 0)
    try:
        assert node._serve_old_sync(b"p" * 32, api.SyncRequest(2, 4))
        assert node._serve_old_sync(b"p" * 32, api.SyncRequest(2, 4))  # too soon: charged
    finally:
        node.close()
    assert len(sent) == 1
    heights = [cb.block.header.height for cb in sent[0][1].blocks]
    assert heights == [2, 3, 4]
    assert charged == [Offense.FLOOD]


async def test_peer_manager_dials_a_peer_added_while_running() -> None:
    from sequencer_node.shell.peers import PeerAddress, PeerManager

    a_key, b_key = KEY, USERS[0]
    members = {a_key.public_key, b_key.public_key}
    a = PeerManager(a_key, L2_CHAIN, is_allowed=lambda pk: pk in members)
    b = PeerManager(b_key, L2_CHAIN, is_allowed=lambda pk: pk in members)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(a.run)
            b_port = await nursery.start(b.run)
            address = PeerAddress("127.0.0.1", b_port)
            assert a.add_peer(address)
            assert not a.add_peer(address)  # already dialled
            await a.wait_peers(1)
            assert a.is_connected(b_key.public_key)
            a.close()
            b.close()
    assert not a.add_peer(PeerAddress("127.0.0.1", 1))  # not running
