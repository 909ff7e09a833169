"""``seqctl stake ...`` and ``seqctl sequencers``: signed staking calls and the stake table.

Every write is an :class:`~sequencer_node.wire.messages.L1Call` signed by an account keystore
(``--from``), submitted to the L1 and, unless ``--no-wait``, followed until a block includes it
(a call that fails in its block exits 1 with the L1's reason). Amounts are typed in tokens
(``20000``) or with a unit (``1.5tokens``, ``300gwei``) and shown in tokens.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import trio

from sequencer_node.cli.common import (
    AmountType,
    amount_gwei,
    emit,
    format_tokens,
    l1_url_option,
    open_key,
    password_file_option,
    render_kv,
    render_table,
)
from sequencer_node.cli.runner import run_async
from sequencer_node.clients.l1 import L1Client, L1Rejected, SequencerInfo
from sequencer_node.keystore import KeystoreError, read_public_info
from sequencer_node.system.commandline import fail, json_option
from sequencer_node.system.hostport import HostPort
from sequencer_node.system.terminal import waiting
from sequencer_node.wire.crypto import SigningKey, format_address, parse_address
from sequencer_node.wire.hexstr import to_hex
from sequencer_node.wire.l1calls import (
    ClaimRewards,
    LockStake,
    RegisterSequencer,
    Unjail,
    UnlockStake,
    WithdrawStake,
)


def parse_public_key(text: str) -> bytes:
    """A sequencer's signing key from 64 hex digits (``0x`` optional) or a keystore file."""
    body = text.removeprefix("0x").removeprefix("0X")
    if len(body) == 64:
        try:
            return bytes.fromhex(body)
        except ValueError:
            pass
    path = Path(text)
    if path.is_file():
        try:
            return bytes.fromhex(read_public_info(path)["public_key"].removeprefix("0x"))
        except (KeystoreError, ValueError) as e:
            fail(f"--sequencer {text}: {e}")
    fail(
        f"--sequencer {text!r} is neither a public key (64 hex digits) nor a keystore file; "
        f"`seqctl sequencers` lists the registered keys"
    )


def sequencer_json(s: SequencerInfo) -> dict[str, Any]:
    return {
        "signing_key": to_hex(s.signing_key),
        "owner": format_address(s.owner),
        "p2p_address": s.p2p_address,
        "rpc_address": s.rpc_address,
        "stake": format_tokens(s.stake),
        "stake_wei": str(s.stake),
        "status": s.status,
        "rewards": format_tokens(s.rewards),
        "rewards_wei": str(s.rewards),
        "unbonding": [
            {"release_epoch": e, "amount": format_tokens(a), "amount_wei": str(a)}
            for e, a in s.unbonding
        ],
        "jailed_until_epoch": s.jailed_until_epoch,
    }


def _unknown(key: bytes, url: str) -> str:
    return (
        f"unknown sequencer {to_hex(key)}: not registered on the L1 at {url}; check the key "
        f"(`seqctl sequencers` lists the registered ones) or register it with "
        f"`seqctl stake register`"
    )


# --- options shared by the write commands --------------------------------------------------


@dataclass(frozen=True, slots=True)
class WriteOptions:
    """The options every signed staking call takes (see :func:`_write_options`)."""

    from_: Path
    sequencer: str | None
    password_file: Path | None
    l1_url: str
    wait: bool
    timeout: float
    as_json: bool


_WRITE_FIELDS = tuple(f.name for f in dataclasses.fields(WriteOptions))


def _write_options(f: Callable[..., None]) -> Callable[..., None]:
    """Add the shared options of a signed call and hand them to ``f`` as one ``opts``."""

    @functools.wraps(f)
    def collect(**kwargs: Any) -> None:
        opts = WriteOptions(**{name: kwargs.pop(name) for name in _WRITE_FIELDS})
        f(opts, **kwargs)

    cmd: Callable[..., None] = collect
    for deco in reversed(
        [
            click.option(
                "--from",
                "from_",
                type=click.Path(exists=True, dir_okay=False, path_type=Path),
                required=True,
                envvar="SEQ_ACCOUNT_KEY",
                show_envvar=True,
                help="Keystore of the L1 account that signs and pays (the sequencer's owner).",
            ),
            click.option(
                "--sequencer",
                envvar="SEQ_SEQUENCER",
                show_envvar=True,
                help="The sequencer's signing key: 64 hex digits or its keystore file "
                "(default: the --from key itself).",
            ),
            password_file_option,
            l1_url_option,
            click.option(
                "--wait/--no-wait",
                default=True,
                show_default=True,
                help="Wait until an L1 block includes the call (else print its hash and return).",
            ),
            click.option(
                "--timeout",
                type=click.FloatRange(min=0.1),
                default=120.0,
                show_default=True,
                envvar="SEQ_TIMEOUT",
                show_envvar=True,
                help="Seconds to wait for the inclusion with --wait.",
            ),
            json_option,
        ]
    ):
        cmd = deco(cmd)
    return cmd


async def submit_and_wait(
    l1: L1Client, params: Any, key: SigningKey, action: str, wait: bool, wait_seconds: float
) -> dict[str, Any]:
    """Sign and submit ``params``; with ``wait``, follow the call until a block includes it.

    Exits 1 when the L1 refuses the call, when its block fails it (with the L1's reason), or
    when it is not included within ``wait_seconds``.
    """
    try:
        tx_hash = await l1.submit(params, key)
    except L1Rejected as e:
        fail(f"the L1 refused the {action}: {e.reason}")
    out: dict[str, Any] = {"tx_hash": to_hex(tx_hash), "state": "submitted"}
    if not wait:
        return out
    receipt = None
    with waiting(f"waiting for an L1 block to include the {action}", wait_seconds):
        with trio.move_on_after(wait_seconds):
            receipt = await l1.wait_receipt(tx_hash, poll=0.05)
    if receipt is None:
        fail(
            f"the {action} {to_hex(tx_hash)} was accepted by the L1 but not included within "
            f"{wait_seconds:g} s; check its receipt later (or raise --timeout)"
        )
    if receipt.status != 1:
        fail(
            f"the {action} {to_hex(tx_hash)} failed in L1 block {receipt.block_number}: "
            f"{receipt.reason or 'no reason given'}"
        )
    out.update(state="included", l1_block=receipt.block_number)
    return out


async def _submit(
    url: str,
    key: SigningKey,
    sequencer: bytes,
    make_params: Callable[[SequencerInfo | None], Any],
    *,
    must_exist: bool,
    wait: bool,
    wait_seconds: float,
    action: str,
) -> dict[str, Any]:
    async with L1Client(url) as l1:
        info = await l1.sequencer(sequencer)
        if must_exist and info is None:
            fail(_unknown(sequencer, url))
        if not must_exist and info is not None:
            fail(
                f"sequencer {to_hex(sequencer)} is already registered (owner "
                f"{format_address(info.owner)}, status {info.status}); use `seqctl stake lock` "
                f"to add stake"
            )
        params = make_params(info)
        out: dict[str, Any] = {
            "action": action,
            "account": format_address(key.address),
            "sequencer": to_hex(sequencer),
        }
        out.update(await submit_and_wait(l1, params, key, action, wait, wait_seconds))
        if not wait:
            return out
        after = await l1.sequencer(sequencer)
        if after is not None:
            out["after"] = sequencer_json(after)
        return out


def _human_result(data: dict[str, Any]) -> str:
    flat = {k: v for k, v in data.items() if k != "after"}
    after = data.get("after")
    if after:
        flat["stake"] = after["stake"]
        flat["status"] = after["status"]
        flat["rewards"] = after["rewards"]
        if after["unbonding"]:
            flat["unbonding"] = ", ".join(
                f"{u['amount']} at epoch {u['release_epoch']}" for u in after["unbonding"]
            )
    return render_kv(flat)


def _run_write(
    action: str,
    opts: WriteOptions,
    make_params: Callable[[SequencerInfo | None, bytes], Any],
    *,
    must_exist: bool = True,
) -> None:
    seq_key = parse_public_key(opts.sequencer) if opts.sequencer else None
    key: SigningKey = open_key(opts.from_, opts.password_file)
    target = seq_key if seq_key is not None else key.public_key
    data = run_async(
        lambda: _submit(
            opts.l1_url,
            key,
            target,
            lambda info: make_params(info, target),
            must_exist=must_exist,
            wait=opts.wait,
            wait_seconds=opts.timeout,
            action=action,
        )
    )
    emit(data, opts.as_json, _human_result)


@click.group()
def stake() -> None:
    """Register sequencers and manage their stake on the L1 (signed calls)."""


@stake.command("register")
@_write_options
@click.option(
    "--stake",
    "amount",
    type=AmountType(),
    required=True,
    help="Stake to lock, in tokens (e.g. 20000) or with a unit (300gwei).",
)
@click.option(
    "--p2p-address",
    required=True,
    envvar="SEQ_P2P_ADDRESS",
    show_envvar=True,
    help="HOST:PORT where the node accepts peer connections (advertised on L1).",
)
@click.option(
    "--rpc-address",
    default="",
    envvar="SEQ_RPC_ADDRESS",
    show_envvar=True,
    help="URL of the node's RPC (advertised on L1; optional).",
)
def stake_register(
    opts: WriteOptions,
    amount: int,
    p2p_address: str,
    rpc_address: str,
) -> None:
    """Register a sequencer owned by the --from account and lock its first stake."""
    try:
        HostPort.parse(p2p_address)
    except ValueError as e:
        fail(f"--p2p-address {e}")
    gwei = amount_gwei(amount, "--stake")
    _run_write(
        "register",
        opts,
        lambda _info, k: RegisterSequencer(k, p2p_address, rpc_address, gwei),
        must_exist=False,
    )


@stake.command("lock")
@_write_options
@click.option(
    "--amount",
    type=AmountType(),
    required=True,
    help="Stake to add, in tokens (e.g. 5000) or with a unit.",
)
def stake_lock(
    opts: WriteOptions,
    amount: int,
) -> None:
    """Add stake to a sequencer (the total must stay within the L1's bounds)."""
    gwei = amount_gwei(amount, "--amount")
    _run_write(
        "lock",
        opts,
        lambda _info, k: LockStake(k, gwei),
    )


@stake.command("unlock")
@_write_options
@click.option(
    "--amount",
    default="all",
    show_default=True,
    help="Stake to start unbonding, in tokens or with a unit, or 'all'.",
)
def stake_unlock(
    opts: WriteOptions,
    amount: str,
) -> None:
    """Start unbonding stake; `stake withdraw` returns it once the unbonding period passed."""
    if amount.strip().lower() == "all":
        gwei = 0
    else:
        wei = AmountType().convert(amount, None, None)
        if wei == 0:
            fail("--amount 0 would unlock everything; say --amount all if that is meant")
        gwei = amount_gwei(wei, "--amount")
    _run_write(
        "unlock",
        opts,
        lambda _info, k: UnlockStake(k, gwei),
    )


@stake.command("withdraw")
@_write_options
def stake_withdraw(opts: WriteOptions) -> None:
    """Return the unbonding entries whose period has passed to the owner's balance."""
    _run_write(
        "withdraw",
        opts,
        lambda _info, k: WithdrawStake(k),
    )


@stake.command("claim")
@_write_options
def stake_claim(opts: WriteOptions) -> None:
    """Move a sequencer's accrued rewards to the owner's balance."""
    _run_write(
        "claim",
        opts,
        lambda _info, k: ClaimRewards(k),
    )


@stake.command("unjail")
@_write_options
def stake_unjail(opts: WriteOptions) -> None:
    """Reactivate a jailed sequencer after its cool-down (stake must be at least the minimum)."""
    _run_write(
        "unjail",
        opts,
        lambda _info, k: Unjail(k),
    )


@stake.command("rewards")
@click.option(
    "--sequencer",
    multiple=True,
    help="Only this sequencer (64 hex digits or its keystore file); repeatable.",
)
@click.option("--owner", help="Only the sequencers owned by this L1 address (0x + 40 hex).")
@l1_url_option
@json_option
def stake_rewards(
    sequencer: tuple[str, ...], owner: str | None, l1_url: str, as_json: bool
) -> None:
    """Accrued (unclaimed) rewards per sequencer. Claim them with `seqctl stake claim`."""
    keys = [parse_public_key(s) for s in sequencer]
    owner_addr = None
    if owner is not None:
        try:
            owner_addr = parse_address(owner)
        except ValueError as e:
            fail(f"--owner: {e}")

    async def go() -> list[SequencerInfo]:
        async with L1Client(l1_url) as l1:
            seqs = await l1.sequencers()
        by_key = {s.signing_key: s for s in seqs}
        for k in keys:
            if k not in by_key:
                fail(_unknown(k, l1_url))
        return [
            s
            for s in seqs
            if (not keys or s.signing_key in keys) and (owner_addr is None or s.owner == owner_addr)
        ]

    seqs = run_async(go)
    rows = [
        {
            "signing_key": to_hex(s.signing_key),
            "owner": format_address(s.owner),
            "status": s.status,
            "rewards": format_tokens(s.rewards),
            "rewards_wei": str(s.rewards),
        }
        for s in seqs
    ]
    total = sum(s.rewards for s in seqs)

    def human(data: dict[str, Any]) -> str:
        table = render_table(
            ["sequencer", "owner", "status", "rewards"],
            [[r["signing_key"], r["owner"], r["status"], r["rewards"]] for r in data["sequencers"]],
        )
        return f"{table}\ntotal {data['total']} tokens"

    emit(
        {"sequencers": rows, "total": format_tokens(total), "total_wei": str(total)}, as_json, human
    )


async def _stake_table(l1_url: str, epoch: int | None) -> dict[str, Any]:
    async with L1Client(l1_url) as l1:
        st = await l1.status()
        current = int(st["epoch"])
        want = current if epoch is None else epoch
        if want > current:
            fail(f"epoch {want} has not started; the L1 is in epoch {current}")
        try:
            snap = await l1.stake_snapshot(want)
        except L1Rejected as e:
            fail(
                f"no stake snapshot for epoch {want}: {e.reason} (the L1 keeps only recent "
                f"epochs; it is in epoch {current})"
            )
        seqs = await l1.sequencers()
    total = sum(e.stake for e in snap.entries)
    in_snap = {e.signing_key: e.stake for e in snap.entries}
    rows = []
    for s in sorted(seqs, key=lambda s: (-in_snap.get(s.signing_key, 0), s.signing_key)):
        snap_stake = in_snap.get(s.signing_key, 0)
        row = sequencer_json(s)
        row["epoch_stake"] = format_tokens(snap_stake)
        row["epoch_stake_wei"] = str(snap_stake)
        row["share"] = round(snap_stake / total, 6) if total else 0.0
        row["in_snapshot"] = s.signing_key in in_snap
        rows.append(row)
    return {
        "epoch": snap.epoch,
        "current_epoch": current,
        "finalized": snap.finalized,
        "seed": to_hex(snap.seed),
        "total_stake": format_tokens(total),
        "total_stake_wei": str(total),
        "sequencers": rows,
    }


def _render_stake_table(data: dict[str, Any]) -> str:
    head = (
        f"epoch {data['epoch']} (current {data['current_epoch']}, "
        f"{'finalized' if data['finalized'] else 'not finalized'}), total stake "
        f"{data['total_stake']} tokens, {len(data['sequencers'])} sequencers"
    )
    table = render_table(
        [
            "signing key",
            "owner",
            "epoch stake",
            "share",
            "status",
            "bonded now",
            "unbonding",
            "rewards",
        ],
        [
            [
                r["signing_key"],
                r["owner"],
                r["epoch_stake"],
                f"{100 * r['share']:.1f}%",
                r["status"],
                r["stake"],
                format_tokens(sum(int(u["amount_wei"]) for u in r["unbonding"])),
                r["rewards"],
            ]
            for r in data["sequencers"]
        ],
    )
    return f"{head}\n{table}"


@click.command("sequencers")
@click.option(
    "--epoch",
    type=click.IntRange(min=0),
    help="L1 epoch of the stake snapshot (default: the current epoch).",
)
@l1_url_option
@json_option
def sequencers(epoch: int | None, l1_url: str, as_json: bool) -> None:
    """The stake table: every sequencer with its stake in an epoch's snapshot, its status
    (active/jailed/slashed/unbonding/withdrawn), bonded stake now and unclaimed rewards."""

    emit(run_async(_stake_table, l1_url, epoch), as_json, _render_stake_table)
