"""Node-only p2p messages (wire tags 80-127; 64-79 belong to the protocol core).

Handshake messages exist only inside :mod:`sequencer_node.shell.handshake`; after the handshake
a peer that sends one is charged UNEXPECTED_MESSAGE. Ping/Pong are answered by the transport
and never reach the node's core. Catch-up uses the core's own ``SyncRequest`` /
``SyncResponse`` (tags 65/66, full blocks), which the transport carries like any other message.
``CompactBlock`` / ``BlockRequest`` are the shell's encoding of a proposed block on the link
(:mod:`sequencer_node.shell.compact`): the core only ever sees full ``Block`` s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from sequencer_node.wire.codec import (
    U64,
    Bytes,
    Hash32,
    MaxItems,
    PubKey,
    Signature,
    Str,
    wire_message,
)
from sequencer_node.wire.messages import MAX_BLOCK_TXS, Block, Transaction

#: Transactions in one ingress batch frame.
MAX_TX_BATCH = 4096
#: Bytes of one pick of a CompactBlock: ``>HH``, the index into ``batches`` (or ``0xFFFF``: the
#: next ``inline`` transaction, position 0) and the position in that batch.
PICK_BYTES = 4


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
class CompactBlock:
    """A proposed block whose client transactions are named by the TxBatch frames that carried
    them (:mod:`sequencer_node.shell.compact`): ``block`` is the Block with ``transactions=()``
    (everything else as signed: header, forced, justify, certificates, Ethereum transactions);
    ``picks`` has one pick per transaction of the block, in block order; ``inline`` are the
    transactions found in no batch the proposer knew. The structure (whole picks, indices in
    range, each batch referred to, one inline pick per inline transaction) is checked by
    :func:`~sequencer_node.shell.compact.check_structure` before relay."""

    block: Block
    batches: Annotated[tuple[Hash32, ...], MaxItems(MAX_BLOCK_TXS)]
    picks: Annotated[bytes, Bytes(0, PICK_BYTES * MAX_BLOCK_TXS)]
    inline: Annotated[tuple[Transaction, ...], MaxItems(MAX_BLOCK_TXS)]


@wire_message(87)
@dataclass(frozen=True, slots=True)
class BlockRequest:
    """Direct request for the full Block with this hash (a CompactBlock named a batch the
    requester does not hold); answered with the Block, or not at all."""

    block_hash: Hash32


HANDSHAKE_MESSAGES = (HandshakeHello, HandshakeAuth, HandshakeAccept)
