"""Ethereum transactions between four in-process nodes (issue 13, sixth part): a client's
Ethereum transaction goes once to every peer and is not relayed on a full mesh, as a
``TxBatch`` (before: gossiped with relays, 9.7 more frames per transaction than a native one
on 4 nodes, 6.5 of them duplicates dropped after decryption). Budget: ~20 s."""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path
from typing import Any

import trio

from sequencer_node.shell.node_service import Node, NodeSettings
from sequencer_node.wire.eth import EthTransaction, eth_tx_hash
from tests.eth.helpers import ADDR_0, type2
from tests.node_process import test_compact_blocks as compact
from tests.node_process.test_compact_blocks import l1_url  # noqa: F401 (the fixture)
from tests.node_process.test_runner import _async, wait_until

GENESIS = dataclasses.replace(
    compact.GENESIS, balances=(*compact.GENESIS.balances, (ADDR_0, 10**21))
)


def _settings(tmp_path: Path, url: str, i: int, peers: list[int]) -> NodeSettings:
    return dataclasses.replace(compact._settings(tmp_path, url, i, peers), genesis=GENESIS)


def _count_sends(nodes: list[Node]) -> list[Counter[str]]:
    """Per node, how many messages of each type it broadcast (relayed onward) and
    disseminated (once to each peer, not relayed)."""
    counts: list[Counter[str]] = []
    for node in nodes:
        pm = node.pm
        assert pm is not None
        c = Counter[str]()
        counts.append(c)
        for how in ("broadcast", "disseminate"):
            real = getattr(pm, how)

            def send(
                msg: Any, *a: Any, _real: Any = real, _how: str = how, _c: Counter[str] = c,
                **kw: Any,
            ) -> int:  # fmt: skip
                _c[f"{_how} {type(msg).__name__}"] += 1
                n: int = _real(msg, *a, **kw)
                return n

            setattr(pm, how, send)
    return counts


async def test_a_clients_ethereum_transaction_goes_once_to_each_peer_unrelayed(
    tmp_path: Path,
    l1_url: str,  # noqa: F811
) -> None:
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            nodes: list[Node] = []
            ports: list[int] = []
            for i in range(4):  # each dials the ones before it: a full mesh
                node = Node(_settings(tmp_path, l1_url, i, ports))
                ports.append((await nursery.start(node.run)).p2p_port)
                nodes.append(node)
            for node in nodes:
                assert node.pm is not None
                await node.pm.wait_peers(3)
            sends = _count_sends(nodes)
            txs = [EthTransaction(type2(nonce=k)) for k in range(10)]
            results = await nodes[1].submit_txs(txs)
            assert all(r.accepted for r in results), results
            hashes = [eth_tx_hash(tx) for tx in txs]

            def everywhere() -> bool:
                return all(n.tx_height(h) is not None for n in nodes for h in hashes)

            await wait_until("every Ethereum transaction committed everywhere", _async(everywhere))
            for node in nodes:
                node.stop()
    assert sends[1]["disseminate EthTransaction"] == 10
    # Disseminated frames are not gossip: no peer relays them (PeerManager.disseminate).
    assert all(c["broadcast EthTransaction"] == 0 for c in sends), sends
