"""The API's views read block hashes from the store's hash column (issue 13: the head gauges,
refreshed every tick, and ``/v1/status`` decoded whole stored blocks to learn a hash)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from sequencer_node.shell.api_views import ApiViews, Head, StoredHead
from sequencer_node.shell.store import Store
from sequencer_node.wire.messages import block_hash

from .test_store import certified, open_store


@dataclass
class FakeWatcher:
    safe: int
    final: int

    def safe_height(self) -> int:
        return self.safe

    def finalized_height(self) -> int:
        return self.final


@dataclass
class FakeNode:
    store: Store
    follower: FakeWatcher
    stored_head: StoredHead
    unsafe_head: tuple[int, bytes] = (0, b"")
    core: None = None


def test_heads_never_decode_a_stored_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    blocks = [certified(h) for h in range(1, 6)]
    with open_store(tmp_path) as store:
        store.put_blocks(blocks)
        top = blocks[-1].block.header
        node = FakeNode(store, FakeWatcher(4, 2), StoredHead(5, block_hash(top), bytes(32)))

        def no_decoding(*args: object) -> None:
            raise AssertionError("a stored block was decoded to learn its hash")

        monkeypatch.setattr(Store, "get_block", no_decoding)
        monkeypatch.setattr(Store, "get_blocks", no_decoding)
        heads = ApiViews(node).heads()  # type: ignore[arg-type]
    hashes = {h: block_hash(b.block.header) for h, b in enumerate(blocks, start=1)}
    assert heads == {
        "unsafe": Head(5, hashes[5]),
        "certified": Head(5, hashes[5]),
        "safe": Head(4, hashes[4]),
        "finalized": Head(2, hashes[2]),
    }


def test_the_hash_column_answers_without_the_block(tmp_path: Path):
    with open_store(tmp_path) as store:
        cb = certified(7)
        store.put_blocks([cb])
        assert store.block_hash(7) == block_hash(cb.block.header)
        assert store.block_hash(8) is None
