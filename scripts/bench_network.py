"""Command line of ``scripts/bench`` (see :mod:`sequencer_node.devnet.bench`).

Usage: ``scripts/bench [--quick | --profile NAME] [--out DIR] [--no-plots]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sequencer_node.devnet.bench import PROFILES, run

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="the short profile (under a minute)")
    p.add_argument("--profile", choices=sorted(PROFILES), help="quick, sweep (4 nodes) or full")
    p.add_argument("--out", type=Path, help="results directory (default docs/bench[/quick])")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument(
        "--profile-nodes",
        type=float,
        metavar="RATE",
        help="instead: py-spy on the nodes under RATE tx/s (0: idle) -> profile[-idle].{json,md}",
    )
    p.add_argument(
        "--nodes",
        type=int,
        default=4,
        metavar="N",
        help="with --profile-nodes: the network's size (4 to 16; py-spy samples its first 4 "
        "nodes); files get a -N suffix unless N is 4",
    )
    p.add_argument(
        "--report-only",
        action="store_true",
        help="re-render results.md and the plots from the results.json in --out",
    )
    args = p.parse_args()
    name = args.profile or ("quick" if args.quick else "full")
    prof = PROFILES[name]
    out = args.out or (ROOT / "docs" / "bench" / ("" if name == "full" else name))

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    if args.report_only:
        import json

        from sequencer_node.devnet import bench_report

        doc = json.loads((out / "results.json").read_text())
        (out / "results.md").write_text(bench_report.markdown(doc))
        if not args.no_plots:
            bench_report.plots(doc, out)
        return
    if args.profile_nodes is not None:
        from sequencer_node.devnet import bench_profile

        out = args.out or ROOT / "docs" / "bench"
        if not 4 <= args.nodes <= 16:
            p.error(f"--nodes {args.nodes}: the profile runs networks of 4 to 16 nodes")
        bench_profile.run(args.profile_nodes, 20.0, out, say, args.nodes)
        print(f"profile in {out}")
        return
    done = run(prof, out, say, plots=not args.no_plots)
    print(f"results in {done}/results.md")


if __name__ == "__main__":
    main()
