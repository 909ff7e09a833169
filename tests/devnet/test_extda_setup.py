"""``seqctl devnet up --da extda`` set-up, without processes: the DA genesis (written by the DA
mock's own command) funds the sequencers, the L1 genesis takes the DA committee, chain id and
the rollup's namespace from it and funds the relayer; the DA process relays to the L1; the
nodes get the DA URL; a devnet without extda has none of it."""

from __future__ import annotations

import json
from pathlib import Path

from l1_mock import genesis as l1_genesis_mod
from l1_mock.chain import Chain
from sequencer_node.devnet import extda
from sequencer_node.devnet.config import DevnetConfig
from sequencer_node.devnet.runner import node_argv
from sequencer_node.devnet.setup import prepare_files


def test_an_extda_devnet_has_a_da_genesis_and_an_l1_that_knows_its_committee(
    tmp_path: Path,
) -> None:
    cfg = DevnetConfig(tmp_path / "d", da="extda", da_port=27000)
    keys = prepare_files(cfg)
    da = json.loads(cfg.da_genesis.read_text())
    funded = {b["address"] for b in da["balances"]}
    assert {"0x" + k.address.hex() for k in keys} <= funded
    l1 = l1_genesis_mod.load(cfg.l1_genesis)
    assert l1.config.da_namespace == extda.namespace(cfg)
    assert l1.config.da_chain_id == da["config"]["chain_id"]
    assert [("0x" + k.hex(), str(s)) for k, s in l1.config.da_committee] == [
        (m["key"], m["stake"]) for m in da["committee"]
    ]
    relayer = extda.relayer_key(cfg)
    assert dict(l1.balances)[relayer.address] > 0
    Chain(l1)  # a valid L1 genesis
    argv = extda.da_argv(cfg)
    assert argv[argv.index("--relay-l1-url") + 1] == cfg.l1_url
    assert argv[argv.index("--port") + 1] == "27000"
    node = node_argv(cfg, 0)
    assert node[node.index("--da") + 1] == "extda"
    assert node[node.index("--da-url") + 1] == "http://127.0.0.1:27000"
    assert ("DA", 27000) in cfg.ports()
    # prepare_files is idempotent: same DA genesis, same relayer
    before = cfg.da_genesis.read_text()
    prepare_files(cfg)
    assert cfg.da_genesis.read_text() == before
    assert extda.relayer_key(cfg).public_key == relayer.public_key


def test_a_blobs_devnet_has_no_da_layer(tmp_path: Path) -> None:
    cfg = DevnetConfig(tmp_path / "d")
    prepare_files(cfg)
    assert not cfg.da_genesis.exists()
    assert not l1_genesis_mod.load(cfg.l1_genesis).config.da_committee
    assert "--da-url" not in node_argv(cfg, 0)


def test_the_compose_da_service_runs_the_da_mock_with_its_relayer() -> None:
    import yaml
    from click.testing import CliRunner

    from l1_mock.da.cli import main as da_mock

    root = Path(__file__).resolve().parents[2]
    compose = yaml.safe_load((root / "docker-compose.yml").read_text())
    da = compose["services"]["da"]
    assert da["profiles"] == ["extda"]
    cmd = [str(a) for a in da["command"]]
    assert cmd[:2] == ["da-mock", "run"]
    helptext = CliRunner().invoke(da_mock, ["run", "--help"]).output
    for flag in (a for a in cmd if a.startswith("--")):
        assert flag in helptext, flag
    assert cmd[cmd.index("--relay-l1-url") + 1] == "http://l1:8545"
    node_env = compose["services"]["node-0"]["environment"]
    assert node_env["SEQ_DA_URL"] == "http://da:26658"
    assert compose["services"]["genesis"]["environment"]["SEQ_DEVNET_DA"] == "${SEQ_DA:-blobs}"
