"""l1_mock.chain is pure (no I/O, clock or randomness) and the node never imports l1_mock."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {"trio", "socket", "time", "random", "os", "sqlite3", "httpx", "asyncio", "threading"}


def imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out


def test_chain_is_pure() -> None:
    files = list((ROOT / "l1_mock" / "chain").glob("*.py"))
    assert files
    for f in files:
        bad = {
            m
            for m in imports(f)
            if m.split(".")[0] in FORBIDDEN or m.startswith(("l1_mock.server", "l1_mock.store"))
        }
        assert not bad, f"{f.name} imports {bad}"


def test_node_side_never_imports_l1_mock() -> None:
    files = list((ROOT / "sequencer_node").rglob("*.py"))
    assert ROOT / "sequencer_node" / "clients" / "l1.py" in files
    for f in files:
        assert not {m for m in imports(f) if m.startswith("l1_mock")}, f.name
