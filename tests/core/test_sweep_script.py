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
    rc = _script().main(["random", "--from", "300", "--count", "3", "--jobs", "1",
                         "--node-restart", "--out", str(out)])  # fmt: skip
    assert rc == 0
    rows = _lines(out)
    assert [r["seed"] for r in rows] == [300, 301, 302]
    assert all(r["ok"] for r in rows)
    assert all(max(r["heights"]) > 0 for r in rows)  # type: ignore[call-overload]


def test_the_byzantine_majority_control_fails_and_names_its_replay(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "stake.jsonl"
    rc = _script().main(["stake", "--from", "0", "--count", "4", "--jobs", "1", "--majority",
                         "--out", str(out)])  # fmt: skip
    assert rc == 1
    rows = _lines(out)
    assert len(rows) == 4
    failed = [r for r in rows if not r["ok"]]
    assert failed
    assert any(str(r["failure"]).startswith("FORK") for r in failed)  # what it controls
    err = capsys.readouterr().err
    seed = failed[0]["seed"]
    assert f"scripts/sweep stake --from {seed} --count 1 --jobs 1 --majority" in err


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
