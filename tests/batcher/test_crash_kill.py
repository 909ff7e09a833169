"""A real SIGKILL of a posting process at each fault point; after restart the inbox holds
the batch exactly once and the key sent exactly one call."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest
import trio

from sequencer_node.batcher.kzg_worker import KzgWorker
from sequencer_node.batcher.poster import PostOutcome
from sequencer_node.batcher.records import BatchState
from tests.batcher.crash_poster import open_poster
from tests.batcher.helpers import KEYS, running_l1


@pytest.mark.slow
@pytest.mark.parametrize("point", ["after_sign", "before_send", "after_send"])
async def test_sigkill_at_each_point_then_restart_posts_exactly_once(
    tmp_path: Path, point: str
) -> None:
    data = tmp_path / "node"
    async with running_l1(tmp_path) as (_node, l1), KzgWorker(0) as worker:
        cmd = [sys.executable, "-m", "tests.batcher.crash_poster", l1.url, str(data), point]
        with trio.fail_after(120):
            proc = await trio.run_process(cmd, check=False)
        assert proc.returncode == -signal.SIGKILL
        poster = open_poster(l1, worker, data, None)
        before = poster.records.get(0)
        assert before is not None
        assert before.state == (BatchState.SIGNED if point == "after_sign" else BatchState.POSTED)
        with trio.fail_after(60):
            while (await poster.post(0)).outcome is not PostOutcome.ACCEPTED:
                await l1.dev_mine(1)
        batches = await l1.inbox_batches(0, 10)
        assert [b.header.batch_number for b in batches] == [0]
        assert await l1.nonce(KEYS[0].address) == 1
        if point != "after_sign":
            # the call recorded before the kill is the one the inbox holds
            assert batches[0].tx_hash == before.l1_tx_hash
        poster.records.close()
