"""``scripts/sweep.py``, the sweep of fresh simulator seeds: it passes honest seeds, it can
fail (the byzantine-majority control), and it says how to replay what failed."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "sweep.py"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sweep_script", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass needs its module registered
    spec.loader.exec_module(module)
    return module


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_honest_seeds_pass_and_each_is_written(tmp_path: Path) -> None:
    out = tmp_path / "random.jsonl"
    rc = _script().main(["random", "--from", "300", "--count", "3", "--jobs", "2",
                         "--node-restart", "--out", str(out)])  # fmt: skip
    assert rc == 0
    rows = _lines(out)
    assert [r["seed"] for r in rows] == [300, 301, 302]
    assert all(r["ok"] for r in rows)
    assert all(max(r["heights"]) > 0 for r in rows)  # type: ignore[call-overload]
    assert rows[0]["replay"] == (
        "scripts/sweep random --from 300 --count 1 --jobs 1 --node-restart"
    )


def test_the_byzantine_majority_control_forks_and_its_replay_forks_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep = _script()
    out = tmp_path / "stake.jsonl"
    rc = sweep.main(["stake", "--from", "0", "--count", "4", "--jobs", "1", "--majority",
                     "--out", str(out)])  # fmt: skip
    assert rc == 0  # the control held: its runs forked
    assert "as it must" in capsys.readouterr().err
    rows = _lines(out)
    assert len(rows) == 4
    forked = [r for r in rows if str(r["failure"]).startswith("FORK")]
    assert forked
    # The replay command of a forked run runs the same schedule: the same fork again.
    argv = str(forked[0]["replay"]).split()[1:]
    again = tmp_path / "again.jsonl"
    assert sweep.main([*argv, "--out", str(again)]) == 0
    (row,) = _lines(again)
    assert row["failure"] == forked[0]["failure"]


def test_the_control_fails_when_nothing_forks(tmp_path: Path) -> None:
    sweep = _script()
    honest = [{"ok": True, "failure": None, "violation": False}]
    crashed = [{"ok": False, "failure": "KeyError: 3", "violation": False}]
    forked = [{"ok": False, "failure": "FORK: n1 committed ...", "violation": True}]
    assert not sweep.control_held(honest)
    assert not sweep.control_held(forked + crashed)
    assert sweep.control_held(forked + honest)


def test_an_existing_results_file_is_kept_unless_forced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "kept.jsonl"
    out.write_text("last night's results\n")
    argv = ["random", "--from", "1", "--count", "1", "--jobs", "1", "--out", str(out)]
    with pytest.raises(SystemExit) as exc:
        _script().main(argv)
    assert exc.value.code == 2
    assert "--force" in capsys.readouterr().err
    assert out.read_text() == "last night's results\n"
    assert _script().main([*argv, "--force"]) == 0
    assert [r["seed"] for r in _lines(out)] == [1]


@pytest.mark.parametrize(
    "argv",
    [
        ["stake", "--node-restart"],
        ["random", "--majority"],
        ["random", "--count", "0"],
        ["random", "--jobs", "0"],
        ["other"],
    ],
)
def test_bad_arguments_exit_2_with_a_message(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        _script().main(argv)
    assert exc.value.code == 2
    assert "error:" in capsys.readouterr().err
