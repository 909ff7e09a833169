"""The DA mock's core is pure, and its verification half lives in the shared wire package
(``sequencer_node.wire.da``), which the L1, the DA mock and the node all import."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DA = ROOT / "l1_mock" / "da"
WIRE_DA = ROOT / "sequencer_node" / "wire" / "da"
#: What a reader on the node side needs (the node may not import l1_mock: docs/da.md).
VERIFIERS = ["merkle", "shares", "nmt", "attest", "reader"]
PURE = [DA / "chain.py", *(WIRE_DA / f"{v}.py" for v in VERIFIERS)]
IMPURE = {
    "trio", "socket", "time", "random", "os", "sqlite3", "asyncio", "threading", "subprocess",
    "httpx", "hypercorn", "starlette", "secrets", "datetime", "io", "pathlib", "shutil",
}  # fmt: skip


def _imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


@pytest.mark.parametrize("path", PURE, ids=lambda p: p.stem)
def test_pure_modules_do_no_io(path: Path) -> None:
    imports = _imports(path)
    assert not {m.split(".")[0] for m in imports} & IMPURE
    shells = {m for m in imports if m.startswith(("l1_mock.da.server", "l1_mock.da.store"))}
    assert not shells


@pytest.mark.parametrize("module", VERIFIERS)
def test_verifiers_depend_only_on_each_other_and_the_wire(module: str) -> None:
    imports = _imports(WIRE_DA / f"{module}.py")
    project = {m for m in imports if m.startswith(("l1_mock", "sequencer"))}
    assert {m for m in project if not m.startswith("sequencer_node.wire")} == set()
