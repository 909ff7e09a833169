"""JSON views of the chain's records, as the JSON-RPC and Beacon API answer them.

Ethereum-shaped objects (blocks, transactions, receipts) use ``0x`` quantities and data; the
staking and inbox views use decimal strings for amounts (see docs/l1-api.md).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from l1_mock.chain import INBOX_ADDRESS, STAKING_ADDRESS, Chain, L1Block, Sidecar
from l1_mock.chain.blocks import CallReceipt
from l1_mock.chain.feeconfig import FeeRecord
from l1_mock.chain.inbox import AcceptedBatch
from l1_mock.chain.staking import EpochStakeSnapshot, Sequencer
from sequencer_node.wire.blobs import SLOTS_PER_EPOCH
from sequencer_node.wire.codec import encode
from sequencer_node.wire.crypto import address_of
from sequencer_node.wire.da.attest import DataCommitment
from sequencer_node.wire.hexstr import to_hex
from sequencer_node.wire.l1calls import SubmitBatch, decode_params
from sequencer_node.wire.messages import L1Call


def q(n: int) -> str:
    """An Ethereum JSON-RPC quantity."""
    return hex(n)


def block_json(b: L1Block, full: bool) -> dict[str, Any]:
    h = b.header
    txs: list[Any] = [
        tx_json(b, i, call) if full else to_hex(r.tx_hash)
        for i, (call, r) in enumerate(zip(b.calls, b.receipts, strict=True))
    ]
    return {
        "number": q(h.number),
        "hash": to_hex(b.hash),
        "parentHash": to_hex(h.parent_hash),
        "nonce": "0x0000000000000000",
        "sha3Uncles": to_hex(bytes(32)),
        "logsBloom": to_hex(bytes(256)),
        "transactionsRoot": to_hex(h.tx_root),
        "stateRoot": to_hex(bytes(32)),
        "receiptsRoot": to_hex(bytes(32)),
        "miner": to_hex(bytes(20)),
        "difficulty": "0x0",
        "totalDifficulty": "0x0",
        "extraData": "0x",
        "size": q(1000 + 100 * len(b.calls)),
        "gasLimit": q(60_000_000),
        "gasUsed": q(h.gas_used),
        "timestamp": q(h.timestamp),
        "transactions": txs,
        "uncles": [],
        "baseFeePerGas": q(h.base_fee_per_gas),
        "blobGasUsed": q(h.blob_gas_used),
        "excessBlobGas": q(h.excess_blob_gas),
        "mixHash": to_hex(bytes(32)),
        "withdrawals": [],
        "withdrawalsRoot": to_hex(bytes(32)),
        "parentBeaconBlockRoot": to_hex(h.parent_hash),
        # not Ethereum: the slot and fork of this block, for humans
        "slot": q(h.slot),
        "fork": h.fork,
    }


def to_address(call: L1Call) -> bytes:
    """The contract a call is addressed to (or the recipient of a transfer)."""
    if call.method in ("submitBatch", "queueForced"):
        return INBOX_ADDRESS
    if call.method == "transfer":
        return bytes(decode_params(call).to)
    return STAKING_ADDRESS


def call_input(call: L1Call) -> bytes:
    """What ``eth_getTransaction*`` report as ``input``: the canonical encoding of the call.

    A blob batch's blobs, commitments and proofs are left out of it (so its signature no
    longer verifies over these bytes): as on Ethereum, blob bodies are sidecars served by the
    Beacon API, and the block lists their versioned hashes. A calldata batch carries its data
    here, which is where a derivation follower reads it.
    """
    if call.method == "submitBatch":
        p = decode_params(call)
        if isinstance(p, SubmitBatch) and p.blobs:
            stripped = dataclasses.replace(p, blobs=(), commitments=(), proofs=())
            call = dataclasses.replace(call, params=encode(stripped))
    return encode(call)


def tx_json(b: L1Block, i: int, call: L1Call) -> dict[str, Any]:
    r = b.receipts[i]
    hashes = b.blob_hashes[i]
    out: dict[str, Any] = {
        "hash": to_hex(r.tx_hash),
        "blockHash": to_hex(b.hash),
        "blockNumber": q(b.header.number),
        "transactionIndex": q(i),
        "from": to_hex(address_of(call.sender)),
        "to": to_hex(to_address(call)),
        "nonce": q(call.nonce),
        "value": "0x0",
        "gas": q(r.gas_used),
        "gasPrice": q(r.effective_gas_price),
        "maxFeePerGas": q(r.effective_gas_price),
        "maxPriorityFeePerGas": "0x0",
        "input": to_hex(call_input(call)),
        "type": "0x3" if hashes else "0x2",
        "chainId": "0x0",
        "accessList": [],
        "method": call.method,
    }
    if hashes:
        p = decode_params(call)
        out["maxFeePerBlobGas"] = q(p.max_fee_per_blob_gas)
        out["blobVersionedHashes"] = [to_hex(x) for x in hashes]
    return out


def receipt_json(b: L1Block, r: CallReceipt) -> dict[str, Any]:
    call = b.calls[r.index]
    cumulative = sum(x.gas_used for x in b.receipts[: r.index + 1])
    out: dict[str, Any] = {
        "transactionHash": to_hex(r.tx_hash),
        "transactionIndex": q(r.index),
        "blockHash": to_hex(b.hash),
        "blockNumber": q(r.block_number),
        "from": to_hex(address_of(r.sender)),
        "to": to_hex(to_address(call)),
        "cumulativeGasUsed": q(cumulative),
        "gasUsed": q(r.gas_used),
        "effectiveGasPrice": q(r.effective_gas_price),
        "contractAddress": None,
        "logs": [],
        "logsBloom": to_hex(bytes(256)),
        "status": q(r.status),
        "type": "0x3" if r.blob_gas_used else "0x2",
        "method": r.method,
        "reason": r.reason,
    }
    if r.blob_gas_used:
        out["blobGasUsed"] = q(r.blob_gas_used)
        out["blobGasPrice"] = q(r.blob_gas_price)
    return out


def fee_record_json(r: FeeRecord) -> dict[str, Any]:
    return {
        "number": q(r.number),
        "baseFeePerGas": q(r.base_fee),
        "blobBaseFee": q(r.blob_base_fee),
        "batches": [
            {
                "batchNumber": q(b.batch_number),
                "cost": q(b.cost),
                "dataBytes": q(b.data_bytes),
                "l1Cost": q(b.l1_cost),
                "daFee": q(b.da_fee),
            }
            for b in r.batches
        ],
        "feeModel": r.fee_config,
    }


def config_json(chain: Chain) -> dict[str, Any]:
    c = chain.config
    return {
        "chainId": c.chain_id,
        "l2ChainId": c.l2_chain_id,
        "genesisTime": c.genesis_time,
        "slotTime": c.slot_time,
        "slotsPerEpoch": SLOTS_PER_EPOCH,
        "forks": [[n, f] for n, f in c.forks],
        "baseFeePerGas": str(c.base_fee_per_gas),
        "minStake": str(c.min_stake),
        "maxStake": str(c.max_stake),
        "unbondingEpochs": c.unbonding_epochs,
        "unjailCooldownEpochs": c.unjail_cooldown_epochs,
        "slashBps": c.slash_bps,
        "reporterShareBps": c.reporter_share_bps,
        "rewardPerBlock": str(c.reward_per_block),
        "sequencingWindow": c.sequencing_window,
        "blobRetentionEpochs": c.blob_retention_epochs,
        "inboxFirstHeight": c.inbox_first_height,
        "rollupOwner": to_hex(c.rollup_owner) if c.rollup_owner else None,
        "inboxAddress": to_hex(INBOX_ADDRESS),
        "stakingAddress": to_hex(STAKING_ADDRESS),
        "daChainId": c.da_chain_id,
        "daNamespace": to_hex(c.da_namespace),
        "daCommittee": [{"key": to_hex(k), "stake": str(s)} for k, s in c.da_committee],
        "daFeeWeiPerUnit": str(c.da_fee_wei_per_unit),
    }


def status_json(c: Chain) -> dict[str, Any]:
    return {
        "head": c.head.number,
        "headSlot": c.head.slot,
        "epoch": c.current_epoch,
        "finalizedEpoch": c.finalized_epoch(),
        "finalizedBlock": c.finalized_block().number,
        "pool": len(c.pool),
        "blobBaseFee": str(c.current_blob_base_fee()),
        "fork": c.blob_params().fork,
    }


def sequencer_json(s: Sequencer) -> dict[str, Any]:
    return {
        "signingKey": to_hex(s.signing_key),
        "owner": to_hex(s.owner),
        "p2pAddress": s.p2p_address,
        "rpcAddress": s.rpc_address,
        "stake": str(s.stake),
        "unbonding": [[e, str(a)] for e, a in s.unbonding],
        "status": s.status.value,
        "rewards": str(s.rewards),
        "jailedUntilEpoch": s.jailed_until_epoch,
    }


def snapshot_json(snap: EpochStakeSnapshot, finalized: bool) -> dict[str, Any]:
    return {
        "epoch": snap.epoch,
        "seed": to_hex(snap.seed),
        "finalized": finalized,
        "totalStake": str(sum(e.stake for e in snap.entries)),
        "entries": [
            {
                "signingKey": to_hex(e.signing_key),
                "owner": to_hex(e.owner),
                "p2pAddress": e.p2p_address,
                "rpcAddress": e.rpc_address,
                "stake": str(e.stake),
            }
            for e in snap.entries
        ],
    }


def batch_json(b: AcceptedBatch) -> dict[str, Any]:
    return {
        "batchNumber": b.header.batch_number,
        "header": to_hex(encode(b.header)),
        "l1Block": b.l1_block,
        "txHash": to_hex(b.tx_hash),
        "signers": [to_hex(s) for s in b.signers],
        # An extda batch: the DA block's data root tuple the inbox proved its pointer against.
        "daTuple": None if b.da_tuple is None else to_hex(encode(b.da_tuple)),
    }


def data_commitment_json(c: DataCommitment) -> dict[str, Any]:
    return {"nonce": c.nonce, "start": c.start, "end": c.end, "tupleRoot": to_hex(c.tuple_root)}


def sidecar_json(b: L1Block, s: Sidecar) -> dict[str, Any]:
    """A Beacon API blob sidecar; header fields come from the L1 block, the signature and
    inclusion proof are zeros (this L1 has no beacon state)."""
    h = b.header
    return {
        "index": str(s.index),
        "blob": to_hex(s.blob),
        "kzg_commitment": to_hex(s.commitment),
        "kzg_proof": to_hex(s.proof),
        "signed_block_header": {
            "message": {
                "slot": str(h.slot),
                "proposer_index": "0",
                "parent_root": to_hex(h.parent_hash),
                "state_root": to_hex(bytes(32)),
                "body_root": to_hex(b.hash),
            },
            "signature": to_hex(bytes(96)),
        },
        "kzg_commitment_inclusion_proof": [to_hex(bytes(32))] * 17,
    }
