"""The protocol core and the simulator are pure: no trio, socket, time, random or disk I/O."""

from __future__ import annotations

import ast
import pkgutil
from pathlib import Path

import sequencer_node.core
import sequencer_node.sim

FORBIDDEN = {"trio", "socket", "time", "random", "os", "pathlib", "io", "shutil", "threading"}


def _modules(package: object) -> list[Path]:
    root = Path(package.__file__).parent  # type: ignore[attr-defined]
    return [root / f"{m.name}.py" for m in pkgutil.iter_modules([str(root)])]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "open":
            found.add("open()")
    return found


def test_every_core_and_sim_module_is_pure() -> None:
    paths = _modules(sequencer_node.core) + _modules(sequencer_node.sim)
    assert len(paths) >= 8, paths  # the scan really found the modules
    for path in paths:
        bad = _imports(path) & (FORBIDDEN | {"open()"})
        assert not bad, f"{path.name} imports {bad}"


def test_the_scan_catches_a_forbidden_import(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text("import time\nfrom random import choice\nopen('x')\n")
    assert _imports(f) >= {"time", "random", "open()"}
