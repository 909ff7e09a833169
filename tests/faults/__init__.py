"""Fault harness and scenario runner for real node processes (issue 12).

Test tooling only: nothing here ships with the node. The harness sits outside the system under
test (Jepsen's "nemesis"): TCP proxies on every p2p link and on the L1 link, and signals to the
processes. See docs/reliability.md.
"""
