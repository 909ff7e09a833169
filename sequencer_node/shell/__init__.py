"""The node's Trio shell: authenticated encrypted p2p transport, gossip, peer scoring and the
SQLite store. Pure pieces (handshake, framing, scoring, gossip bookkeeping) do no I/O; the
Trio pieces (transport, peers) carry them out over streams. See ``docs/node-network.md``.
"""
