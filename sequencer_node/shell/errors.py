"""Errors of the p2p layer, h11-style: a *remote* protocol error means the peer misbehaved.

A :class:`RemoteProtocolError` closes (and scores) that one peer and never the node. It names
the :class:`~sequencer_node.shell.scoring.Offense` so the peer manager can charge the sender.
"""

from __future__ import annotations

from sequencer_node.shell.scoring import Offense


class ProtocolError(Exception):
    """Base class of p2p protocol errors."""


class LocalProtocolError(ProtocolError):
    """We tried to do something the protocol forbids (a bug or a bad local configuration)."""


class RemoteProtocolError(ProtocolError):
    """The peer broke the protocol; ``offense`` says how, for peer scoring."""

    def __init__(self, message: str, offense: Offense) -> None:
        super().__init__(message)
        self.offense = offense


class HandshakeError(RemoteProtocolError):
    """The handshake failed: wrong chain, bad signature, identity not allowed, timeout."""

    def __init__(self, message: str, offense: Offense = Offense.HANDSHAKE) -> None:
        super().__init__(message, offense)


class ConnectionClosed(Exception):
    """The peer closed the connection cleanly at a frame boundary."""
