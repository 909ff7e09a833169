"""A Celestia-like data-availability network mock (``da-mock``), beside the mock L1.

Pure modules (no I/O, clock or randomness; time is an input): :mod:`.merkle` (RFC 6962 binary
trees and range proofs), :mod:`.shares` (namespaces, shares, blob layout, share commitments),
:mod:`.nmt` (the namespaced Merkle tree and its inclusion / completeness proofs),
:mod:`.chain` (blocks on a slot clock, pay-for-blob, the fee market, retention),
:mod:`.attest` (Blobstream-style committee attestations and DA pointers) and :mod:`.reader`
(checking a DA node's answer). The shell: :mod:`.genesis` (JSON files), :mod:`.store`
(SQLite), :mod:`.server` (HTTP on hypercorn + starlette), :mod:`.cli`.

The verification half (``merkle``, ``shares``, ``nmt``, ``attest``, ``reader``) imports nothing
from ``l1_mock``, so it can move to ``sequencer_node.wire`` unchanged when the node needs it.
"""
