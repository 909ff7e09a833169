"""The L1 watcher's metrics behind the shipped alert rules (monitoring/alerts.yml): this node's
sequencer status on L1 (jailed or slashed) and the L1's blob base fee."""

from __future__ import annotations

from typing import Any

import trio

from sequencer_node.clients.l1 import L1Client
from sequencer_node.shell.l1_watcher import L1Watcher
from sequencer_node.shell.metrics import NodeMetrics
from tests.node_process.test_runner import KEY, l1_url  # noqa: F401 (the fixture)


async def test_own_status_and_blob_fee_are_exported(l1_url: str) -> None:  # noqa: F811
    metrics = NodeMetrics()
    send, _recv = trio.open_memory_channel[Any](1_000)
    async with L1Client(l1_url) as l1:
        watcher = L1Watcher(l1, events=send, key=KEY, genesis_stake_epoch=0, metrics=metrics)
        await watcher.poll_once()  # the first poll carries the registry and the blob fee
        fee = await l1.blob_base_fee()
    text = metrics.render().decode()
    assert 'seqnet_sequencer_status{status="active"} 1.0' in text
    assert f"seqnet_l1_blob_base_fee_wei {float(fee)}" in text
