"""The import rules of docs/architecture.md, checked on the source tree.

* the node's folders form layers (:data:`LAYERS`): a module imports only from its own layer
  or lower ones. ``system`` and ``wire`` are leaves (nothing else from the project); then the
  pure protocol (``core``, ``batching``), then what is built on it (``sim``, the two HTTP
  ``clients``, ``genesis``, ``keystore``), then the processes' parts (``shell``, ``batcher``,
  ``derivation``), then what starts them (``cli``, ``devnet``);
* the pure layers (``sequencer_node.core``, ``sequencer_node.batching``, ``sequencer_node.sim``,
  ``l1_mock.chain``) import no I/O, clock or randomness modules;
* ``l1_mock`` imports only ``wire`` and ``system`` from the node, ``l1_mock.chain`` only
  ``wire`` (and nothing from the rest of ``l1_mock``); the node never imports ``l1_mock``.
  One exception for both: the inbox's rules, ``batching.inbox_rule`` (pure), which the inbox
  shares with the co-signers so the two cannot drift apart;
* no import cycles between project modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("sequencer_node", "l1_mock")
IMPURE = {
    "trio",
    "socket",
    "time",
    "random",
    "os",
    "sqlite3",
    "asyncio",
    "threading",
    "subprocess",
    "httpx",
    "hypercorn",
    "starlette",
    "secrets",
    "datetime",
    "io",
    "pathlib",
    "shutil",
    "signal",
    "select",
    "selectors",
    "multiprocessing",
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _imports(name: str, path: Path) -> set[str]:
    """Absolute names of every module imported anywhere in the file (incl. function bodies)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_pkg else 0)]
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)
    return out


MODULES = _modules()
IMPORTS = {name: _imports(name, path) for name, path in MODULES.items()}


def _project_imports(name: str) -> set[str]:
    return {m for m in IMPORTS[name] if m in MODULES and m != name}


def _in(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


#: The node's layers, lowest first. A module may import from its own layer and lower ones.
LAYERS: tuple[frozenset[str], ...] = tuple(
    frozenset(f"sequencer_node.{name}" for name in layer)
    for layer in (
        ("system", "wire"),
        ("core", "batching"),
        ("sim", "clients", "genesis", "keystore"),
        ("shell", "batcher", "derivation"),
        ("cli", "devnet"),
        ("__main__",),
    )
)
#: Imports between two folders of one layer that are not allowed either.
FORBIDDEN_SIDEWAYS = {
    ("sequencer_node.core", "sequencer_node.batching"),
    ("sequencer_node.derivation", "sequencer_node.shell"),
    ("sequencer_node.derivation", "sequencer_node.batcher"),
    ("sequencer_node.batcher", "sequencer_node.shell"),
    ("sequencer_node.devnet", "sequencer_node.cli"),
}
#: Known breaches being removed by issue 10, point 4 (each entry names who removes it); the
#: test fails once one is gone, so the list can only shrink.
PENDING: dict[tuple[str, str], str] = {}


def _layer_of(name: str) -> int | None:
    parts = name.split(".")
    if parts[0] != "sequencer_node" or len(parts) < 2:
        return None
    folder = ".".join(parts[:2])
    for rank, layer in enumerate(LAYERS):
        if folder in layer:
            return rank
    raise AssertionError(f"{folder} is in no layer of LAYERS: add it")


def _folder(name: str) -> str:
    return ".".join(name.split(".")[:2])


def _breaches() -> set[tuple[str, str]]:
    """(importing folder, imported folder) pairs that break the layering."""
    out: set[tuple[str, str]] = set()
    for name in MODULES:
        rank = _layer_of(name)
        if rank is None:
            continue
        for dep in _project_imports(name):
            dep_rank = _layer_of(dep)
            pair = (_folder(name), _folder(dep))
            if dep_rank is None or pair[0] == pair[1]:
                continue
            if dep_rank > rank or pair in FORBIDDEN_SIDEWAYS:
                out.add(pair)
    return out


def test_layers_import_only_downwards() -> None:
    breaches = _breaches()
    new = breaches - set(PENDING)
    assert not new, f"imports from a lower layer to a higher one (or forbidden sideways): {new}"
    fixed = set(PENDING) - breaches
    assert not fixed, f"fixed, remove from PENDING: {fixed}"


def test_system_is_a_leaf() -> None:
    for name in MODULES:
        if _in(name, "sequencer_node.system"):
            bad = {m for m in _project_imports(name) if not _in(m, "sequencer_node.system")}
            assert not bad, f"{name} imports {bad}"


def test_wire_is_self_contained() -> None:
    for name in MODULES:
        if _in(name, "sequencer_node.wire"):
            bad = {m for m in _project_imports(name) if not _in(m, "sequencer_node.wire")}
            assert not bad, f"{name} imports {bad}"


#: The one node module the L1 imports besides wire and system: the inbox's rules.
SHARED = "sequencer_node.batching.inbox_rule"


@pytest.mark.parametrize(
    "layer",
    ["sequencer_node.core", "sequencer_node.batching", "l1_mock.chain", "sequencer_node.sim"],
)
def test_pure_layers_do_no_io(layer: str) -> None:
    for name in MODULES:
        if _in(name, layer):
            roots = {m.split(".")[0] for m in IMPORTS[name]}
            assert not roots & IMPURE, f"{name} imports {roots & IMPURE}"
            if _in(name, "l1_mock.chain"):
                bad = {
                    m
                    for m in _project_imports(name)
                    if not (_in(m, "l1_mock.chain") or _in(m, "sequencer_node.wire") or m == SHARED)
                }
                assert not bad, f"{name} (pure) imports {bad}"


def test_l1_and_node_stay_apart() -> None:
    for name in MODULES:
        deps = _project_imports(name)
        if _in(name, "l1_mock"):
            bad = {
                m
                for m in deps
                if _in(m, "sequencer_node")
                and not any(_in(m, ok) for ok in ("sequencer_node.wire", "sequencer_node.system"))
                and m != SHARED
            }
            assert not bad, f"{name} imports node internals {bad}"
        else:
            bad = {m for m in deps if _in(m, "l1_mock")}
            assert not bad, f"{name} imports the L1 mock {bad}"


def test_no_import_cycles() -> None:
    graph = {name: _project_imports(name) for name in MODULES}
    # A package's __init__ importing its children is how packages work; ignore parent->child.
    for name, deps in graph.items():
        graph[name] = {d for d in deps if not d.startswith(name + ".")}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> None:
        state[n] = 1
        stack.append(n)
        for d in sorted(graph[n]):
            if state.get(d) == 1:
                cycle = [*stack[stack.index(d) :], d]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if d not in state:
                visit(d)
        stack.pop()
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n)
