"""The network benchmark's report: a markdown page and PNG plots from ``results.json``
(:mod:`~sequencer_node.devnet.bench`). Plots need matplotlib (the ``bench`` extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _f(x: Any, digits: int = 0) -> str:
    if x is None:
        return "-"
    if isinstance(x, float | int):
        return f"{x:,.{digits}f}"
    return str(x)


def _table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _load_rows(steps: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for s in steps:
        rss = s["rss_mb_max"]
        node_rss = max((v for k, v in rss.items() if k.startswith("node-")), default=None)
        rows.append([
            _f(s["offered"]), _f(s["certified_tx_s"]),
            _f(s["latency_s"]["p50"], 2), _f(s["latency_s"]["p99"], 2),
            _f(s["l1_latency_s"]["p50"], 1), _f(s["l1_latency_s"]["p99"], 1),
            _f(s["cpu_us_per_tx_per_node"]), _f(s.get("worker_cpu_us_per_tx_per_node")),
            _f(s["node_cores"], 2), _f(s["l1_cores"], 2),
            _f(node_rss), _f(rss.get("l1")),
            _f(s["health_ms"]["p50"], 1), _f(s["health_ms"]["p99"], 1),
            _f(s["client_cpu_us_per_tx"]), _f(s["rejected"] + s["skipped"]),
        ])  # fmt: skip
    return rows


LOAD_HEAD = ["offered tx/s", "certified tx/s", "p50 s", "p99 s", "L1 p50 s", "L1 p99 s",
             "CPU us/tx/node", "of which batch workers", "node cores", "L1 cores",
             "node RSS MB", "L1 RSS MB", "/health p50 ms", "/health p99 ms", "client us/tx",
             "refused+skipped"]  # fmt: skip


def _eth_lines(eth: dict[str, Any] | None) -> list[str]:
    """The Ethereum-transfer step (same offered rate as the best native step), if measured."""
    if not eth:
        return []
    return [
        "Ethereum (EIP-1559) transfers over the Ethereum JSON-RPC, at the best native step's "
        "offered rate:",
        "",
        _table(LOAD_HEAD, _load_rows([eth])),
        "",
    ]


def _overload_lines(step: dict[str, Any] | None) -> list[str]:
    """The step past saturation, if measured."""
    if not step:
        return []
    return [
        f"Past saturation (open loop at {_f(step['offered'])} tx/s): certified "
        f"{_f(step['certified_tx_s'])} tx/s, {_f(step['of_saturation'] * 100)} % of the "
        f"saturation; refused {step['rejected']} ({', '.join(step['rejected_by']) or 'none'}):",
        "",
        _table(LOAD_HEAD, _load_rows([step])),
        "",
    ]


def _requests_lines(part: dict[str, Any] | None) -> list[str]:
    """Part 1b: one offered rate in larger requests, the fit, the saturated rate."""
    if not part:
        return []
    rows = [[_f(s.get("request_interval_ms")), _f(s.get("txs_per_request"), 1), *r]
            for s, r in zip(part["steps"], _load_rows(part["steps"]), strict=True)]  # fmt: skip
    lines = [
        f"### 1b. Request size: {_f(part['offered'])} tx/s offered in larger requests",
        "",
        "`seqctl load --request-interval-ms`: at most one request per node per interval, "
        "everything due since in it (the 0 ms row is the sweep's step).",
        "",
        _table(["interval ms", "tx/request", *LOAD_HEAD], rows),
        "",
    ]
    if fit := part.get("fit"):
        lines += [
            f"Least squares over these {fit['points']} steps (CPU per certified tx per node "
            f"against requests per tx, r^2 {_f(fit['r2'], 2)}): a transaction costs a node "
            f"**{_f(fit['per_tx_us'])} us ({_f(fit['per_tx_in_verifications'], 2)} "
            f"verifications) when requests are free** (its own work and its share of the "
            f"blocks at this rate); one client request costs the network "
            f"{_f(fit['per_request_us'])} us.",
            "",
        ]
    if big := part.get("at_saturation"):
        lines += [
            f"The sweep's first saturated rate, {_f(big['offered'])} tx/s, in requests at most "
            f"every {_f(big['request_interval_ms'])} ms ({_f(big['txs_per_request'], 1)} "
            f"tx/request; the sweep's step: {_f(big['sweep_txs_per_request'], 1)}): certified "
            f"{_f(big['certified_tx_s'])} tx/s (the sweep's step: "
            f"{_f(big['sweep_certified_tx_s'])}), refused {_f(big['rejected'])}.",
            "",
            _table(LOAD_HEAD, _load_rows([big])),
            "",
        ]
    return lines


def markdown(doc: dict[str, Any]) -> str:
    m, lim, v = doc["machine"], doc["limit"], doc["verify"]
    load = doc["load"]
    parts = [
        f"# Benchmark results ({doc['profile']['name']} profile, {doc['started_at']})",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['os']}, Python {m['python']}, commit "
        f"{m['commit']}; load average {m['load_average']} before, "
        f"{m.get('load_average_after')} after (other work shared the machine). Packages: "
        + ", ".join(f"{k} {x}" for k, x in m["packages"].items() if x)
        + ".",
        "",
        f"Blocks every {doc['profile']['block_time_ms']} ms"
        + (
            f" (every {idle} ms while there is nothing to order)"
            if (idle := doc["profile"].get("idle_block_ms"))
            else ""
        )
        + "; steps of "
        f"{doc['profile']['step_s']:g} s, medians of {doc['profile']['repeats']}; "
        f"{doc['profile']['accounts']} sender accounts; network start {load['start_s']} s.",
        "",
        "## 1. Open-loop load on L1 + 4 nodes",
        "",
        _table(LOAD_HEAD, _load_rows(load["steps"])),
        "",
        *_requests_lines(load.get("requests")),
        *_overload_lines(load.get("overload")),
        *_eth_lines(load.get("eth")),
        f"Idle: {_f(load['idle']['node_cores_mean'] * 100, 1)} % of a core per node (its batch "
        f"workers {_f(load['idle'].get('worker_cores_mean', 0.0) * 100, 1)} %), L1 "
        f"{_f(load['idle']['l1_cores'] * 100, 1)} %. A node's CPU counts its batch worker "
        "processes (decoding, compression, KZG).",
        "",
        "## 2. The limit",
        "",
        _table(
            ["figure", "value"],
            [
                ["Ed25519 verifications/s/core (" + v["library"] + ")", _f(v["per_s_per_core"])],
                ["one verification", f"{_f(lim['one_verify_us'], 1)} us"],
                [
                    "OpenSSL (cryptography), same run",
                    f"{_f(v.get('openssl_per_s_per_core'))}/s/core "
                    f"(libsodium {_f(v.get('speedup_over_openssl'), 2)}x)",
                ],
                [
                    "saturation (best certified tx/s)",
                    f"{_f(lim['saturation_tx_s'])} at {_f(lim['at_offered'])} offered",
                ],
                ["cores the 4 nodes got there", _f(lim["node_cores"], 2)],
                ["every-node-verifies ceiling for those cores", f"{_f(lim['ceiling_tx_s'])} tx/s"],
                ["ratio saturation / ceiling", _f(lim["ratio"], 3)],
                ["ceiling for all the machine's cores", f"{_f(lim['machine_ceiling_tx_s'])} tx/s"],
                [
                    "CPU per certified tx per node, in verifications",
                    _f(lim["cpu_per_tx_in_verifications"], 2),
                ],
            ],
        ),
        "",
        _cosign_text(doc.get("cosign")),
        "",
        "## 3. Scaling",
        "",
        _table(
            [
                "nodes",
                "start s",
                "idle % core/node",
                "offered",
                "certified tx/s",
                "p50 s",
                "p99 s",
                "CPU us/tx/node",
                "offered",
                "certified tx/s",
                "p50 s",
                "p99 s",
                "CPU us/tx/node",
                "node cores",
                "msgs/block",
                "KB/block",
            ],
            [_scaling_row(s) for s in doc["scaling"]],
        ),
        "",
        _scaling_text(doc["scaling"]),
        "",
        "## 4. Failover",
        "",
        _failover_text(load["failover"]),
        "",
    ]
    return "\n".join(parts)


def _cosign_text(c: dict[str, Any] | None) -> str:
    if not c:
        return ""
    return (
        f"Co-signing a blob batch ({c['txs']:,} transfers, {c['blobs']} blobs), same run: "
        f"computing the commitments and proofs {_f(c['compute_ms_per_blob'], 1)} ms per blob "
        f"(what every co-signer did), checking the proposer's proofs against its own blobs "
        f"{_f(c['check_ms_per_blob'], 1)} ms per blob (what it does now), including the "
        f"rebuild of the payload: {_f(c['speedup'], 1)}x less."
    )


def _failover_text(fo: dict[str, Any] | None) -> str:
    if fo is None:
        return "Not measured in this profile."
    return (
        f"Leader killed (SIGKILL) on an idle 4-node network: next certified block after "
        f"{_f(fo['next_block_s'], 2)} s, the one after {_f(fo['second_block_s'], 2)} s; the "
        f"restarted node caught up in {_f(fo.get('restart_caught_up_s'), 1)} s (medians of "
        f"{len(fo['runs'])}: {fo['runs']})."
    )


def _scaling_row(s: dict[str, Any]) -> list[str]:
    if "error" in s:
        return [_f(s["nodes"]), "failed: " + s["error"][:80].replace("|", "/").replace("\n", " ")]
    lo, hi = s["below"], s["above"]
    return [
        _f(s["nodes"]), _f(s["start_s"], 1), _f(s["idle"]["node_cores_mean"] * 100, 1),
        _f(lo["offered"]), _f(lo["certified_tx_s"]), _f(lo["latency_s"]["p50"], 2),
        _f(lo["latency_s"]["p99"], 2), _f(lo["cpu_us_per_tx_per_node"]), _f(hi["offered"]),
        _f(hi["certified_tx_s"]), _f(hi["latency_s"]["p50"], 2), _f(hi["latency_s"]["p99"], 2),
        _f(hi["cpu_us_per_tx_per_node"]), _f(hi["node_cores"], 2),
        _f(hi["p2p_messages_per_block"]), _f(hi["p2p_bytes_per_block"] / 1000, 1),
    ]  # fmt: skip


def scale_out(small: dict[str, Any], large: dict[str, Any]) -> dict[str, float] | None:
    """What the scaling goal (``large`` nodes certify at least half of ``small`` nodes'
    throughput) asks of each node, from one step of each network.

    On one machine the nodes share its cores, so for any step ``certified = cores / (nodes x
    CPU per transaction per node)``, an identity of the measured figures. The throughput
    ratio is therefore ``(cores_L / cores_S) x (n_S / n_L) x (cpu_S / cpu_L)``: with equal
    cores, 16 nodes reach half of 4 nodes' only if a node of 16 spends at most half of what a
    node of 4 spends per transaction. ``per_node_cost`` (``cpu_L / cpu_S``) is the figure that
    carries over to a deployment where each node has its own machine, where the throughput
    ratio would be about ``1 / per_node_cost`` (an estimate: it assumes that a node's CPU per
    transaction does not depend on how the machine is shared)."""
    sn, ln = small.get("nodes"), large.get("nodes")
    s, big = small.get("above"), large.get("above")
    if not (sn and ln and s and big):
        return None
    cs, cl = s.get("cpu_us_per_tx_per_node"), big.get("cpu_us_per_tx_per_node")
    ts, tl = s.get("certified_tx_s"), big.get("certified_tx_s")
    ks, kl = s.get("node_cores"), big.get("node_cores")
    if not (cs and cl and ts and tl and ks and kl):
        return None
    return {
        "measured": tl / ts,
        "identity": (kl / ks) * (sn / ln) * (cs / cl),
        "per_node_cost": cl / cs,
        "needed_per_node_cost": (kl / ks) * (sn / ln) * 2,
        "own_machines_estimate": cs / cl,
    }


def _scaling_text(rows: list[dict[str, Any]]) -> str:
    ok = [r for r in rows if "error" not in r]
    if len(ok) < 2:
        return ""
    small, large = ok[0], ok[-1]
    x = scale_out(small, large)
    if x is None:
        return ""
    n_s, n_l = small["nodes"], large["nodes"]
    return (
        f"At the higher step, {n_l} nodes certified {_f(x['measured'] * 100)} % of {n_s} "
        f"nodes' throughput, and a node of {n_l} spent {_f(x['per_node_cost'], 2)} times the "
        f"CPU per transaction of a node of {n_s}. On one machine the nodes share its cores "
        f"(certified = cores / (nodes x CPU per tx per node), which gives "
        f"{_f(x['identity'] * 100)} % here): half of {n_s} nodes' throughput needs a node of "
        f"{n_l} to spend at most {_f(x['needed_per_node_cost'], 2)} times what a node of "
        f"{n_s} spends, whatever the protocol does. With a machine per node the ratio would "
        f"be about {_f(x['own_machines_estimate'] * 100)} % (an estimate: one over the "
        f"per-node cost, as if CPU were the only limit and a node's CPU per transaction did "
        f"not depend on the sharing)."
    )


def plots(doc: dict[str, Any], out_dir: Path) -> list[Path]:
    """``load.png`` (throughput, latency, CPU, /health against the offered rate) and
    ``scaling.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = doc["load"]["steps"]
    x = [s["offered"] for s in steps]
    fig, ax = plt.subplots(2, 2, figsize=(11, 8))
    a = ax[0][0]
    a.plot(x, [s["certified_tx_s"] for s in steps], "o-", label="certified")
    a.plot(x, x, ":", color="grey", label="offered")
    ceiling = doc["limit"]["ceiling_tx_s"]
    a.axhline(ceiling, color="red", ls="--", label="every-node-verifies ceiling")
    over = doc["load"].get("overload")
    if over:
        a.plot([over["offered"]], [over["certified_tx_s"]], "x", ms=10, label="past saturation")
    a.set(xlabel="offered tx/s", ylabel="tx/s", title="Throughput (4 nodes)")
    a.legend()
    a = ax[0][1]
    for key, lab in (("latency_s", "certified"), ("l1_latency_s", "L1")):
        a.plot(x, [s[key]["p50"] for s in steps], "o-", label=f"{lab} p50")
        a.plot(x, [s[key]["p99"] for s in steps], "s--", label=f"{lab} p99")
    a.set(xlabel="offered tx/s", ylabel="seconds", yscale="log", title="Submit-to-... latency")
    a.legend()
    a = ax[1][0]
    a.plot(x, [s["cpu_us_per_tx_per_node"] for s in steps], "o-", label="node CPU us/tx")
    a.plot(x, [s["client_cpu_us_per_tx"] for s in steps], "s--", label="load generator us/tx")
    a.axhline(doc["limit"]["one_verify_us"], color="red", ls="--", label="one verification")
    a.set(xlabel="offered tx/s", ylabel="us", yscale="log", title="CPU per certified tx")
    a.legend()
    a = ax[1][1]
    a.plot(x, [s["health_ms"]["p50"] for s in steps], "o-", label="p50")
    a.plot(x, [s["health_ms"]["p99"] for s in steps], "s--", label="p99")
    a.set(xlabel="offered tx/s", ylabel="ms", title="/health latency (event-loop stall)")
    a.legend()
    fig.tight_layout()
    paths = [out_dir / "load.png"]
    fig.savefig(paths[0], dpi=90)
    plt.close(fig)
    paths.append(_scaling_plot(doc, out_dir, plt))
    return paths


def _scaling_plot(doc: dict[str, Any], out_dir: Path, plt: Any) -> Path:
    sc = [s for s in doc["scaling"] if "error" not in s]
    n = [s["nodes"] for s in sc]
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    ax[0].plot(n, [s["above"]["certified_tx_s"] for s in sc], "o-", label="certified tx/s (above)")
    ax[0].plot(n, [s["below"]["certified_tx_s"] for s in sc], "s--", label="certified tx/s (below)")
    ax[0].set(xlabel="nodes", ylabel="tx/s", title="Throughput by network size")
    ax[0].legend()
    ax[1].plot(n, [s["below"]["latency_s"]["p50"] for s in sc], "o-", label="p50 (below)")
    ax[1].plot(n, [s["below"]["latency_s"]["p99"] for s in sc], "s--", label="p99 (below)")
    ax[1].set(xlabel="nodes", ylabel="seconds", title="Submit-to-certified latency")
    ax[1].legend()
    fig.tight_layout()
    path = out_dir / "scaling.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
