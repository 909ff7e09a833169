"""Wire versions of the consensus messages that changed shape in this release: data written by
the previous version is refused with a "version" error, never a confusing field-count one."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from sequencer_node.core import api
from sequencer_node.sim.harness import Simulation
from sequencer_node.wire import codec
from sequencer_node.wire.codec import CodecError, decode, encode
from sequencer_node.wire.messages import Block, CertifiedBlock, TimeoutCertificate


def _chain() -> list[CertifiedBlock]:
    sim = Simulation(5, epoch_length=8)
    sim.run_for(4_000)
    chain = list(sim.instances[0].store)
    assert len(chain) > 10
    return chain


def _as_version_1(msg: Any, body: list[Any]) -> bytes:
    """``msg``'s envelope as version 1 wrote it: the old version number and ``body``."""
    return msgpack.packb([codec.message_tag(type(msg)), 1, body], use_bin_type=True)  # type: ignore[no-any-return]


def _body(msg: Any) -> list[Any]:
    tag, version, body = msgpack.unpackb(encode(msg), raw=False)
    assert tag == codec.message_tag(type(msg))
    assert version == 2
    return list(body)


def test_a_version_1_block_is_refused_by_its_version() -> None:
    block = _chain()[3].block
    assert decode(encode(block), Block) == block  # version 2 round-trips
    old = _body(block)[:-1]  # version 1 had no epoch_proof
    with pytest.raises(CodecError, match="Block: unsupported version 1"):
        decode(_as_version_1(block, old), Block)


def test_stored_and_synced_blocks_are_refused_by_their_version() -> None:
    """Only the outer envelope names a version, so every message carrying a block is v2."""
    chain = _chain()
    cb = chain[3]
    old_block = _body(cb.block)[:-1]
    old = [old_block, _body(cb)[1]]
    with pytest.raises(CodecError, match="CertifiedBlock: unsupported version 1"):
        decode(_as_version_1(cb, old), CertifiedBlock)
    sync = api.SyncResponse((cb,), None)
    assert decode(encode(sync), api.SyncResponse) == sync
    with pytest.raises(CodecError, match="SyncResponse: unsupported version 1"):
        decode(_as_version_1(sync, [[old], None]), api.SyncResponse)
    head = api.SnapshotHead(cb, ())
    assert decode(encode(head), api.SnapshotHead) == head
    with pytest.raises(CodecError, match="SnapshotHead: unsupported version 1"):
        decode(_as_version_1(head, [old, []]), api.SnapshotHead)


def test_a_version_1_timeout_certificate_is_refused_by_its_version() -> None:
    tc = TimeoutCertificate(round=5, height=4, epoch=0, timeouts=(), high_qc=None)
    assert decode(encode(tc), TimeoutCertificate) == tc
    old = [5, 0, [], None]  # version 1: round, epoch, timeouts, high_qc (no height)
    with pytest.raises(CodecError, match="TimeoutCertificate: unsupported version 1"):
        decode(_as_version_1(tc, old), TimeoutCertificate)
