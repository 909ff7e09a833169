"""L1 block counts that must cover the L1's finality lag: the forced-inclusion window (else
every forced transaction stalls batch posting) and the seed lead of section 2. Both the L2
genesis (through the core's configuration) and the L1 mock's genesis refuse a window below the
finality lag plus the batch latency, naming the numbers and the fix; every shipped default
satisfies it."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from l1_mock import genesis as l1_genesis
from l1_mock.chain.config import (
    BATCH_LATENCY_BLOCKS,
    FINALITY_LAG_BLOCKS,
    ChainConfig,
    check_sequencing_window,
)
from sequencer_node.core.api import CoreConfig
from sequencer_node.devnet.config import DevnetConfig
from sequencer_node.devnet.setup import l1_genesis_json
from sequencer_node.genesis import GenesisError, parse_genesis
from sequencer_node.sim.harness import Simulation

MIN_WINDOW = FINALITY_LAG_BLOCKS + BATCH_LATENCY_BLOCKS  # 64 + 8


def _l2_doc(**params: int) -> dict[str, Any]:
    return {
        "chain_id": 901,
        "l1_chain_id": 900,
        "validators": [{"public_key": "0x" + "11" * 32, "stake": "1000"}],
        "params": params,
    }


def test_the_l2_genesis_refuses_a_window_inside_the_finality_lag() -> None:
    with pytest.raises(GenesisError) as e:
        parse_genesis(_l2_doc(sequencing_window=64))
    msg = str(e.value)
    assert "params: sequencing_window of 64 L1 blocks" in msg
    assert "finality lag (64 blocks) plus the batch latency (8 blocks)" in msg
    assert "set sequencing_window to at least 72" in msg
    assert parse_genesis(_l2_doc(sequencing_window=72)).params["sequencing_window"] == 72
    # An L1 that finalizes faster allows a shorter window, if the genesis says so.
    parse_genesis(_l2_doc(sequencing_window=20, l1_finality_blocks=4, seed_lead_blocks=68))


def test_the_core_config_refuses_a_seed_lead_inside_the_finality_lag() -> None:
    with pytest.raises(ValueError, match="set seed_lead_blocks to at least 128"):
        CoreConfig(chain_id=1, key=None, seed_lead_blocks=127)
    with pytest.raises(ValueError, match=r"seed_anchor_epochs must be in 1\.\.7"):
        CoreConfig(chain_id=1, key=None, seed_anchor_epochs=8)


def test_the_l1_genesis_refuses_a_window_inside_the_finality_lag() -> None:
    with pytest.raises(ValueError, match="sequencing_window") as e:
        ChainConfig(sequencing_window=64).validate()
    msg = str(e.value)
    assert "sequencing_window of 64 L1 blocks" in msg
    assert "finality lag (up to 64 blocks) plus the batch latency (8 blocks)" in msg
    assert "at least 72" in msg
    doc = l1_genesis.to_json(l1_genesis.dev_genesis(ChainConfig()))
    doc["config"]["sequencing_window"] = 71
    with pytest.raises(ValueError, match="at least 72"):
        l1_genesis.from_json(doc)
    doc["config"]["sequencing_window"] = 72
    assert l1_genesis.from_json(doc).config.sequencing_window == 72
    check_sequencing_window(MIN_WINDOW)


def test_the_shipped_defaults_satisfy_the_windows(tmp_path: Path) -> None:
    assert ChainConfig().sequencing_window >= MIN_WINDOW
    ChainConfig().validate()
    core = CoreConfig(chain_id=1, key=None)
    assert core.sequencing_window >= core.l1_finality_blocks + core.batch_latency_blocks
    assert core.l1_finality_blocks >= FINALITY_LAG_BLOCKS  # the L1 mock's
    cfg = DevnetConfig(tmp_path)
    l1 = l1_genesis.from_json(l1_genesis_json(cfg, [], 1_000_000)).config  # validates it
    assert l1.sequencing_window == cfg.sequencing_window >= MIN_WINDOW
    sim = Simulation(1)
    sim_core = sim.config_for(sim.instances[0])  # constructing it checks the windows
    assert dataclasses.replace(sim_core).sequencing_window == 20
