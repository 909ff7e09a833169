"""The node writes snapshots of its committed state with its blocks, keeps the newest two and
restarts from the newest usable one (an unusable one is logged and skipped)."""

from __future__ import annotations

import logging
import shutil
import sqlite3
from pathlib import Path

import pytest

from sequencer_node.core import api
from sequencer_node.genesis import L2Genesis
from sequencer_node.shell.node_service import Node, NodeSettings
from sequencer_node.shell.store import DB_FILENAME
from sequencer_node.sim.harness import Simulation
from sequencer_node.wire.messages import CertifiedBlock
from tests.core.test_snapshot_restart import simulated_chain

EVERY = 10


def _genesis(sim: Simulation) -> L2Genesis:
    params = {k: int(v) for k, v in sim.config_kw.items() if k != "chain_id"}
    return L2Genesis.of_core(sim.genesis, int(sim.config_kw["chain_id"]), params)


def _node(sim: Simulation, data_dir: Path) -> Node:
    node = Node(NodeSettings(data_dir, _genesis(sim), key=None, snapshot_every=EVERY))
    node.open()
    assert node.core is not None
    for e in range(sim.finalized_l1_epoch + 1):
        node.core.handle(api.StakeSnapshotAvailable(sim.snapshot(e)), 0)
    return node


async def _commit_through_the_shell(node: Node, chain: list[CertifiedBlock], now: int) -> None:
    """Hand the chain to the node's core as catch-up, a few blocks per input, and let the
    shell carry out the effects (it writes the committed blocks and the snapshots)."""
    assert node.core is not None
    for i in range(0, len(chain), 7):
        part = tuple(chain[i : i + 7])
        await node._apply(node.core.handle(api.CertifiedBlocksReceived(part), now))


def _crash_image(src: Path, dst: Path) -> Path:
    """The data directory as a SIGKILL would leave it: the files as they are, WAL included,
    copied while the node still has them open."""
    shutil.copytree(src, dst)
    return dst


def _snapshot_rows(data_dir: Path) -> list[int]:
    with sqlite3.connect(data_dir / DB_FILENAME) as db:
        return [h for (h,) in db.execute("SELECT height FROM snapshots ORDER BY height DESC")]


@pytest.fixture(scope="module")
def chain() -> tuple[Simulation, list[CertifiedBlock]]:
    return simulated_chain()


async def test_the_node_writes_and_prunes_snapshots_and_restarts_from_the_newest(
    tmp_path: Path,
    chain: tuple[Simulation, list[CertifiedBlock]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    sim, blocks = chain
    node = _node(sim, tmp_path / "a")
    await _commit_through_the_shell(node, blocks, sim.now)
    assert node.core is not None
    st = node.core.status()
    assert st.committed_height >= len(blocks) - 2
    heights = _snapshot_rows(tmp_path / "a")
    assert len(heights) == 2, heights  # the newest two: older ones were pruned
    # One per EVERY heights, each at the last block of the write that reached a multiple.
    assert heights[0] // EVERY == st.committed_height // EVERY
    assert heights[1] // EVERY == heights[0] // EVERY - 1
    image = _crash_image(tmp_path / "a", tmp_path / "b")

    caplog.set_level(logging.INFO)
    again = _node(sim, image)
    assert again.core is not None
    assert again._snapshot_floor == heights[0]
    assert f"snapshot at {heights[0]} + {st.committed_height - heights[0]} replayed" in caplog.text
    st2 = again.core.status()
    assert (st2.committed_height, st2.committed_hash, st2.state_root) == (
        st.committed_height,
        st.committed_hash,
        st.state_root,
    )
    epoch = node.core.epoch_of(st.committed_height)
    for e in range(epoch - 1, epoch + 2):
        assert again.core.epoch_info(e) == node.core.epoch_info(e)
    node.close()
    again.close()


async def test_an_unusable_snapshot_falls_back_to_an_older_one_then_to_a_full_replay(
    tmp_path: Path,
    chain: tuple[Simulation, list[CertifiedBlock]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    sim, blocks = chain
    node = _node(sim, tmp_path / "a")
    await _commit_through_the_shell(node, blocks, sim.now)
    assert node.core is not None
    want = node.core.status().state_root
    newest, older = _snapshot_rows(tmp_path / "a")
    image = _crash_image(tmp_path / "a", tmp_path / "b")
    node.close()
    db = sqlite3.connect(image / DB_FILENAME)
    # The newest: the older one's bytes under its height (a ledger of another block).
    db.execute("UPDATE snapshots SET data = (SELECT data FROM snapshots WHERE height = ?) "
               "WHERE height = ?", (older, newest))  # fmt: skip
    db.commit()
    caplog.set_level(logging.INFO)
    restarted = _node(sim, image)
    assert restarted._snapshot_floor == older
    assert f"snapshot at height {newest} is unusable" in caplog.text
    assert restarted.core is not None
    assert restarted.core.status().state_root == want
    restarted.close()
    # Both unusable: one byte of each ledger flipped. The node replays the whole chain.
    (data,) = db.execute("SELECT data FROM snapshots WHERE height = ?", (older,)).fetchone()
    broken = bytes(data[:-3]) + bytes([data[-3] ^ 1]) + bytes(data[-2:])
    db.execute("UPDATE snapshots SET data = ?", (broken,))
    db.commit()
    db.close()
    caplog.clear()
    replayed = _node(sim, image)
    assert replayed._snapshot_floor == 0
    assert f"snapshot at height {older} is unusable" in caplog.text
    assert "full replay" in caplog.text
    assert replayed.core is not None
    assert replayed.core.status().state_root == want
    replayed.close()
