"""Test configuration: Hypothesis profiles (HYPOTHESIS_PROFILE=ci|dev|soak), and the two parts
of a whole run (``SEQ_TEST_PART``, set by scripts/test)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=30, deadline=None)
settings.register_profile(
    "soak", max_examples=2000, deadline=None, suppress_health_check=list(HealthCheck)
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


#: In-process tests that only use the CPU (no subprocess, no wall-clock deadline that another
#: test's load could miss): scripts/test runs them on every core at once. A test under these
#: paths that starts processes is marked slow (the marker's meaning), which keeps it serial.
PARALLEL_PATHS = (
    "tests/core",
    "tests/batching",
    "tests/da",
    "tests/shell",
    "tests/l1",
    "tests/eth",
    "tests/system",
    "tests/cli",
    "tests/batcher/test_builder_cosign.py",
    "tests/batcher/test_inbox_judge.py",
    "tests/batcher/test_records.py",
    "tests/devnet/test_ports.py",
    "tests/faults/test_checks.py",
    "tests/faults/test_fuzz.py",
    "tests/test_codec.py",
    "tests/test_keystore.py",
    "tests/test_layering.py",
    "tests/test_signing.py",
)
_ROOT = Path(__file__).resolve().parent.parent


def _parallel(item: pytest.Item) -> bool:
    where = item.path.resolve().relative_to(_ROOT).as_posix()

    in_paths = any(where == p or where.startswith(p + "/") for p in PARALLEL_PATHS)
    return in_paths and item.get_closest_marker("slow") is None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``SEQ_TEST_PART=parallel`` keeps the tests of PARALLEL_PATHS not marked slow;
    ``serial`` keeps all the others; unset keeps everything."""
    part = os.environ.get("SEQ_TEST_PART")
    if part is None:
        return
    if part not in ("parallel", "serial"):
        raise pytest.UsageError(f"SEQ_TEST_PART must be parallel or serial, not {part!r}")
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        (keep if _parallel(item) == (part == "parallel") else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
