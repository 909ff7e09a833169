"""The L1's consensus parameters and genesis: chain ids, slot time, the fork schedule, stake
bounds and periods, the inbox's window, blob retention and pool limits.

The fork schedule names entries of the one blob table, :data:`sequencer_node.wire.blobs.
BLOB_SCHEDULE`; nothing here repeats its numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sequencer_node.wire.blobs import (
    BLOB_SCHEDULE,
    MIN_EPOCHS_FOR_BLOB_SIDECARS_REQUESTS,
    SLOTS_PER_EPOCH,
    BlobParams,
)

TOKEN = 10**18


@dataclass(frozen=True, slots=True)
class ChainConfig:
    chain_id: int = 900
    #: The L2 chain id: certificates from the sequencers are signed for it.
    l2_chain_id: int = 901
    genesis_time: int = 0
    slot_time: int = 2
    #: (first block number, fork name), ascending; the first entry must start at 0.
    forks: tuple[tuple[int, str], ...] = ((0, "bpo2"),)
    base_fee_per_gas: int = 10**9
    min_stake: int = 20_000 * TOKEN
    max_stake: int = 100_000 * TOKEN
    unbonding_epochs: int = 64
    unjail_cooldown_epochs: int = 4
    slash_bps: int = 1_000
    reporter_share_bps: int = 1_000
    #: Metis: 0.000761 token per certified L2 block.
    reward_per_block: int = 761 * 10**12
    #: Forced-inclusion sequencing window in L1 blocks: at least the finality lag plus the
    #: batch latency (:func:`check_sequencing_window`), and the L2 genesis must use the same.
    sequencing_window: int = 100
    blob_retention_epochs: int = 4096
    inbox_first_height: int = 1
    max_pool: int = 4096
    max_pool_blobs: int = 256
    max_txs_per_block: int = 512
    #: The external DA layer (docs/da.md): its chain id, the committee whose attestations
    #: the L1 accepts ((Ed25519 key, stake) pairs, from the DA genesis; empty: no external DA)
    #: and the rollup's namespace there.
    da_chain_id: int = 0
    da_committee: tuple[tuple[bytes, int], ...] = ()
    da_namespace: bytes = b""
    #: Wei per DA fee unit: the rate at which the L1 converts what the DA layer charged an
    #: external-DA batch into the posting cost it reports to the L2 (the L1 fee vault pays
    #: it). A fixed rate stands in for a price oracle; 1 prices the DA token at par with ETH.
    da_fee_wei_per_unit: int = 1
    #: The address that may set the L2 fee model (``setFeeModel``); empty: nobody.
    rollup_owner: bytes = b""

    def fork_at(self, number: int) -> BlobParams:
        name = self.forks[0][1]
        for start, fork in self.forks:
            if number >= start:
                name = fork
        return BLOB_SCHEDULE[name]

    def validate(self) -> None:
        if not self.forks or self.forks[0][0] != 0:
            raise ValueError("the fork schedule must start at block 0")
        for _, fork in self.forks:
            if fork not in BLOB_SCHEDULE:
                raise ValueError(f"unknown fork {fork!r}; known: {', '.join(BLOB_SCHEDULE)}")
        if self.slot_time <= 0:
            raise ValueError("slot time must be positive")
        if not 0 < self.min_stake <= self.max_stake:
            raise ValueError("stake bounds must satisfy 0 < min <= max")
        if len(self.rollup_owner) not in (0, 20):
            raise ValueError("rollup_owner must be a 20-byte address (or empty)")
        check_sequencing_window(self.sequencing_window)


@dataclass(frozen=True, slots=True)
class GenesisSequencer:
    signing_key: bytes
    owner: bytes
    p2p_address: str
    rpc_address: str
    stake: int


@dataclass(frozen=True, slots=True)
class Genesis:
    config: ChainConfig
    balances: tuple[tuple[bytes, int], ...] = ()
    sequencers: tuple[GenesisSequencer, ...] = ()


#: How far this L1's finalized head lags its head at most: a block is final once the head is
#: two epochs past its epoch (``Chain.finalized_epoch``).
FINALITY_LAG_BLOCKS = 2 * SLOTS_PER_EPOCH
#: L1 blocks a batch may take to land after its L2 blocks are committed (the batcher's few
#: seconds of batching plus the blob transaction's inclusion).
BATCH_LATENCY_BLOCKS = 8


def check_sequencing_window(window: int) -> None:
    """Refuse a forced-inclusion window the sequencers cannot meet: they include a forced
    transaction only once its L1 block is final, so its batch lands at the earliest the
    finality lag plus the batch latency after it was queued; a shorter window makes every
    forced transaction stall batch posting (the inbox refuses the batch that skips it)."""
    need = FINALITY_LAG_BLOCKS + BATCH_LATENCY_BLOCKS
    if window < need:
        raise ValueError(
            f"sequencing_window of {window} L1 blocks is below the finality lag (up to "
            f"{FINALITY_LAG_BLOCKS} blocks) plus the batch latency ({BATCH_LATENCY_BLOCKS} "
            f"blocks): every forced transaction would stall batch posting; set "
            f"sequencing_window to at least {need} (and the L2 genesis's to the same)"
        )


def retention_floor_epoch(current_epoch: int, retention_epochs: int) -> int:
    """Oldest epoch whose blobs are still served (inclusive)."""
    return max(current_epoch - retention_epochs, 0)


def check_retention(retention_epochs: int, slot_time: int, fault_proof_window_s: int) -> None:
    """Refuse a retention shorter than the fault-proof window (blobs must outlive disputes)."""
    retained = retention_epochs * SLOTS_PER_EPOCH * slot_time
    if retained < fault_proof_window_s:
        raise ValueError(
            f"blob retention of {retention_epochs} epochs is {retained} s at {slot_time} s "
            f"slots, shorter than the fault-proof window of {fault_proof_window_s} s: batches "
            "could be disputed after their data is gone. Raise --blob-retention-epochs or "
            "lower --fault-proof-window."
        )


def default_retention_epochs(slot_time: int, fault_proof_window_s: int) -> int:
    """Ethereum's 4096 epochs, or more when that is shorter than the fault-proof window."""
    needed = math.ceil(fault_proof_window_s / (SLOTS_PER_EPOCH * slot_time))
    return max(MIN_EPOCHS_FOR_BLOB_SIDECARS_REQUESTS, needed)


__all__ = [
    "BATCH_LATENCY_BLOCKS",
    "FINALITY_LAG_BLOCKS",
    "TOKEN",
    "ChainConfig",
    "Genesis",
    "GenesisSequencer",
    "check_retention",
    "check_sequencing_window",
    "default_retention_epochs",
    "retention_floor_epoch",
]
