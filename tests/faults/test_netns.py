"""The netns variant of the fault scenario: each node in its own network namespace, real
kernel TCP between them, faults made in the kernel (a veth down, prohibit routes, netem
latency where the kernel has it). Skipped, with the reason, where namespaces cannot be made."""

from __future__ import annotations

import random
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from tests.faults.netns import netns_unsupported, run_netns_scenario
from tests.faults.scenario import PROFILES, Report
from tests.faults.test_scenario import MUST_HOLD, check

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def report() -> Iterator[Report]:
    reason = netns_unsupported()
    if reason is not None:
        pytest.skip(f"netns variant skipped: {reason}")
    seed = random.randrange(2**31)
    root = Path(tempfile.mkdtemp(prefix=f"seqnet-netns-{seed}-"))
    print(f"netns scenario: seed {seed}, logs and data in {root}")
    rep = trio.run(run_netns_scenario, root, PROFILES["ci"], seed)
    yield rep
    if all(s.ok for s in rep.steps):
        shutil.rmtree(root, ignore_errors=True)


def test_an_isolated_node_does_not_stop_the_others(report: Report) -> None:
    for st in report.steps_of("isolate"):
        check(report, st)


def test_a_50_50_partition_in_the_kernel_halts_and_heals(report: Report) -> None:
    for st in report.steps_of("partition"):
        check(report, st)


def test_wan_latency_slows_but_does_not_stop(report: Report) -> None:
    wan = [s for s in report.steps if s.kind == "wan"]
    if not wan:
        pytest.skip("no WAN latency: this kernel has no sch_netem (`tc qdisc ... netem` fails)")
    for st in wan:
        check(report, st)


def test_end_checks_hold_on_kernel_tcp(report: Report) -> None:
    (st,) = report.steps_of("end")
    check(report, st, [p for k in MUST_HOLD for p in st.info.get(k, [])])
    assert report.end["acked"] > 0
