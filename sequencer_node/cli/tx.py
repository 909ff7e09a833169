"""``seqctl tx send|estimate|status``: signed L2 transfers through a node's RPC, what they
cost, and their fate.

Amounts and fees are integers in the L2's smallest unit (the ledger's unit; a transaction's
fields are 64-bit). The L2 chain id comes from the node's ``/v1/status`` unless given, the
nonce from ``/v1/account/{address}`` unless given, the fee from the node's ``/v1/fees``
estimate unless given (docs/fees.md: under op-ecotone and arbitrum-l1-pricer the fee is the most
the sender pays; what the base fee and L1 data fee leave goes to the proposer).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import trio

from sequencer_node.cli.common import (
    emit,
    node_url_option,
    open_key,
    password_file_option,
    render_kv,
    short_hex,
)
from sequencer_node.cli.runner import run_async
from sequencer_node.clients.node import (
    NodeAccount,
    NodeClient,
    NodeError,
    NodeRejected,
    NodeTxStatus,
)
from sequencer_node.core.fees import FeeContext, FeeEstimate, FeeParams, estimate_native
from sequencer_node.core.ledger import native_fee_view
from sequencer_node.keystore import KeystoreError, read_public_info
from sequencer_node.system.commandline import fail, json_option
from sequencer_node.system.terminal import Waiting, waiting
from sequencer_node.wire.crypto import SigningKey, parse_address, sign_message
from sequencer_node.wire.hexstr import to_hex
from sequencer_node.wire.messages import Transaction, tx_hash

U64_MAX = (1 << 64) - 1
#: Statuses at or past certification, in order.
CERTIFIED_OR_LATER = ("certified", "batched", "finalized")


def parse_destination(text: str, what: str = "--to") -> bytes:
    """An L2 address: ``0x`` + 40 hex digits, or a keystore file (its address)."""
    try:
        return parse_address(text)
    except ValueError as e:
        path = Path(text)
        if path.is_file():
            try:
                return parse_address(read_public_info(path)["address"])
            except (KeystoreError, ValueError) as e2:
                fail(f"{what} {text}: {e2}")
        fail(f"{what}: {e}, or a keystore file")


def parse_hash(text: str) -> bytes:
    body = text.removeprefix("0x").removeprefix("0X")
    try:
        raw = bytes.fromhex(body)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        fail(f"{text!r} is not a transaction hash (0x + 64 hex digits, as `tx send` prints it)")
    return raw


def make_transfer(
    key: SigningKey, to: bytes, amount: int, nonce: int, fee: int, chain_id: int
) -> Transaction:
    """A signed :class:`Transaction` on L2 chain ``chain_id``."""
    return sign_message(
        Transaction(key.public_key, to, amount, nonce, fee, bytes(64)), key, chain_id
    )


def fee_context_of(doc: dict[str, Any] | None) -> FeeContext | None:
    """The fee context a ``/v1/fees`` document describes (None: flat without fee state, or a
    node without ``/v1/fees``)."""
    if not doc or not doc.get("fee_state"):
        return None
    try:
        return FeeContext(
            FeeParams.from_json(doc["params"]), int(doc["base_fee_per_gas"]),
            int(doc["l1_base_fee"]), int(doc["l1_blob_base_fee"]),
            int(doc["l1_data_price_per_byte"]),
        )  # fmt: skip
    except (KeyError, TypeError, ValueError) as e:
        fail(f"the node's /v1/fees answer is not understood: {e}")


def estimate_transfer(
    ctx: FeeContext | None, sender: bytes, to: bytes, amount: int, nonce: int
) -> FeeEstimate:
    """The fee to send with a transfer: priced on its encoding with the widest fee field (the
    fee changes the bytes, so the L1 data fee is an upper bound)."""
    widest = Transaction(sender, to, amount, nonce, U64_MAX, b"\xff" * 64)
    return estimate_native(ctx, native_fee_view(widest))


async def suggested_fee(url: str, *, per_gas_tip: bool = False, margin: int = 1) -> int:
    """The fee a transfer should carry at the node ``url`` now, times ``margin``: a native
    transfer's total (its estimate for the widest transfer), or with ``per_gas_tip`` an
    Ethereum transaction's priority fee per gas; 1 under flat or from a node without
    ``/v1/fees``."""
    async with NodeClient(url) as node:
        doc = await node.fees()
    if per_gas_tip:
        tip = 1 if doc is None else int(doc.get("suggested_priority_fee_per_gas", 1))
        return max(1, tip) * margin
    est = estimate_transfer(fee_context_of(doc), b"\xff" * 32, b"\xff" * 20, U64_MAX, U64_MAX)
    return min(est.fee * margin, U64_MAX) if est.fee > 1 else est.fee


async def suggested_fee_of_any(
    urls: tuple[str, ...], *, per_gas_tip: bool = False, margin: int = 1
) -> int:
    """:func:`suggested_fee` from the first of ``urls`` that answers; 1 if none does."""
    for url in urls:
        try:
            return await suggested_fee(url, per_gas_tip=per_gas_tip, margin=margin)
        except NodeError:
            continue
    return 1


async def wait_certified(
    node: NodeClient,
    h: bytes,
    *,
    poll: float = 0.1,
    until: tuple[str, ...] = CERTIFIED_OR_LATER,
    shown: Waiting | None = None,
) -> NodeTxStatus:
    """Poll ``/v1/tx`` until the status is one of ``until`` (bound it with a cancel scope);
    ``shown`` displays the status seen so far."""
    while True:
        st = await node.tx_status(h)
        if st.get("status") in until:
            return st
        if shown is not None:
            height = st.get("height")
            shown.update(f"{st.get('status')}" + ("" if height is None else f" at {height}"))
        await trio.sleep(poll)


async def _submit(node: NodeClient, signed: Transaction, h: bytes, nonce_given: bool) -> str:
    """Send ``signed``; its status as the node answers (exit 1 with a hint when refused)."""
    try:
        answer = await node.send_tx(signed)
    except NodeRejected as e:
        hint = ""
        if e.code.startswith("NONCE") and nonce_given:
            hint = " (omit --nonce to use the account's next nonce)"
        elif e.code.startswith("NONCE"):
            hint = " (another transaction from this account took the nonce: send again)"
        elif e.code == "INSUFFICIENT_BALANCE":
            hint = " (see the balance with `seqctl account ADDRESS`)"
        elif e.status == 429:
            hint = " (the node is overloaded: retry in a moment or use another node)"
        fail(f"the node refused the transaction: {e}{hint}")
    if answer.get("tx_hash", to_hex(h)) != to_hex(h):
        fail(
            f"the node reports hash {answer.get('tx_hash')} for a transaction whose "
            f"hash is {to_hex(h)}: is it the same chain and version?"
        )
    return str(answer.get("status", "pending"))


async def _wait_or_fail(node: NodeClient, h: bytes, seconds: float) -> NodeTxStatus:
    st = None
    with waiting(f"waiting for {short_hex(h)} to be certified", seconds) as shown:
        with trio.move_on_after(seconds):
            st = await wait_certified(node, h, shown=shown)
    if st is None:
        fail(
            f"transaction {to_hex(h)} was accepted but not certified within "
            f"{seconds:g} s; follow it with `seqctl tx status {to_hex(h)}`"
        )
    return st


async def pending_nonce(node: NodeClient, address: bytes) -> int:
    """The account's next nonce past its transactions waiting in the node's pool, as Ethereum
    clients use (``nonce`` of the certified state from nodes that do not report it)."""
    account = await node.account(address)
    return int(account.get("pending_nonce", account["nonce"]))


@click.group()
def tx() -> None:
    """Send signed L2 transfers and follow them."""


@tx.command("send")
@click.option(
    "--from",
    "from_",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    envvar="SEQ_ACCOUNT_KEY",
    show_envvar=True,
    help="Keystore of the sending L2 account.",
)
@click.option(
    "--to", required=True, help="Receiving address (0x + 40 hex digits) or a keystore file."
)
@click.option(
    "--amount",
    type=click.IntRange(0, U64_MAX),
    required=True,
    help="Amount in the L2's smallest unit.",
)
@click.option(
    "--fee",
    type=click.IntRange(0, U64_MAX),
    help="The most the transfer pays in fees (smallest unit); default: the node's estimate "
    "(`seqctl tx estimate`; 1 under the flat model).",
)
@click.option(
    "--nonce",
    type=click.IntRange(0, U64_MAX),
    help="Account nonce (default: the next one, past the account's transactions waiting in "
    "the node's pool).",
)
@click.option(
    "--chain-id",
    type=click.IntRange(0, U64_MAX),
    envvar="SEQ_CHAIN_ID",
    show_envvar=True,
    help="L2 chain id the signature is bound to (default: the node's).",
)
@click.option("--wait", is_flag=True, help="Wait until the transaction is certified.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=60.0,
    show_default=True,
    help="Seconds to wait with --wait.",
)
@password_file_option
@node_url_option
@json_option
def tx_send(
    from_: Path,
    to: str,
    amount: int,
    fee: int | None,
    nonce: int | None,
    chain_id: int | None,
    wait: bool,
    timeout: float,
    password_file: Path | None,
    node_url: str,
    as_json: bool,
) -> None:
    """Sign a transfer and submit it to a node; print its hash."""
    dest = parse_destination(to)
    key: SigningKey = open_key(from_, password_file)

    async def go() -> dict[str, Any]:
        async with NodeClient(node_url) as node:
            cid = chain_id if chain_id is not None else int((await node.status())["chain_id"])
            n = nonce if nonce is not None else await pending_nonce(node, key.address)
            paid = fee
            if paid is None:
                ctx = fee_context_of(await node.fees())
                paid = estimate_transfer(ctx, key.public_key, dest, amount, n).fee
            signed = make_transfer(key, dest, amount, n, paid, cid)
            h = tx_hash(signed)
            out: dict[str, Any] = {
                "tx_hash": to_hex(h),
                "status": await _submit(node, signed, h, nonce is not None),
                "from": to_hex(key.address),
                "to": to_hex(dest),
                "amount": amount,
                "fee": paid,
                "nonce": n,
                "chain_id": cid,
            }
            if wait:
                st = await _wait_or_fail(node, h, timeout)
                out.update(status=st["status"], height=st.get("height"))
            return out

    data = run_async(go)
    if as_json:
        emit(data, True)
    else:
        click.echo(data["tx_hash"])
        if wait:
            click.echo(f"{data['status']} at height {data.get('height')}", err=True)


@tx.command("estimate")
@click.option(
    "--from",
    "from_",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar="SEQ_ACCOUNT_KEY",
    show_envvar=True,
    help="Keystore of the sending account (its public part only; default: the widest sender).",
)
@click.option("--to", help="Receiving address or keystore file (default: the widest address).")
@click.option("--amount", type=click.IntRange(0, U64_MAX), default=U64_MAX,
              help="Amount (default: the largest, an upper bound).")  # fmt: skip
@node_url_option
@json_option
def tx_estimate(
    from_: Path | None, to: str | None, amount: int, node_url: str, as_json: bool
) -> None:
    """What a transfer costs now: the L2 base fee, the L1 data fee, a priority fee, and the
    fee `tx send` would put in it (from the node's /v1/fees; with --from, at the account's
    next nonce)."""
    sender, address = b"\xff" * 32, None
    if from_ is not None:
        try:
            info = read_public_info(from_)
            sender = bytes.fromhex(info["public_key"].removeprefix("0x"))
            address = parse_address(info["address"])
        except (KeystoreError, ValueError) as e:
            fail(f"--from {from_}: {e}")
    dest = parse_destination(to) if to is not None else b"\xff" * 20

    async def go() -> dict[str, Any]:
        async with NodeClient(node_url) as node:
            doc = await node.fees()
            # the nonce `tx send` would use (its size is part of the L1 data fee)
            n = U64_MAX if address is None else await pending_nonce(node, address)
        est = estimate_transfer(fee_context_of(doc), sender, dest, amount, n)
        return {
            "model": "flat" if doc is None else doc.get("model", "flat"),
            "base_fee_per_gas": "0" if doc is None else doc.get("base_fee_per_gas", "0"),
            "l1_data_price_per_byte": "0" if doc is None else doc.get("l1_data_price_per_byte"),
            "gas": 21_000,
            "base_fee": str(est.base),
            "l1_data_fee": str(est.l1),
            "priority_fee": str(est.priority),
            "suggested_fee": str(est.fee),
        }

    data = run_async(go)
    emit(data, as_json, render_kv)


@tx.command("status")
@click.argument("tx_hash_hex", metavar="TX_HASH")
@click.option(
    "--wait",
    type=click.Choice(["certified", "batched", "finalized"]),
    help="Wait until the transaction reaches this state.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=60.0,
    show_default=True,
    help="Seconds to wait with --wait.",
)
@node_url_option
@json_option
def tx_status(
    tx_hash_hex: str, wait: str | None, timeout: float, node_url: str, as_json: bool
) -> None:
    """The state of a transaction: pending, certified (height), batched (batch, L1 block),
    finalized, or unknown."""
    h = parse_hash(tx_hash_hex)

    async def go() -> NodeTxStatus:
        async with NodeClient(node_url) as node:
            if wait is None:
                return await node.tx_status(h)
            until = CERTIFIED_OR_LATER[CERTIFIED_OR_LATER.index(wait) :]
            st = None
            with waiting(f"waiting for {short_hex(h)} to be {wait}", timeout) as shown:
                with trio.move_on_after(timeout):
                    st = await wait_certified(node, h, until=until, shown=shown)
            if st is None:
                fail(f"transaction {to_hex(h)} is not {wait} after {timeout:g} s")
            return st

    data = run_async(go)
    emit(data, as_json, lambda d: render_kv({k: "-" if v is None else v for k, v in d.items()}))
    if data.get("status") == "unknown":
        fail(
            f"the node at {node_url} does not know transaction {to_hex(h)} (never received, "
            f"dropped, or another chain); ask another node or send it again"
        )


@click.command("account")
@click.argument("address")
@node_url_option
@json_option
def account(address: str, node_url: str, as_json: bool) -> None:
    """An L2 account's balance and nonce (ADDRESS: 0x + 40 hex digits, or a keystore file):
    from the node's certified state, and the next nonce past its pending transactions."""
    raw = parse_destination(address, "ADDRESS")

    async def go() -> NodeAccount:
        async with NodeClient(node_url) as node:
            return await node.account(raw)

    data = run_async(go)
    human = {
        "address": data.get("address"),
        "balance": data.get("balance"),
        "nonce": data.get("nonce"),
        "next nonce": data.get("pending_nonce", data.get("nonce")),
        "at height": data.get("height"),
    }
    emit(
        data, as_json, lambda _d: render_kv({k: "-" if v is None else v for k, v in human.items()})
    )
