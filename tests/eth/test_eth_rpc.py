"""The Ethereum JSON-RPC's transaction input (issue 13): a batch's ``eth_sendRawTransaction``
requests reach the node as one input in request order, the ingress sheds the last ones, and
the hex parameters are parsed as the regular expression they replaced parsed them."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from sequencer_node.core import api
from sequencer_node.shell.eth_rpc import EthRpc, RpcError, parse_data
from sequencer_node.shell.node_service import Node, NodeSettings, _TxRequest
from sequencer_node.shell.rpc import Overloaded
from sequencer_node.sim.harness import Simulation
from sequencer_node.wire.eth import EthTransaction, decode_eth, eth_tx_hash
from tests.shell.test_store_snapshots import _genesis

from .helpers import CHAIN_ID, KEY_0, KEY_1, type2


class FakeNode:
    """Takes what its ingress has room for; records each input."""

    def __init__(self, room: int) -> None:
        self.room = room
        self.inputs: list[list[Any]] = []
        self.genesis = SimpleNamespace(chain_id=CHAIN_ID)

    def ingress_room(self) -> int:
        return self.room

    async def submit_tx(self, tx: EthTransaction) -> api.TxResult:
        return (await self.submit_txs([tx]))[0]

    async def submit_txs(self, txs: Sequence[Any]) -> list[api.TxResult]:
        if self.room <= 0:
            raise Overloaded("full")
        self.inputs.append(list(txs))
        self.room -= len(txs)
        await trio.lowlevel.checkpoint()
        return [api.TxResult(eth_tx_hash(t), True, None, "accepted") for t in txs]


def _send(i: int, raw: bytes | str, *, notify: bool = False) -> dict[str, Any]:
    param = raw if isinstance(raw, str) else "0x" + raw.hex()
    req: dict[str, Any] = {"jsonrpc": "2.0", "method": "eth_sendRawTransaction", "params": [param]}
    if not notify:
        req["id"] = i
    return req


def _handle(node: Any, body: Any) -> Any:
    rpc = EthRpc(node)

    async def run() -> Any:
        return await rpc.handle_body(json.dumps(body).encode())

    return trio.run(run)


def test_a_batchs_transactions_go_to_the_node_as_one_input_in_order() -> None:
    raws = [type2(nonce=n) for n in range(6)]
    node = FakeNode(room=4)
    body = [_send(i, r) for i, r in enumerate(raws)]
    body.insert(2, {"jsonrpc": "2.0", "id": "c", "method": "eth_chainId"})
    body.insert(4, _send(99, "0x02c0"))  # malformed: answered, never submitted
    body.append(_send(0, type2(KEY_1, nonce=0), notify=True))  # submitted, not answered
    body.append({"jsonrpc": "2.0", "id": "p", "method": "eth_sendRawTransaction"})  # no params
    answers = _handle(node, body)
    # one input, the request order (several trio tasks had put them in any order), the room
    assert node.inputs == [[EthTransaction(r) for r in raws[:4]]]
    by_id = {a["id"]: a for a in answers}
    assert len(answers) == 9
    assert by_id["c"]["result"] == hex(CHAIN_ID)
    assert by_id[99]["error"]["code"] == -32602
    assert by_id["p"]["error"]["code"] == -32602
    assert [by_id[i].get("result") for i in range(4)] == ["0x" + decode_eth(r).hash.hex()
                                                          for r in raws[:4]]  # fmt: skip
    for i in (4, 5):  # past the room: the last ones, as a retry from the first refused expects
        assert by_id[i]["error"]["code"] == -32005
        assert by_id[i]["error"]["data"] == {"reason": "overloaded"}
    assert [a["id"] for a in answers] == [0, 1, "c", 2, 99, 3, 4, 5, "p"]  # the requests' order


def test_a_full_ingress_refuses_the_whole_batch_as_overloaded() -> None:
    node = FakeNode(room=0)
    answers = _handle(node, [_send(i, type2(nonce=i)) for i in range(3)])
    assert [a["error"]["data"]["reason"] for a in answers] == ["overloaded"] * 3
    assert node.inputs == []


def test_a_single_request_is_answered_as_before() -> None:
    raw = type2(KEY_0, nonce=3)
    node = FakeNode(room=1)
    answer = _handle(node, _send(7, raw))
    assert answer == {"jsonrpc": "2.0", "id": 7, "result": "0x" + decode_eth(raw).hash.hex()}
    answer = _handle(node, _send(8, raw))  # no room left
    assert answer["error"]["code"] == -32005


_DATA = re.compile(r"0x([0-9a-fA-F]{2})*")


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.text(alphabet="0x123456789abcdefABCDEFgG \t\n\u0660\u00e9", max_size=12),
        st.binary(max_size=8).map(lambda b: "0x" + b.hex()),
        st.binary(max_size=8).map(lambda b: "0x" + b.hex().upper()),
        st.builds(
            lambda b, i, c: ("0x" + b.hex())[:i] + c + ("0x" + b.hex())[i:],
            st.binary(max_size=6),
            st.integers(0, 14),
            st.sampled_from([" ", "\n", "\u0660", "X", "0x", "g", "+", "_"]),
        ),
    )
)
def test_hex_data_is_parsed_as_the_regular_expression_parsed_it(text: str) -> None:
    if _DATA.fullmatch(text):
        assert parse_data(text, "x") == bytes.fromhex(text[2:])
    else:
        with pytest.raises(RpcError, match="0x-prefixed hex bytes"):
            parse_data(text, "x")


def test_hex_data_refuses_what_is_not_a_string() -> None:
    for value in (None, 5, ["0x00"], b"0x00"):
        with pytest.raises(RpcError):
            parse_data(value, "x")


async def test_a_real_nodes_ingress_takes_a_batch_as_one_input_in_order(tmp_path: Path) -> None:
    """The seam with the node: ``submit_txs`` with Ethereum transactions (refused here for
    their unfunded sender, which is an answer from the pool like any other)."""
    sim = Simulation(1)
    node = Node(NodeSettings(tmp_path, _genesis(sim), key=None, batcher=False,
                             ingress_max_pool=50, ingress_max_queued=3))  # fmt: skip
    node.open()
    try:
        raws = [type2(nonce=n) for n in range(5)]
        answers: list[Any] = []
        rpc = EthRpc(node)
        body = json.dumps([_send(i, r) for i, r in enumerate(raws)]).encode()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(node._journal_loop)

            async def send() -> None:
                answers.append(await rpc.handle_body(body))

            nursery.start_soon(send)
            await trio.testing.wait_all_tasks_blocked()
            item = node._recv.receive_nowait()
            assert isinstance(item, _TxRequest)
            assert list(item.txs) == [EthTransaction(r) for r in raws[:3]]
            await node._handle(item)
            with trio.fail_after(10):
                while not answers:
                    await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
        [got] = answers
        assert [a["error"]["data"]["reason"] for a in got] == [
            "insufficient_balance", "insufficient_balance", "insufficient_balance",
            "overloaded", "overloaded",
        ]  # fmt: skip
    finally:
        node.close()
