"""The DA mock's core is pure, and its verification half can move to the shared wire package."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DA = ROOT / "l1_mock" / "da"
PURE = ["merkle", "shares", "nmt", "chain", "attest", "reader"]
#: What a reader on the node side needs (the node may not import l1_mock: docs/da.md).
VERIFIERS = ["merkle", "shares", "nmt", "attest", "reader"]
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


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_do_no_io(module: str) -> None:
    imports = _imports(DA / f"{module}.py")
    assert not {m.split(".")[0] for m in imports} & IMPURE
    shells = {m for m in imports if m.startswith(("l1_mock.da.server", "l1_mock.da.store"))}
    assert not shells


@pytest.mark.parametrize("module", VERIFIERS)
def test_verifiers_depend_only_on_each_other_and_the_wire(module: str) -> None:
    project = {m for m in _imports(DA / f"{module}.py") if m.startswith(("l1_mock", "sequencer"))}
    allowed = (*(f"l1_mock.da.{v}" for v in VERIFIERS), "sequencer_node.wire")
    assert {m for m in project if m != "l1_mock.da" and not m.startswith(allowed)} == set()
