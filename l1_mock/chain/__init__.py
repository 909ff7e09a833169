"""The pure L1 chain: no I/O, no clock; slots and timestamps are inputs, so the same inputs
always give the same chain.

Modules, one job each: :mod:`.config` (parameters and genesis), :mod:`.fees` (EIP-4844 fee
market and calldata pricing), :mod:`.accounts` (balances, nonces, transfers), :mod:`.staking`
(the staking contract and stake snapshots), :mod:`.inbox` (batch inbox and forced queue),
:mod:`.pool` (pending calls and block selection), :mod:`.blocks` (blocks, receipts, sidecars),
:mod:`.machine` (:class:`Chain`, which ties them together).
"""

from l1_mock.chain.blocks import BlockHeader, CallReceipt, L1Block, Sidecar
from l1_mock.chain.config import (
    TOKEN,
    ChainConfig,
    Genesis,
    GenesisSequencer,
    check_retention,
    retention_floor_epoch,
)
from l1_mock.chain.errors import CallFailed, CallRejected
from l1_mock.chain.machine import CALL_EXECUTION_GAS, INBOX_ADDRESS, STAKING_ADDRESS, Chain

__all__ = [
    "CALL_EXECUTION_GAS",
    "INBOX_ADDRESS",
    "STAKING_ADDRESS",
    "TOKEN",
    "BlockHeader",
    "CallFailed",
    "CallReceipt",
    "CallRejected",
    "Chain",
    "ChainConfig",
    "Genesis",
    "GenesisSequencer",
    "L1Block",
    "Sidecar",
    "check_retention",
    "retention_floor_epoch",
]
