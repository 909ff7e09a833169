"""The rollup owner's fee-model call and the per-block L2 fee data (issue 15)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from l1_mock import genesis as genesis_mod
from l1_mock.chain import CallRejected, Chain
from l1_mock.server import L1Service, L1Settings, serve
from sequencer_node.clients.l1 import L1Client, L1Rejected
from sequencer_node.core.fees import OP_ECOTONE, FeeParams, L1FeeInfo, fee_params_of
from sequencer_node.wire.blobs import BYTES_PER_BLOB
from sequencer_node.wire.l1calls import SetFeeModel
from tests.l1.helpers import OTHER, OWNERS, USER, batch_header, batch_params, genesis, mine, submit

ECOTONE = FeeParams(model=OP_ECOTONE, base_fee_scalar=2_000)


def owned_chain() -> Chain:
    return Chain(genesis(rollup_owner=USER.address, forks=((0, "cancun"),)))


def test_only_the_owner_sets_the_fee_model_and_the_block_records_it():
    chain = owned_chain()
    good = submit(chain, USER, SetFeeModel(json.dumps(ECOTONE.to_json())))
    # a non-owner is refused at submission, with the owner named
    with pytest.raises(CallRejected, match="only the rollup owner"):
        submit(chain, OTHER, SetFeeModel('{"model": "flat"}'))
    mine(chain)
    with pytest.raises(CallRejected, match="JSON object"):
        submit(chain, USER, SetFeeModel('["flat"]'))
    assert chain.receipts[good].status == 1
    record = chain.fee_record(1)
    assert record.fee_config is not None
    assert fee_params_of(record.fee_config) == ECOTONE
    assert chain.fee_record(0).fee_config is None


def test_no_owner_means_nobody_may_set_it():
    chain = Chain(genesis())
    with pytest.raises(CallRejected, match="no rollup owner"):
        submit(chain, USER, SetFeeModel('{"model": "flat"}'))


def test_fee_record_has_the_base_fees_and_each_batch_cost():
    chain = owned_chain()
    blob = submit(chain, OWNERS[0], batch_params(batch_header(chain, blobs=1)))
    mine(chain)
    r = chain.receipts[blob]
    record = chain.fee_record(1)
    assert record.base_fee == chain.config.base_fee_per_gas
    assert record.blob_base_fee == r.blob_gas_price == 1
    assert len(record.batches) == 1
    cost = record.batches[0]
    assert cost.batch_number == 0
    assert cost.cost == r.gas_used * r.effective_gas_price + r.blob_gas_used * r.blob_gas_price
    assert cost.data_bytes == BYTES_PER_BLOB
    calldata = submit(chain, OWNERS[0], batch_params(batch_header(chain), calldata=b"batch"))
    mine(chain)
    assert chain.receipts[calldata].status == 1
    assert chain.fee_record(2).batches[0].data_bytes == len(b"batch")


def test_dev_genesis_has_a_rollup_owner_and_the_file_keeps_it(tmp_path: Path):
    from l1_mock.chain import ChainConfig

    g = genesis_mod.dev_genesis(ChainConfig())
    assert g.config.rollup_owner == genesis_mod.dev_key(genesis_mod.DEV_ROLLUP_OWNER).address
    assert genesis_mod.from_json(genesis_mod.to_json(g)).config == g.config
    with pytest.raises(ValueError, match="rollup_owner"):
        genesis_mod.from_json({"config": {"rollup_owner": "0x1234"}})


@pytest.fixture
async def l1(tmp_path: Path) -> AsyncIterator[tuple[L1Service, L1Client]]:
    g = genesis(rollup_owner=USER.address, forks=((0, "cancun"),))
    g = dataclasses.replace(g, config=dataclasses.replace(g.config, genesis_time=1_700_000_000))
    node = L1Service.open(g, L1Settings(tmp_path / "l1", 2, auto_mine=False))
    async with trio.open_nursery() as nursery:
        url = await nursery.start(serve, node, "127.0.0.1", 0)
        async with L1Client(url) as client:
            yield node, client
        nursery.cancel_scope.cancel()
    node.store.close()


async def test_fee_info_is_served_for_finalized_blocks_only(
    l1: tuple[L1Service, L1Client],
) -> None:
    node, client = l1
    h = await client.set_fee_model(ECOTONE.to_json(), USER)
    await client.dev_mine(1)
    receipt = await client.receipt(h)
    assert receipt is not None
    assert receipt.status == 1
    await client.dev_mine(3 * 32)
    fin = (await client.finalized()).number
    infos = [
        L1FeeInfo.of(r.number, r.base_fee, r.blob_base_fee, r.batches, r.fee_model)
        for r in await client.l1_fee_info(0, 1_000)
    ]
    assert [i.number for i in infos] == list(range(fin + 1))
    assert infos[1].fee_config == ECOTONE
    assert infos[1].base_fee == node.chain.config.base_fee_per_gas
    with pytest.raises(L1Rejected):
        await client.submit(SetFeeModel('{"model": "flat"}'), OTHER)
    assert await client.l1_fee_info(fin + 1, 10) == []
