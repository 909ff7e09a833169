"""Issue 11, finding 6 on real processes: a whole-network restart (SIGKILL of every node) after
an epoch change that removed a validator resumes, and every acknowledged transaction is
certified.

The fault soak's stall (docs/reliability.md): after the epoch change the nodes were killed and
restarted; each restarted core got its peers' timeouts of the current round before the L1
stake snapshot that judges its epoch, dropped them, and the p2p layer dropped their
retransmissions as repeats, so no TC ever formed. Here one validator unbonds all of its stake,
the L1 is mined ahead (``dev_mine``) until an L2 epoch is judged by a table without it, and then
every node is killed at once and restarted from its data directory.

Short epochs (30 blocks of 200 ms) and a fast L1 keep it under a minute and a half; the L1's
own clock (1 s slots) would take minutes to finalize the snapshot (docs/protocol.md, section 2,
"Sizing").
"""

from __future__ import annotations

import contextlib
import signal
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from sequencer_node.clients.l1 import L1Client
from sequencer_node.wire.l1calls import UnlockStake
from tests.node_process import helpers
from tests.node_process.helpers import KEYS, USERS, Cluster, make_tx, running_cluster, tx_body

ALL = [0, 1, 2, 3]
LEAVER = 3
EPOCH = 30
#: L1 blocks mined per poll while waiting for the new table: fast enough that its snapshot
#: is finalized in seconds, slow enough that a leader's L1 origin stays within the validators'
#: lag bound between two of their L1 polls.
MINE_STEP = 12
#: Before the last restart the L1 is mined until the current epoch's snapshot is this many L1
#: epochs behind its finalized epoch (of SLOTS blocks).
JUMP_BACK = 40
SLOTS = 32


@pytest.fixture
async def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Cluster]:
    monkeypatch.setattr(helpers, "PARAMS", {**helpers.PARAMS, "epoch_length": EPOCH})
    async with running_cluster(tmp_path) as c:
        yield c


async def _send(c: Cluster, nonce: int, to: list[int]) -> str:
    tx = make_tx(USERS[0], USERS[1].address, 1 + nonce, nonce)
    r = await c.client.post(c.nodes[to[nonce % len(to)]].rpc + "/v1/tx", json=tx_body(tx))
    assert r.status_code == 200, r.text
    return str(r.json()["tx_hash"])


async def _certified(c: Cluster, i: int, tx_hash: str) -> bool:
    try:
        doc = await c.get(i, f"/v1/tx/{tx_hash}")
    except (httpx.HTTPError, ValueError):  # a node still starting: not yet
        return False
    return bool(doc["status"] not in ("unknown", "pending"))


async def _current_table(c: Cluster, i: int) -> tuple[int, set[str]] | None:
    try:
        doc = await c.get(i, "/v1/schedule")
    except (httpx.HTTPError, ValueError):  # a node still starting: not yet
        return None
    cur = doc.get("current")
    if cur is None:
        return None
    return int(doc["epoch"]), set(cur["stakes"])


def _forget_stake_snapshots(c: Cluster) -> None:
    """What the soak's nodes had: a data directory without stored L1 stake snapshots (they
    are stored since), so the restarted core learns its table from the L1 watcher only."""
    for n in c.nodes:
        with contextlib.closing(sqlite3.connect(n.data_dir / "node.sqlite3")) as db, db:
            db.execute("DELETE FROM stake_snapshots")


async def _restart_all(c: Cluster, acknowledged: list[str], *, forget: bool) -> None:
    """Kill every node at once (transactions just acknowledged), restart them all; the chain
    resumes and every acknowledged transaction is certified."""
    nonce = len(acknowledged)
    acknowledged += [await _send(c, n, ALL[:LEAVER]) for n in range(nonce, nonce + 3)]
    top = max(await c.heights(ALL))
    for i in ALL:
        c.kill(i, signal.SIGKILL)
    if forget:
        _forget_stake_snapshots(c)
    for i in ALL:
        c.start_node(i)
    await c.wait_height(ALL[:LEAVER], top + 3, limit_s=30)
    for tx_hash in acknowledged:
        await c.wait_for(f"{tx_hash} certified", lambda h=tx_hash: _certified(c, 0, h), 20)


async def _jump(c: Cluster, l1: L1Client) -> int:
    """L1 blocks to mine so that the snapshot judging the current epoch is JUMP_BACK L1 epochs
    behind the finalized L1 epoch: deep in the watcher's look back (64), which it used to read
    8 snapshots per poll, oldest first (a jump past the look back cannot be recovered without
    the stored snapshots, docs/protocol.md)."""
    doc = await c.get(0, "/v1/schedule")
    stake_epoch = int(doc["current"]["stake_epoch"])
    head = (await l1.head()).number
    final_epoch = head // SLOTS - 2
    return max(1, (stake_epoch + JUMP_BACK - final_epoch) * SLOTS)


async def test_whole_network_restart_after_an_epoch_change_that_removed_a_validator(
    cluster: Cluster,
) -> None:
    c = cluster
    for i in ALL:
        c.start_node(i)
    await c.wait_height(ALL, 3, limit_s=60)
    leaver = "0x" + KEYS[LEAVER].public_key.hex()
    acknowledged = [await _send(c, n, ALL) for n in range(4)]
    async with L1Client(c.l1_url) as l1:
        await l1.submit(UnlockStake(KEYS[LEAVER].public_key, 0), KEYS[LEAVER])

        async def changed() -> int | None:
            await l1.dev_mine(MINE_STEP)
            views = [await _current_table(c, i) for i in ALL[:LEAVER]]
            if all(v is not None and leaver not in v[1] for v in views):
                return max(v[0] for v in views if v is not None)
            return None

        epoch = await c.wait_for("an epoch judged without the unbonded validator", changed, 60)
        await c.wait_height(ALL[:LEAVER], epoch * EPOCH + 3, limit_s=30)
        # Restarted with the stake snapshots they stored.
        await _restart_all(c, acknowledged, forget=False)
        # Without them, and the L1 far ahead: the L1 watcher needs several polls to reach
        # the snapshot of the current epoch, the peers' timeouts come first (the soak's case).
        await l1.dev_mine(await _jump(c, l1))
        await _restart_all(c, acknowledged, forget=True)
    # One chain on every node (the leaver follows it too).
    top = max(await c.heights(ALL[:LEAVER]))
    await c.wait_height(ALL, top, limit_s=30)
    for height in range(1, top + 1, max(1, top // 8)):
        views = {await c.block_hash(i, height) for i in ALL}
        assert len(views) == 1, f"height {height}: {views}"
