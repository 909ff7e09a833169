"""Port choice for local networks: outside the ephemeral range, free, non-overlapping blocks."""

from __future__ import annotations

import random
import socket
from pathlib import Path

import pytest

from sequencer_node.devnet import ports


def test_blocks_are_free_and_below_the_ephemeral_range() -> None:
    low, _high = ports.ephemeral_range()
    for seed in range(20):
        base = ports.free_block(9, rng=random.Random(seed))
        assert base >= 10_000
        assert base + 9 <= low
        assert all(ports.is_free(p) for p in range(base, base + 9))


def test_a_taken_port_is_not_free() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        assert not ports.is_free(s.getsockname()[1])


def test_the_larger_side_of_the_ephemeral_range_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a kernel whose ephemeral range starts low leaves room only above it
    f = tmp_path / "range"
    f.write_text("11000\t20000\n")
    monkeypatch.setattr(ports, "_RANGE_FILE", f)
    assert ports.ephemeral_range() == (11_000, 20_000)
    assert ports.free_block(3) > 20_000


def test_unreadable_range_falls_back_to_the_linux_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ports, "_RANGE_FILE", tmp_path / "missing")
    assert ports.ephemeral_range() == (32_768, 60_999)


def test_an_empty_block_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one port"):
        ports.free_block(0)
