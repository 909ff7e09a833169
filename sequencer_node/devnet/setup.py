"""Devnet set-up: keys, genesis files, and staking through the operator's own L1 calls.

The sequencers are registered the way an operator registers one: a signed ``registerSequencer``
call (:mod:`sequencer_node.wire.l1calls`) sent with :class:`~sequencer_node.clients.l1.L1Client`.
The L1 records a stake change in the snapshot of the *next* L1 epoch and finalizes snapshot
``E`` once its current epoch is ``E + 2``; :func:`wait_for_snapshot` asks the L1 to mine the
missing blocks at once (``dev_mine``) instead of waiting about three epochs of slots. The L1
genesis time is set that many slots in the past so the L1 clock still matches the wall clock.
The L2 genesis then names that finalized snapshot (its epoch, seed and stakes).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from sequencer_node.clients.l1 import L1Client, L1Error, L1StakeSnapshot
from sequencer_node.core.api import DEFAULT_SEED_LEAD_BLOCKS, MAX_SNAPSHOT_ANCHORS
from sequencer_node.core.epochs import anchor_epochs_needed
from sequencer_node.devnet import extda
from sequencer_node.devnet.accounts import (
    ETH_DEV_FUNDING,
    USER_DEV_ACCOUNT,
    dev_key,
    eth_dev_accounts,
    eth_load_address,
    funded_user_keys,
    load_keys,
)
from sequencer_node.devnet.config import (
    L1_FUNDING_TOKENS,
    L2_FUNDING,
    TOKEN,
    DevnetConfig,
    DevnetError,
    ensure_private_dir,
    stake_tokens,
    write_json,
)
from sequencer_node.keystore import KeystoreError, load_keystore, save_keystore
from sequencer_node.system.files import atomic_write
from sequencer_node.wire.crypto import SigningKey
from sequencer_node.wire.hexstr import to_hex
from sequencer_node.wire.l1calls import GWEI, RegisterSequencer

SLOTS_PER_EPOCH = 32
#: The dev account that owns the rollup on the devnet's L1 (as in the L1's own dev genesis).
ROLLUP_OWNER_DEV_ACCOUNT = 9
#: Devnet keystores protect throw-away keys: a cheaper scrypt keeps start-up fast.
DEVNET_SCRYPT_N = 1 << 14
#: Blocks ``up`` expects to mine while staking (the L1 genesis time is back-dated by as many slots).
EXPECTED_MINED_BLOCKS = 3 * SLOTS_PER_EPOCH

Say = Callable[[str], None]


def create_keys(cfg: DevnetConfig) -> list[SigningKey]:
    """Create (or re-open) one keystore per sequencer and the shared devnet password file."""
    ensure_private_dir(cfg.keys_dir)
    if cfg.password_file.exists():
        password = cfg.password_file.read_text().splitlines()[0]
    else:
        password = secrets.token_hex(16)
        atomic_write(cfg.password_file, (password + "\n").encode(), mode=0o600, overwrite=False)
    keys: list[SigningKey] = []
    for i in range(cfg.nodes):
        path = cfg.key_file(i)
        if path.exists():
            try:
                keys.append(load_keystore(path, password))
            except KeystoreError as e:
                raise DevnetError(f"{e}; remove {cfg.directory} to start a fresh devnet") from None
            continue
        key = SigningKey.generate()
        save_keystore(
            path, key, password, description=f"devnet {cfg.name(i)}", scrypt_n=DEVNET_SCRYPT_N
        )
        keys.append(key)
    if not cfg.user_key_file.exists():
        save_keystore(
            cfg.user_key_file,
            dev_key(USER_DEV_ACCOUNT),
            password,
            description=f"devnet funded user account (dev account {USER_DEV_ACCOUNT})",
            scrypt_n=DEVNET_SCRYPT_N,
        )
    return keys


def user_account_lines(cfg: DevnetConfig) -> list[str]:
    """How to send an L2 transaction from the devnet's funded user account."""
    address = to_hex(dev_key(USER_DEV_ACCOUNT).address)
    return [
        f"funded L2 account {address}: keystore {cfg.user_key_file}, password file "
        f"{cfg.password_file}",
        f"  seqctl tx send --from {cfg.user_key_file} --password-file {cfg.password_file} "
        f"--node-url {cfg.rpc_url(0)} --to 0x{'00' * 19}01 --amount 1",
    ]


def funded_accounts(cfg: DevnetConfig, keys: list[SigningKey]) -> list[SigningKey]:
    return [*keys, *funded_user_keys()]


def l1_funded(cfg: DevnetConfig, keys: list[SigningKey]) -> list[SigningKey]:
    """The L1 accounts the genesis funds (with extda, also the DA relayer)."""
    out = funded_accounts(cfg, keys)
    return [*out, extda.relayer_key(cfg)] if cfg.da == "extda" else out


def l1_genesis_json(cfg: DevnetConfig, keys: list[SigningKey], now: float) -> dict[str, Any]:
    back = EXPECTED_MINED_BLOCKS * cfg.slot_time
    genesis_time = int(now) - back
    genesis_time -= genesis_time % cfg.slot_time
    return {
        "config": {
            "chain_id": cfg.l1_chain_id,
            "l2_chain_id": cfg.l2_chain_id,
            "genesis_time": genesis_time,
            "slot_time": cfg.slot_time,
            "forks": [[0, cfg.fork]],
            "sequencing_window": cfg.sequencing_window,
            # dev account 9 may set the L2 fee model (seqctl fees set-model, docs/fees.md)
            "rollup_owner": to_hex(dev_key(ROLLUP_OWNER_DEV_ACCOUNT).address),
            **(extda.l1_genesis_config(cfg) if cfg.da == "extda" else {}),
        },
        "balances": {
            to_hex(k.address): str(L1_FUNDING_TOKENS * TOKEN) for k in l1_funded(cfg, keys)
        },
        "sequencers": [],
    }


def write_l1_genesis(cfg: DevnetConfig, keys: list[SigningKey]) -> None:
    if not cfg.l1_genesis.exists():
        write_json(cfg.l1_genesis, l1_genesis_json(cfg, keys, time.time()))


def prepare_files(cfg: DevnetConfig) -> list[SigningKey]:
    """Keys, password and L1 genesis (what must exist before the L1 starts)."""
    cfg.directory.mkdir(parents=True, exist_ok=True)
    cfg.logs_dir.mkdir(exist_ok=True)
    cfg.save()
    keys = create_keys(cfg)
    if cfg.da == "extda":
        extda.write_da_genesis(cfg, keys)
    write_l1_genesis(cfg, keys)
    return keys


async def wait_l1(url: str, deadline_s: float, alive: Callable[[], bool] = lambda: True) -> int:
    """Wait until the L1 answers JSON-RPC; return its chain id."""
    async with L1Client(url, timeout=2.0) as l1:
        with trio.move_on_after(deadline_s):
            while True:
                if not alive():
                    raise DevnetError("the L1 mock exited while starting")
                try:
                    return await l1.chain_id()
                except L1Error:
                    await trio.sleep(0.2)
    raise DevnetError(f"the L1 at {url} did not answer within {deadline_s:.0f}s")


async def register_sequencers(cfg: DevnetConfig, keys: list[SigningKey], say: Say) -> int:
    """Register and stake every sequencer not yet registered; return the highest L1 block
    that included a registration (or the current head when nothing had to be done)."""
    stakes = stake_tokens(cfg.stakes)
    async with L1Client(cfg.l1_url) as l1:
        sent: list[tuple[int, bytes]] = []
        for i, key in enumerate(keys):
            existing = await l1.sequencer(key.public_key)
            if existing is not None:
                continue
            params = RegisterSequencer(
                signing_key=key.public_key,
                p2p_address=cfg.p2p_address(i),
                rpc_address=cfg.advertised_rpc(i),
                stake_gwei=stakes[i] * GWEI,
            )
            try:
                tx = await l1.submit(params, key)
            except L1Error as e:
                raise DevnetError(f"registering {cfg.name(i)} on the L1 failed: {e}") from None
            say(f"registered {cfg.name(i)} with {stakes[i]:,} tokens staked (tx 0x{tx.hex()[:12]})")
            sent.append((i, tx))
        last = (await l1.head()).number
        for i, tx in sent:
            try:
                with trio.fail_after(10 * cfg.slot_time + 10):
                    receipt = await l1.wait_receipt(tx)
            except trio.TooSlowError:
                raise DevnetError(f"{cfg.name(i)}'s registration was not mined in time") from None
            if receipt.status != 1:
                raise DevnetError(f"{cfg.name(i)}'s registration failed on L1: {receipt.reason}")
            last = max(last, receipt.block_number)
        return last


async def wait_for_snapshot(
    cfg: DevnetConfig, keys: list[SigningKey], registered_at: int, say: Say
) -> L1StakeSnapshot:
    """Mine until the snapshot holding every sequencer is finalized; return it."""
    epoch = registered_at // SLOTS_PER_EPOCH + 1
    need_head = (epoch + 2) * SLOTS_PER_EPOCH
    async with L1Client(cfg.l1_url) as l1:
        head = await l1.block_number()
        if head < need_head:
            say(
                f"mining {need_head - head} L1 blocks (dev_mine) so that stake snapshot "
                f"{epoch} is finalized"
            )
            await l1.dev_mine(need_head - head)
        with trio.fail_after(30):
            while True:
                try:
                    snap = await l1.stake_snapshot(epoch)
                except L1Error:
                    snap = None
                if snap is not None and snap.finalized:
                    break
                await l1.dev_mine(1)
    want = {k.public_key for k in keys}
    if set(snap.stakes) != want:
        raise DevnetError(
            f"L1 stake snapshot {epoch} has {len(snap.entries)} sequencers, expected the "
            f"{len(keys)} devnet sequencers; the L1 data in {cfg.l1_data} belongs to another "
            f"devnet: remove {cfg.directory} and run again"
        )
    return snap


def l2_genesis_json(
    cfg: DevnetConfig, keys: list[SigningKey], snap: L1StakeSnapshot, now_ms: int
) -> dict[str, Any]:
    accounts = funded_user_keys()
    return {
        "chain_id": cfg.l2_chain_id,
        "l1_chain_id": cfg.l1_chain_id,
        "timestamp_ms": now_ms,
        "stake_epoch": snap.epoch,
        "seed": to_hex(snap.seed),
        "validators": [
            {"public_key": to_hex(e.signing_key), "stake": str(e.stake)} for e in snap.entries
        ],
        "balances": {
            **{to_hex(k.address): str(L2_FUNDING) for k in accounts},
            # The Ethereum dev accounts wallets know (anvil's and Hardhat's), and the Ethereum
            # twins of the load accounts (seqctl load --kind eth).
            **{a.address.lower(): str(ETH_DEV_FUNDING) for a in eth_dev_accounts()},
            **{to_hex(eth_load_address(k)): str(ETH_DEV_FUNDING) for k in load_keys()},
        },
        "params": {
            "block_time_ms": cfg.block_time_ms,
            "timeout_base_ms": cfg.timeout_base_ms,
            "epoch_length": cfg.epoch_length,
            "sequencing_window": cfg.sequencing_window,
            "seed_anchor_epochs": seed_anchor_epochs(cfg),
            **({"idle_block_ms": cfg.idle_block_ms} if cfg.idle_block_ms else {}),
        },
        **({} if cfg.fee_model == "none" else {"fees": {"model": cfg.fee_model}}),
    }


def seed_anchor_epochs(cfg: DevnetConfig) -> int:
    """How many L2 epochs back an epoch's anchor lies, so that the stake snapshot it names is
    finalized on the L1 mock (finality up to 2 L1 epochs) before the epoch starts."""
    need = anchor_epochs_needed(
        epoch_ms=cfg.epoch_length * cfg.block_time_ms, l1_slot_ms=cfg.slot_time * 1000,
        seed_lead_blocks=DEFAULT_SEED_LEAD_BLOCKS, slots=SLOTS_PER_EPOCH,
        finality_blocks=2 * SLOTS_PER_EPOCH,
    )  # fmt: skip
    if need >= MAX_SNAPSHOT_ANCHORS:
        raise DevnetError(
            f"--epoch-length {cfg.epoch_length} at {cfg.block_time_ms} ms per block is too "
            f"short for {cfg.slot_time} s L1 slots: the next stake snapshot needs {need} L2 "
            f"epochs to be finalized (at most {MAX_SNAPSHOT_ANCHORS - 1}); raise --epoch-length"
        )
    return max(2, need)


def write_l2_genesis(cfg: DevnetConfig, data: dict[str, Any]) -> None:
    """Write the L2 genesis through the node's own genesis module when it is available, so a
    file the node would refuse is caught here."""
    try:
        from sequencer_node import genesis as node_genesis
    except ImportError:
        node_genesis = None  # type: ignore[assignment,unused-ignore]
    write_json(cfg.l2_genesis, data)
    if node_genesis is not None:
        try:
            parsed = node_genesis.load_genesis(cfg.l2_genesis)
            node_genesis.write_genesis(cfg.l2_genesis, parsed)
        except Exception as e:
            raise DevnetError(f"the node refuses the devnet's L2 genesis: {e}") from None


async def stake_and_genesis(cfg: DevnetConfig, keys: list[SigningKey], say: Say) -> None:
    """Register the sequencers, wait for their snapshot, write the L2 genesis (idempotent)."""
    if cfg.l2_genesis.exists():
        return
    registered_at = await register_sequencers(cfg, keys, say)
    snap = await wait_for_snapshot(cfg, keys, registered_at, say)
    write_l2_genesis(cfg, l2_genesis_json(cfg, keys, snap, int(time.time() * 1000)))
    say(f"L2 genesis written to {cfg.l2_genesis} (stake snapshot {snap.epoch})")


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())
