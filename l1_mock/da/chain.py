"""The DA chain's state machine: pay-for-blob submissions, the fee market, blocks on a slot clock
and the retention rule. Pure: no I/O, no clock (a block's time is computed from its height and
the genesis; "now" is an input), no randomness.

* A **pay-for-blob** (:class:`PayForBlob`) posts one blob under a namespace. It is signed with
  Ed25519 by an account holding DA tokens, carries the account's next nonce and the most it will
  pay per gas; signing bytes are domain-separated (``seqnet/da/v1/pfb``) and bound to the DA
  chain id.
* **Gas** is ``PFB_BASE_GAS + GAS_PER_BLOB_BYTE * 512 * shares``: the blob pays for whole shares,
  as on Celestia (8 gas per share byte there too).
* **Fee market**, EIP-1559-shaped: each block has a base fee per gas; the next one moves toward
  the gas target (half the block gas limit) by at most 1/8 per block, never below a floor. The
  whole fee (``gas * base fee`` of the including block) is burnt; there is no tip. A submission
  must bid at least the current base fee and hold ``gas * max fee``; it waits in the pool while
  the base fee is above its bid.
* **Blocks**: one per slot. Block ``h`` has time ``genesis_time + h * slot_time``. Pooled blobs go
  in in arrival order (an account's nonces in order) until the gas limit or the share limit.
* **Retention**: blob data of a block is served while ``head - height < retention_blocks``;
  after that it is gone (headers and data roots stay forever).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sequencer_node.wire.crypto import PUBLIC_KEY_BYTES, SIGNATURE_BYTES, verify
from sequencer_node.wire.da import nmt
from sequencer_node.wire.da.pfb import GAS_PER_BLOB_BYTE as GAS_PER_BLOB_BYTE
from sequencer_node.wire.da.pfb import PFB_BASE_GAS as PFB_BASE_GAS
from sequencer_node.wire.da.pfb import PayForBlob as PayForBlob
from sequencer_node.wire.da.pfb import pfb_gas as pfb_gas
from sequencer_node.wire.da.shares import (
    MAX_BLOB_BYTES,
    ShareError,
    check_user_namespace,
    layout,
    layout_bound,
    shares_needed,
)

HEADER_DOMAIN = b"seqnet/da/v1/header\x00"
BASE_FEE_MAX_CHANGE_DENOMINATOR = 8
ELASTICITY = 2
MAX_POOL = 1_000
TOKEN = 10**18


class Rejected(ValueError):
    """A submission the DA chain refuses; the message says why."""


@dataclass(frozen=True, slots=True)
class DAConfig:
    chain_id: int = 7_000
    genesis_time: int = 0
    slot_time: int = 2
    #: Largest block, in shares of 512 bytes (8192 shares = 4 MiB).
    max_block_shares: int = 8_192
    block_gas_limit: int = 40_000_000
    initial_base_fee: int = 1_000
    min_base_fee: int = 1

    def __post_init__(self) -> None:
        if self.slot_time < 1:
            raise ValueError("slot_time must be at least 1 second")
        if self.max_block_shares < layout_bound([shares_needed(MAX_BLOB_BYTES)]):
            raise ValueError("max_block_shares must hold a blob of the largest size")
        if self.block_gas_limit < pfb_gas(MAX_BLOB_BYTES):
            raise ValueError("block_gas_limit must hold a blob of the largest size")
        if not 1 <= self.min_base_fee <= self.initial_base_fee:
            raise ValueError("need 1 <= min_base_fee <= initial_base_fee")

    @property
    def gas_target(self) -> int:
        return self.block_gas_limit // ELASTICITY

    def block_time(self, height: int) -> int:
        return self.genesis_time + height * self.slot_time


def next_base_fee(base_fee: int, gas_used: int, config: DAConfig) -> int:
    """EIP-1559's update rule with this chain's target and floor."""
    target = config.gas_target
    if gas_used == target:
        new = base_fee
    elif gas_used > target:
        delta = base_fee * (gas_used - target) // target // BASE_FEE_MAX_CHANGE_DENOMINATOR
        new = base_fee + max(delta, 1)
    else:
        new = base_fee - base_fee * (target - gas_used) // target // BASE_FEE_MAX_CHANGE_DENOMINATOR
    return max(new, config.min_base_fee)


def retention_floor(head: int, retention_blocks: int) -> int:
    """The lowest height whose blob data is still served when the head is ``head``."""
    return max(0, head - retention_blocks + 1)


def data_available(height: int, head: int, retention_blocks: int) -> bool:
    return retention_floor(head, retention_blocks) <= height <= head


def retention_blocks_for(seconds: int, slot_time: int) -> int:
    """Blocks covering at least ``seconds`` of wall time."""
    return max(1, -(-seconds // slot_time))


# --- submissions ---------------------------------------------------------------------------


def check_pfb_shape(pfb: PayForBlob, chain_id: int) -> None:
    """Checks that need no chain state: sizes, namespace, bounds, signature."""
    if len(pfb.signer) != PUBLIC_KEY_BYTES or len(pfb.signature) != SIGNATURE_BYTES:
        raise Rejected("signer must be a 32-byte Ed25519 key and signature 64 bytes")
    try:
        check_user_namespace(pfb.namespace)
    except ShareError as e:
        raise Rejected(str(e)) from None
    if not 1 <= len(pfb.data) <= MAX_BLOB_BYTES:
        raise Rejected(f"blob data must hold 1 to {MAX_BLOB_BYTES} bytes, got {len(pfb.data)}")
    if not 0 <= pfb.nonce < 1 << 64:
        raise Rejected("nonce must fit in 64 bits")
    if not 1 <= pfb.max_fee_per_gas < 1 << 128:
        raise Rejected("max fee per gas must be a positive 128-bit integer")
    if not verify(pfb.signer, pfb.signature, pfb.signing_bytes(chain_id)):
        raise Rejected("bad signature (signed over another chain id or other fields?)")


# --- blocks --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DAHeader:
    height: int
    time: int
    parent_hash: bytes
    data_root: bytes  # the NMT root (90 bytes) over the block's shares
    share_count: int
    blob_count: int
    gas_used: int
    base_fee_per_gas: int  # the fee every blob of this block paid per gas

    @property
    def hash(self) -> bytes:
        return hashlib.sha256(
            HEADER_DOMAIN
            + self.height.to_bytes(8, "big")
            + self.time.to_bytes(8, "big")
            + self.parent_hash
            + self.data_root
            + self.share_count.to_bytes(8, "big")
            + self.blob_count.to_bytes(8, "big")
            + self.gas_used.to_bytes(8, "big")
            + self.base_fee_per_gas.to_bytes(16, "big")
        ).digest()


@dataclass(frozen=True, slots=True)
class IncludedBlob:
    tx_hash: bytes
    pfb: PayForBlob
    start: int  # share range in the block
    end: int
    commitment: bytes
    fee: int


@dataclass(frozen=True, slots=True)
class DABlock:
    header: DAHeader
    blobs: tuple[IncludedBlob, ...]


def block_shares(blobs: Sequence[PayForBlob]) -> list[bytes]:
    """The shares of a block holding ``blobs`` in inclusion order (rebuilt to serve proofs)."""
    shares, _ = layout([(b.namespace, b.data) for b in blobs])
    return shares


@dataclass(frozen=True, slots=True)
class DAGenesis:
    config: DAConfig
    balances: tuple[tuple[bytes, int], ...] = ()
    #: The attestation committee: (Ed25519 public key, stake).
    committee: tuple[tuple[bytes, int], ...] = ()


@dataclass
class DAState:
    """What a block changes besides the header list (persisted as one snapshot per block)."""

    balances: dict[bytes, int] = field(default_factory=dict)
    nonces: dict[bytes, int] = field(default_factory=dict)
    base_fee: int = 0
    burnt: int = 0


class DAChain:
    """Headers, accounts, the fee market and the pool of pending pay-for-blobs."""

    def __init__(self, genesis: DAGenesis) -> None:
        self.genesis = genesis
        self.config = genesis.config
        self.state = DAState(dict(genesis.balances), {}, genesis.config.initial_base_fee)
        genesis_header = DAHeader(
            0, self.config.block_time(0), bytes(32), nmt.EMPTY_ROOT, 0, 0, 0, 0
        )
        self.headers: list[DAHeader] = [genesis_header]
        self.pool: dict[bytes, PayForBlob] = {}

    @classmethod
    def restore(
        cls,
        genesis: DAGenesis,
        headers: Sequence[DAHeader],
        state: DAState,
        pool: Iterable[PayForBlob],
    ) -> DAChain:
        """Rebuild from persisted headers, the last state snapshot and the pool."""
        chain = cls(genesis)
        if headers:
            if headers[0] != chain.headers[0]:
                raise ValueError("stored genesis header does not match the genesis")
            for parent, child in itertools.pairwise(headers):
                if child.parent_hash != parent.hash or child.height != parent.height + 1:
                    raise ValueError(f"stored header {child.height} does not extend its parent")
            chain.headers = list(headers)
        chain.state = DAState(dict(state.balances), dict(state.nonces), state.base_fee, state.burnt)
        for pfb in pool:
            with contextlib.suppress(Rejected):  # e.g. a nonce a later block used up
                chain.submit(pfb)
        return chain

    @property
    def head(self) -> DAHeader:
        return self.headers[-1]

    def balance(self, address: bytes) -> int:
        return self.state.balances.get(address, 0)

    def nonce(self, address: bytes) -> int:
        return self.state.nonces.get(address, 0)

    def pending_nonce(self, address: bytes) -> int:
        n = self.nonce(address)
        return n + sum(1 for p in self.pool.values() if p.sender == address)

    def submit(self, pfb: PayForBlob) -> bytes:
        """Check and pool a pay-for-blob; return its hash. Raises :class:`Rejected`."""
        check_pfb_shape(pfb, self.config.chain_id)
        h = pfb.tx_hash(self.config.chain_id)
        if h in self.pool:
            raise Rejected("already pending")
        if len(self.pool) >= MAX_POOL:
            raise Rejected(f"the pool is full ({MAX_POOL} pending blobs); retry later")
        sender = pfb.sender
        expected = self.pending_nonce(sender)
        if pfb.nonce != expected:
            raise Rejected(f"nonce {pfb.nonce} is not the next one ({expected}) of the signer")
        if pfb.max_fee_per_gas < self.state.base_fee:
            raise Rejected(
                f"max fee per gas {pfb.max_fee_per_gas} is below the base fee {self.state.base_fee}"
            )
        committed = sum(p.gas * p.max_fee_per_gas for p in self.pool.values() if p.sender == sender)
        if self.balance(sender) < committed + pfb.gas * pfb.max_fee_per_gas:
            raise Rejected(
                f"balance {self.balance(sender)} cannot cover gas {pfb.gas} at max fee "
                f"{pfb.max_fee_per_gas} (plus {committed} already pending)"
            )
        self.pool[h] = pfb
        return h

    def _select(self) -> list[tuple[bytes, PayForBlob]]:
        fee = self.state.base_fee
        gas = 0
        sizes: list[int] = []
        blocked: set[bytes] = set()
        out: list[tuple[bytes, PayForBlob]] = []
        for h, p in self.pool.items():
            sender = p.sender
            if sender in blocked:
                continue  # an earlier nonce of this account waits
            n = shares_needed(len(p.data))
            fits = (
                gas + p.gas <= self.config.block_gas_limit
                and layout_bound([*sizes, n]) <= self.config.max_block_shares
            )
            if p.max_fee_per_gas < fee or not fits:
                blocked.add(sender)
                continue
            gas += p.gas
            sizes.append(n)
            out.append((h, p))
        return out

    def build_block(self) -> DABlock:
        """The next block from the pool (it may be empty), without applying it: the hashing
        can run in a worker thread while the state stays readable."""
        chosen = self._select()
        fee = self.state.base_fee
        shares, placed = layout([(p.namespace, p.data) for _, p in chosen])
        included = tuple(
            IncludedBlob(
                h,
                p,
                where.start,
                where.end,
                nmt.share_commitment(shares[where.start : where.end]),
                p.gas * fee,
            )
            for (h, p), where in zip(chosen, placed, strict=True)
        )
        parent = self.head
        header = DAHeader(
            parent.height + 1,
            self.config.block_time(parent.height + 1),
            parent.hash,
            nmt.root(shares),
            len(shares),
            len(chosen),
            sum(p.gas for _, p in chosen),
            fee,
        )
        return DABlock(header, included)

    def apply_block(self, block: DABlock) -> None:
        """Apply a block :meth:`build_block` made from the current state and pool."""
        h = block.header
        if h.parent_hash != self.head.hash or h.base_fee_per_gas != self.state.base_fee:
            raise ValueError("the block was not built on the current head and base fee")
        for b in block.blobs:
            sender = b.pfb.sender
            self.state.balances[sender] = self.balance(sender) - b.fee
            self.state.nonces[sender] = b.pfb.nonce + 1
            self.state.burnt += b.fee
            del self.pool[b.tx_hash]
        self.headers.append(h)
        self.state.base_fee = next_base_fee(h.base_fee_per_gas, h.gas_used, self.config)

    def produce_block(self) -> DABlock:
        """Build the next block and apply it."""
        block = self.build_block()
        self.apply_block(block)
        return block

    def due_height(self, now: float) -> int:
        """The height the chain should have reached at wall time ``now``."""
        return max(0, int((now - self.config.genesis_time) // self.config.slot_time))
