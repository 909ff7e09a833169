"""Node-only p2p messages (wire tags 80-127; 64-79 belong to the protocol core).

Handshake messages exist only inside :mod:`sequencer_node.shell.handshake`; after the handshake
a peer that sends one is charged UNEXPECTED_MESSAGE. Ping/Pong are answered by the transport
and never reach the node's core. Catch-up uses the core's own ``SyncRequest`` /
``SyncResponse`` (tags 65/66), which the transport carries like any other message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from sequencer_node.wire.codec import U64, Bytes, MaxItems, PubKey, Signature, Str, wire_message
from sequencer_node.wire.messages import Transaction

#: Transactions in one ingress batch frame.
MAX_TX_BATCH = 4096


@wire_message(80)
@dataclass(frozen=True, slots=True)
class HandshakeHello:
    """First (plaintext) handshake message of each side: its ephemeral X25519 key."""

    protocol: Annotated[str, Str(32)]
    chain_id: U64
    ephemeral: Annotated[bytes, Bytes(32, 32)]


@wire_message(81)
@dataclass(frozen=True, slots=True)
class HandshakeAuth:
    """Encrypted under the handshake key: the sender's identity and its transcript signature."""

    identity: PubKey
    signature: Signature


@wire_message(82)
@dataclass(frozen=True, slots=True)
class HandshakeAccept:
    """Responder's last message (encrypted with the session key): the initiator is accepted."""

    initiator: PubKey


@wire_message(83)
@dataclass(frozen=True, slots=True)
class Ping:
    nonce: U64


@wire_message(84)
@dataclass(frozen=True, slots=True)
class Pong:
    nonce: U64


@wire_message(85)
@dataclass(frozen=True, slots=True)
class TxBatch:
    """Client transactions collected at ingress for a few ms and gossiped as one frame."""

    transactions: Annotated[tuple[Transaction, ...], MaxItems(MAX_TX_BATCH)]


HANDSHAKE_MESSAGES = (HandshakeHello, HandshakeAuth, HandshakeAccept)
