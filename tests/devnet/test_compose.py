"""Static check of docker-compose.yml against the project's real command lines.

The compose file must parse; every service's command must be a console script of this project
whose sub-command and flags exist (``<command> --help`` exits 0 in the project's environment);
every ``SEQ_*`` variable a service sets must be the environment variable of an option of that
command; the nodes' configuration must pass the node's own dry run (``sequencer-node run
--check-config``) with the service's environment, on files made by ``seqctl devnet init`` the
way the compose ``genesis`` job makes them.

PyYAML is not a dependency of the project: the file is read with PyYAML when it is importable,
else with the interpreter that runs docker-compose v1 (which ships it); the test is skipped
when neither is there. Budget: about 10 seconds.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import click
import pytest

from tests.devnet.helpers import BIN, ROOT

COMPOSE = ROOT / "docker-compose.yml"
NODE_SERVICES = ("node-0", "node-1", "node-2", "node-3")


def _load_yaml(path: Path) -> dict[str, Any]:
    try:
        import yaml  # type: ignore[import-untyped, unused-ignore]
    except ImportError:
        yaml = None
    if yaml is not None:
        data: dict[str, Any] = yaml.safe_load(path.read_text())
        return data
    compose = shutil.which("docker-compose")
    if compose is not None:
        first = Path(compose).read_bytes().split(b"\n", 1)[0].decode(errors="replace")
        if first.startswith("#!") and "python" in first:
            interp = first[2:].strip().split()[0]
            code = "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))"
            r = subprocess.run([interp, "-c", code, str(path)], capture_output=True, text=True)
            if r.returncode == 0:
                parsed: dict[str, Any] = json.loads(r.stdout)
                return parsed
    pytest.skip("no YAML parser: PyYAML is not installed and docker-compose v1 is not here")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return _load_yaml(COMPOSE)


def _scripts() -> dict[str, str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    scripts: dict[str, str] = data["project"]["scripts"]
    return scripts


def _click_command(argv: list[str]) -> click.Command:
    """The click command an argv runs (console script, then sub-commands)."""
    target = _scripts()[argv[0]]
    module, attr = target.split(":")
    cmd: click.Command = getattr(importlib.import_module(module), attr)
    for token in argv[1:]:
        if isinstance(cmd, click.Group) and token in cmd.commands:
            cmd = cmd.commands[token]
        else:
            break
    return cmd


def _envvars(cmd: click.Command) -> set[str]:
    out: set[str] = set()
    for p in cmd.params:
        ev = getattr(p, "envvar", None)
        if isinstance(ev, str):
            out.add(ev)
        elif isinstance(ev, (list, tuple)):
            out.update(ev)
    if any(getattr(p, "name", None) == "password_file" for p in cmd.params):
        out.add("SEQ_PASSWORD")
    return out


def _devnet_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services of the default profile (the devnet itself; `monitoring` is checked in
    tests/devnet/test_monitoring.py)."""
    return {n: s for n, s in compose["services"].items() if not s.get("profiles")}


def _services_with_commands(compose: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(n, s) for n, s in _devnet_services(compose).items() if s.get("command")]


def test_compose_file_shape(compose: dict[str, Any]) -> None:
    services = _devnet_services(compose)
    assert {"genesis", "l1", "stake", "load", *NODE_SERVICES} <= set(services)
    declared = set(compose.get("volumes") or {})
    rpc_ports = set()
    for name, svc in services.items():
        for v in svc.get("volumes", []):
            src = v.split(":")[0]
            assert src in declared, f"{name}: volume {src} is not declared"
        assert svc.get("image") == "seqnet:dev", name
    for name in ("l1", *NODE_SERVICES):
        assert "healthcheck" in services[name], f"{name} has no healthcheck"
    for name in NODE_SERVICES:
        svc = services[name]
        (port,) = svc["ports"]
        host, container = port.rsplit(":", 1)
        assert container == "8600"  # RPC, /health and /metrics
        rpc_ports.add(host)
        assert svc["environment"]["SEQ_KEY_FILE"] == f"/devnet/keys/seq-{name[-1]}.json"
        data_volumes = [v for v in svc["volumes"] if v.endswith(":/data")]
        assert data_volumes == [f"{name}-data:/data"], "each node needs its own data volume"
        peers = svc["environment"]["SEQ_PEERS"].split(",")
        assert sorted(peers) == sorted(f"{n}:9000" for n in NODE_SERVICES if n != name)
    assert len(rpc_ports) == len(NODE_SERVICES)
    assert "8545" in services["l1"]["ports"][0]


def _default(text: str) -> str:
    """``${VAR:-default}`` -> ``default`` (what compose uses when VAR is not set)."""
    return re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", text)


def test_published_ports_bind_to_localhost_by_default(compose: dict[str, Any]) -> None:
    # issue 14, friction 5: every port was published on 0.0.0.0 (the L1's dev_mine included)
    published = [
        (name, str(p)) for name, svc in compose["services"].items() for p in svc.get("ports", [])
    ]
    assert published
    for name, port in published:
        assert _default(port).startswith("127.0.0.1:"), f"{name} publishes {port} on all interfaces"
        assert port.startswith("${SEQ_COMPOSE_BIND:-127.0.0.1}:"), f"{name}: not movable"


def test_every_command_exists_with_its_flags(compose: dict[str, Any]) -> None:
    scripts = _scripts()
    for name, svc in _services_with_commands(compose):
        argv = [str(a) for a in svc["command"]]
        assert argv[0] in scripts, f"{name}: {argv[0]} is not a console script of the project"
        exe = BIN / argv[0]
        full = [str(exe)] if exe.exists() else [sys.executable, "-m", scripts[argv[0]]]
        r = subprocess.run([*full, *argv[1:], "--help"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, f"{name}: `{' '.join(argv)} --help` failed: {r.stderr}"


def test_every_environment_variable_is_an_option(compose: dict[str, Any]) -> None:
    checked = 0
    for name, svc in _services_with_commands(compose):
        env = svc.get("environment") or {}
        if isinstance(env, list):
            env = dict(e.split("=", 1) for e in env)
        cmd = _click_command([str(a) for a in svc["command"]])
        known = _envvars(cmd)
        for var in env:
            if var.startswith("SEQ_"):
                assert var in known, f"{name}: {var} is not an option of {cmd.name}: {known}"
                checked += 1
    assert checked >= 4 * len(NODE_SERVICES)


def _rewrite(value: str, devnet: Path, data: Path) -> str:
    value = re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", value)  # compose defaults
    return value.replace("/devnet", str(devnet)).replace("/data", str(data))


def test_nodes_pass_the_node_dry_run(compose: dict[str, Any], tmp_path: Path) -> None:
    """The node services' environment on files laid out as the compose jobs lay them out."""
    from sequencer_node.clients.l1 import L1StakeEntry, L1StakeSnapshot
    from sequencer_node.devnet.config import DevnetConfig
    from sequencer_node.devnet.setup import l2_genesis_json, prepare_files, write_l2_genesis

    genesis_job = [str(a) for a in compose["services"]["genesis"]["command"]]
    assert genesis_job[:3] == ["seqctl", "devnet", "init"]
    devnet = tmp_path / "devnet"
    cfg = DevnetConfig(devnet, advertise_host="node-{i}", same_ports=True)
    keys = prepare_files(cfg)
    # what the `stake` job writes after the L1 snapshot is final (here without an L1)
    snap = L1StakeSnapshot(
        1,
        bytes(32),
        True,
        tuple(L1StakeEntry(k.public_key, k.address, "", "", 10**22) for k in keys),
    )
    write_l2_genesis(cfg, l2_genesis_json(cfg, keys, snap, 0))
    for name in NODE_SERVICES:
        svc = compose["services"][name]
        env = {k: _rewrite(str(v), devnet, tmp_path / name) for k, v in svc["environment"].items()}
        argv = [str(a) for a in svc["command"]]
        exe = BIN / argv[0]
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("SEQ_")}
        full_env.update(env)
        r = subprocess.run(
            [str(exe), *argv[1:], "--check-config"],
            capture_output=True,
            text=True,
            env=full_env,
            timeout=60,
        )
        assert r.returncode == 0, f"{name}: --check-config failed:\n{r.stdout}\n{r.stderr}"


def test_docker_compose_accepts_the_file() -> None:
    compose = shutil.which("docker-compose")
    if compose is None:
        pytest.skip("docker-compose is not installed")
    r = subprocess.run(
        [compose, "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr


def test_compose_smoke_takes_extda_and_a_fee_model_and_refuses_the_rest() -> None:
    smoke = ROOT / "scripts" / "compose-smoke"
    r = subprocess.run(["bash", str(smoke), "--bogus"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "--extda, --fee-model MODEL" in r.stderr
    r = subprocess.run(["bash", str(smoke), "--fee-model"], capture_output=True, text=True,
                       timeout=30)  # fmt: skip
    assert r.returncode != 0
    assert "--fee-model needs a model" in r.stderr


def test_docker_compose_extda_profile_with_a_fee_model() -> None:
    compose = shutil.which("docker-compose")
    if compose is None:
        pytest.skip("docker-compose is not installed")
    env = {**os.environ, "SEQ_DA": "extda", "SEQ_FEE_MODEL": "op-fjord"}
    r = subprocess.run(
        [compose, "-f", str(COMPOSE), "--profile", "extda", "config"],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "da-mock" in r.stdout
    assert "SEQ_DEVNET_FEE_MODEL: op-fjord" in r.stdout
    assert "SEQ_DA: extda" in r.stdout
