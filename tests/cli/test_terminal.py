"""Tables, progress and the devnet's live view drawn with ``rich`` on a terminal, and the plain
text everywhere else (issue 14: "plain output when not a terminal, --json unchanged")."""

from __future__ import annotations

import io
import sys

import pytest
from rich.console import Console

from sequencer_node.devnet.monitor import L1View, NodeView, Snapshot, live_view
from sequencer_node.system import terminal


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_tables_are_plain_when_not_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    text = terminal.table_text(["node", "height"], [["node-0", 12]])
    assert text.splitlines() == ["node    height", "------  ------", "node-0  12"]


def test_tables_are_drawn_by_rich_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdout", _Tty())
    monkeypatch.delenv("TERM", raising=False)
    text = terminal.table_text(["node", "height"], [["node-0", 12]])
    assert "node-0" in text
    assert "height" in text
    assert "------" not in text  # rich's rule, not the plain one
    assert "─" in text or "━" in text


def test_waiting_draws_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    plain = io.StringIO()
    monkeypatch.setattr(sys, "stderr", plain)
    with terminal.waiting("waiting for x", 5) as shown:
        shown.update("pending")
    assert plain.getvalue() == ""
    tty = _Tty()
    monkeypatch.setattr(sys, "stderr", tty)
    monkeypatch.delenv("TERM", raising=False)
    with terminal.waiting("waiting for x", 5) as shown:
        shown.update("certified at 3")
    assert tty.getvalue(), "the spinner drew on the terminal"


def test_the_devnet_live_view_shows_every_node() -> None:
    nodes = [NodeView("node-0", "http://a"), NodeView("node-1", "http://b")]
    nodes[0].status = {"role": "leader", "heads": {"certified": {"height": 41}}, "peers": 3}
    nodes[1].error = "ConnectError"
    snap = Snapshot(L1View("http://l1", head=120, batches=7), nodes, 0.0)
    console = Console(record=True, width=120, file=io.StringIO())
    console.print(live_view(snap, {}, {"node-0": True, "node-1": False}, "Ctrl-C stops"))
    text = console.export_text()
    assert "head 120" in text
    assert "batches on L1 7" in text
    assert "leader" in text
    assert "41" in text
    assert "EXITED" in text
    assert "ConnectError" in text
