"""Node-only p2p messages (wire tags 80-127; 64-79 belong to the protocol core).

Handshake messages exist only inside :mod:`sequencer_node.shell.handshake`; after the handshake
a peer that sends one is charged UNEXPECTED_MESSAGE. Ping/Pong are answered by the transport
and never reach the node's core.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from sequencer_node.wire.codec import U64, Bytes, MaxItems, PubKey, Signature, Str, wire_message
from sequencer_node.wire.messages import CertifiedBlock, Transaction

#: Transactions in one ingress batch frame.
MAX_TX_BATCH = 4096
#: Heights one catch-up request may ask for, and blocks one response may carry.
MAX_RANGE_BLOCKS = 256


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


@wire_message(86)
@dataclass(frozen=True, slots=True)
class BlockRangeRequest:
    """Catch-up: certified blocks with ``from_height <= height <= to_height``."""

    request_id: U64
    from_height: U64
    to_height: U64

    def __post_init__(self) -> None:
        if self.from_height > self.to_height:
            raise ValueError("from_height is above to_height")
        if self.to_height - self.from_height >= MAX_RANGE_BLOCKS:
            raise ValueError(f"a range request covers at most {MAX_RANGE_BLOCKS} heights")


@wire_message(87)
@dataclass(frozen=True, slots=True)
class BlockRangeResponse:
    """Certified blocks in height order (possibly fewer than asked: byte budget, or unknown)."""

    request_id: U64
    blocks: Annotated[tuple[CertifiedBlock, ...], MaxItems(MAX_RANGE_BLOCKS)]


HANDSHAKE_MESSAGES = (HandshakeHello, HandshakeAuth, HandshakeAccept)
