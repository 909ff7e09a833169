"""The netns variant: each node in its own network namespace, so the nodes talk real kernel TCP
between "hosts", and faults are made in the kernel instead of in a proxy.

Topology: a bridge in the root namespace (the L1, the harness and the load live there, at
``.254``) and one namespace per node with a veth into the bridge (node ``i`` at ``.1i``, so
at most 10 nodes). The
nodes register their own addresses on L1 and dial each other directly. Faults:

* isolate a node: its veth goes down (packets vanish; TCP retransmits, then times out);
* partition: ``prohibit`` routes in each namespace towards the other side (sends fail at once,
  as a firewall with reject would answer), so no ``iptables`` is needed;
* WAN latency (``tc netem delay``) between the nodes, only where the kernel has ``sch_netem``.

Needs root and ``ip``; :func:`netns_unsupported` says why not when they are missing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import trio

from sequencer_node.devnet.procs import spawn
from sequencer_node.devnet.runner import l1_argv, node_argv
from sequencer_node.devnet.setup import prepare_files, stake_and_genesis, wait_l1
from tests.faults.load import Load
from tests.faults.network import STAKES, FaultNet, Node, _with_values
from tests.faults.scenario import Profile, Report, Scenario


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=10)


def netns_unsupported() -> str | None:
    """Why network namespaces cannot be used here (None: they can)."""
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    if os.geteuid() != 0:
        return "network namespaces need root"
    name = f"sqprobe{os.getpid() % 100000}"
    r = _ip("netns", "add", name, check=False)
    if r.returncode != 0:
        return f"`ip netns add` failed: {r.stderr.strip()}"
    _ip("netns", "del", name, check=False)
    return None


def _random_subnet() -> str:
    """A /24 in 10/8 (a run picks its own, so parallel runs do not collide)."""
    return f"10.{random.randrange(64, 250)}.{random.randrange(1, 250)}"


@dataclass
class Topology:
    """A bridge and one namespace per node; :meth:`down` removes everything it made."""

    n: int
    tag: str = field(default_factory=lambda: f"{random.randrange(16**4):04x}")
    prefix: str = field(default_factory=lambda: _random_subnet())
    netem: bool = False
    #: The FORWARD rule added for the bridge (``iptables -D`` arguments), if one was needed.
    _forward_rule: list[str] = field(default_factory=list)
    _partition_routes: list[tuple[int, str]] = field(default_factory=list)

    @property
    def bridge(self) -> str:
        return f"sqb{self.tag}"

    def ns(self, i: int) -> str:
        return f"sqn{self.tag}{i}"

    def veth(self, i: int) -> str:
        return f"sqv{self.tag}{i}"

    @property
    def host_ip(self) -> str:
        return f"{self.prefix}.254"

    def node_ip(self, i: int) -> str:
        return f"{self.prefix}.1{i}"  # as the devnet's advertise_host "<prefix>.1{i}"

    def up(self) -> None:
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.host_ip}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for i in range(self.n):
            ns, veth = self.ns(i), self.veth(i)
            _ip("netns", "add", ns)
            _ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
            _ip("link", "set", veth, "master", self.bridge, "up")
            _ip("-n", ns, "addr", "add", f"{self.node_ip(i)}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        self._accept_bridged_traffic()
        self.netem = self._try_netem()

    def _accept_bridged_traffic(self) -> None:
        """With br_netfilter loaded (Docker loads it, and sets FORWARD's policy to DROP),
        node-to-node frames on the bridge pass iptables' FORWARD chain: accept ours there, or
        the nodes never reach each other (the tests failed on a machine running dockerd)."""
        calls = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")
        if (
            shutil.which("iptables") is None
            or not calls.exists()
            or calls.read_text().strip() != "1"
        ):
            return
        rule = ["FORWARD", "-i", self.bridge, "-o", self.bridge, "-j", "ACCEPT"]
        r = subprocess.run(["iptables", "-I", *rule], capture_output=True, text=True, check=False)
        if r.returncode == 0:
            self._forward_rule = rule

    def _try_netem(self) -> bool:
        veth = self.veth(0)
        r = subprocess.run(["tc", "qdisc", "add", "dev", veth, "root", "netem", "delay", "1ms"],
                           capture_output=True, text=True, check=False)  # fmt: skip
        if r.returncode != 0:
            return False
        subprocess.run(["tc", "qdisc", "del", "dev", veth, "root"], check=False)
        return True

    def down(self) -> None:
        for i in range(self.n):
            _ip("netns", "del", self.ns(i), check=False)
            _ip("link", "del", self.veth(i), check=False)
        _ip("link", "del", self.bridge, check=False)
        if self._forward_rule:
            subprocess.run(
                ["iptables", "-D", *self._forward_rule], capture_output=True, check=False
            )
            self._forward_rule = []

    # --- faults ------------------------------------------------------------------------------

    def isolate(self, i: int) -> None:
        _ip("link", "set", self.veth(i), "down")

    def rejoin(self, i: int) -> None:
        _ip("link", "set", self.veth(i), "up")

    def partition(self, groups: list[set[int]]) -> None:
        side = {i: g for g, members in enumerate(groups) for i in members}
        for i in range(self.n):
            for j in range(self.n):
                if i != j and side.get(i) != side.get(j):
                    _ip("-n", self.ns(i), "route", "add", "prohibit", f"{self.node_ip(j)}/32")
                    self._partition_routes.append((i, f"{self.node_ip(j)}/32"))

    def heal_partition(self) -> None:
        for i, dest in self._partition_routes:
            _ip("-n", self.ns(i), "route", "del", "prohibit", dest, check=False)
        self._partition_routes.clear()

    def wan_latency(self, ms: int, jitter_ms: int) -> None:
        """Every node's link delays each packet (both ways: ``ms`` per hop, about twice
        between two nodes)."""
        for i in range(self.n):
            subprocess.run(["tc", "qdisc", "add", "dev", self.veth(i), "root", "netem", "delay",
                            f"{ms}ms", f"{jitter_ms}ms"], check=True)  # fmt: skip

    def clear_latency(self) -> None:
        for i in range(self.n):
            subprocess.run(["tc", "qdisc", "del", "dev", self.veth(i), "root"], check=False)


@dataclass
class NetnsNet(FaultNet):
    """:class:`FaultNet` with each node in its own namespace and no proxies."""

    topo: Topology = field(default_factory=lambda: Topology(len(STAKES)))

    def __post_init__(self) -> None:
        super().__post_init__()
        self.cfg = dataclasses.replace(
            self.cfg, host=self.topo.host_ip, advertise_host=self.topo.prefix + ".1{i}"
        )

    def rpc(self, i: int) -> str:
        return f"http://{self.topo.node_ip(i)}:{self.cfg.rpc_port + i}"

    async def start(self, nursery: trio.Nursery) -> None:
        cfg = self.cfg
        self.topo.up()
        keys = prepare_files(cfg)
        # the L1 listens on the bridge, so the harness is not a loopback caller of dev_mine
        argv = [*l1_argv(cfg), "--allow-remote-dev-mine"]
        self.l1 = spawn("l1", argv, cfg.log_file("l1"))
        await wait_l1(cfg.l1_url, 30, self.l1.alive)
        await stake_and_genesis(cfg, keys, self.say)
        for i in range(len(STAKES)):
            ip = self.topo.node_ip(i)
            argv = _with_values(
                node_argv(cfg, i),
                {
                    "--p2p-listen": f"{ip}:{cfg.p2p_port + i}",
                    "--rpc-listen": f"{ip}:{cfg.rpc_port + i}",
                    "--l1-poll": "0.5",
                    "--shutdown-timeout": "5",
                    "--batch-max-age-ms": str(self.timing.batch_max_age_ms),
                },
            )
            self.nodes.append(Node(i, ["ip", "netns", "exec", self.topo.ns(i), *argv],
                                   cfg.log_file(cfg.name(i))))  # fmt: skip
            self.start_node(i)
        self.say(f"started L1 and {len(self.nodes)} nodes in namespaces {self.topo.ns(0)}..")

    def stop_all(self) -> None:
        try:
            super().stop_all()
        finally:
            with contextlib.suppress(Exception):
                self.topo.down()


async def run_netns_scenario(root: Path, profile: Profile, seed: int) -> Report:
    """A short scenario on the namespaces: isolate a node, a {40,10}|{30,20} partition, WAN
    latency where netem exists, then the end checks."""
    net = NetnsNet(root, seed, profile.timing)
    report: Report | None = None
    try:
        async with trio.open_nursery() as nursery:
            await net.start(nursery)
            await net.wait_first_block()
            urls = [net.rpc(i) for i in range(len(STAKES))]
            load = Load(urls, net.cfg.l2_chain_id, rate=profile.load_rate,
                        accounts=profile.load_accounts, seed=seed)  # fmt: skip
            nursery.start_soon(load.run)
            sc = Scenario(net, load, profile, seed)
            report = sc.report
            await _netns_steps(sc, net.topo)
            await sc.end_checks()
            load.stop()
            nursery.cancel_scope.cancel()
    finally:
        net.stop_all()
        await net.http.aclose()
    assert report is not None
    return report


async def _netns_steps(sc: Scenario, topo: Topology) -> None:
    i = sc.minority()
    await sc.step("isolate", f"isolate node-{i} ({STAKES[i]}%)", f"node-{i}'s veth down",
                  lambda: topo.isolate(i), lambda: topo.rejoin(i), expect="progress")  # fmt: skip
    await sc.step("partition", "partition {40,10}|{30,20}", "prohibit routes between the halves",
                  lambda: topo.partition([{0, 3}, {1, 2}]), topo.heal_partition,
                  expect="halt")  # fmt: skip
    if topo.netem:
        await sc.step("wan", "WAN latency", "netem 50±25 ms on every node's link (about "
                      "100 ms between two nodes)", lambda: topo.wan_latency(50, 25),
                      topo.clear_latency, expect="progress")  # fmt: skip
