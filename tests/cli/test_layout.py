"""The command lines sit on top: nothing below imports them, and the small cycles of issue 10
stay broken (``devnet`` -> ``cli.devnet`` -> ``devnet``; ``cli`` -> ``derivation.cli`` ->
``cli.common``)."""

from __future__ import annotations

from tests.test_layering import IMPORTS, MODULES, _in, _project_imports


def test_nothing_below_the_command_lines_imports_them() -> None:
    for name in MODULES:
        if _in(name, "sequencer_node.cli") or name == "sequencer_node.__main__":
            continue
        bad = {m for m in _project_imports(name) if _in(m, "sequencer_node.cli")}
        assert not bad, f"{name} imports the command line {bad}"


def test_the_devnet_package_is_below_its_command_line() -> None:
    assert "sequencer_node.devnet.__main__" not in MODULES
    assert "sequencer_node.cli.__main__" in MODULES


def test_the_node_command_says_what_it_is() -> None:
    assert "sequencer_node.cli.node" not in MODULES
    assert "sequencer_node.cli.sequencer_node_command" in IMPORTS["sequencer_node.__main__"]


def test_clients_import_no_command_line_or_shell() -> None:
    for name in MODULES:
        if _in(name, "sequencer_node.clients"):
            bad = {
                m
                for m in _project_imports(name)
                if not (_in(m, "sequencer_node.wire") or _in(m, "sequencer_node.clients"))
            }
            assert not bad, f"{name} imports {bad}"
