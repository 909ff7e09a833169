"""The node process puts what exists after its start (imported code, genesis, the state read at
start) out of the garbage collector's sight: a full collection walked the imports alone
(~80,000 objects) for ~45 ms, a pause of the event loop (issue 13, `/health` latency)."""

from __future__ import annotations

import gc
from typing import Any, cast

import pytest
import trio

from sequencer_node.cli import sequencer_node_command
from sequencer_node.shell import node_service
from sequencer_node.shell.node_service import NodeSettings


def test_what_exists_after_the_node_opened_is_frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    class OpenedNode:
        stopping = False

        def __init__(self, settings: object) -> None:
            self.state: list[list[int]] = []

        def open(self) -> None:
            self.state = [[i] for i in range(1_000)]  # read at start, kept

        async def run(self) -> None:
            seen["frozen"] = gc.get_freeze_count()
            seen["state_tracked"] = sum(gc.is_tracked(x) for x in self.state)
            seen["state_in_gen2"] = any(x is self.state[0] for x in gc.get_objects(2))

        def stop(self) -> None:
            pass

    monkeypatch.setattr(node_service, "Node", OpenedNode)
    gc.unfreeze()
    try:
        trio.run(sequencer_node_command._run_node, cast(NodeSettings, None))
    finally:
        gc.unfreeze()
    assert seen["frozen"] > 1_000  # the imports and the state opened
    assert seen["state_tracked"] == 1_000  # still tracked (frozen, not untracked)...
    assert not seen["state_in_gen2"]  # ...but no collection walks it
