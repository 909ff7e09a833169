"""A small, steady load for the devnet: signed transfers between the funded load accounts.

Used by ``seqctl devnet up`` when the operator's load generator (``seqctl load``) is not
installed. It sends ``rate`` transfers per second round-robin to the nodes' ``POST /v1/tx``,
keeps each account's next nonce locally (re-reading it from ``/v1/account`` after a refusal),
and logs a one-line summary every 10 seconds.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence

import httpx
import trio

from sequencer_node.devnet.setup import load_key
from sequencer_node.wire.codec import encode
from sequencer_node.wire.crypto import SigningKey, sign_message
from sequencer_node.wire.messages import Transaction

log = logging.getLogger("seqnet.devnet.load")


def make_transfer(
    key: SigningKey, to: bytes, amount: int, nonce: int, fee: int, chain_id: int
) -> Transaction:
    tx = Transaction(key.public_key, to, amount, nonce, fee, bytes(64))
    return sign_message(tx, key, chain_id)


async def run_load(
    rpc_urls: Sequence[str], chain_id: int, rate: float, accounts: int, duration: float | None
) -> Counter[str]:
    """Send transfers until cancelled (or ``duration`` seconds); return outcome counts."""
    keys = [load_key(i) for i in range(accounts)]
    nonces: dict[int, int | None] = dict.fromkeys(range(accounts))
    counts: Counter[str] = Counter()
    interval = 1.0 / rate
    async with httpx.AsyncClient(timeout=5.0) as http:

        async def nonce_of(i: int, url: str) -> int | None:
            try:
                r = await http.get(f"{url}/v1/account/0x{keys[i].address.hex()}")
                return int(r.json()["nonce"]) if r.status_code == 200 else None
            except (httpx.HTTPError, ValueError, KeyError, TypeError):
                return None

        async def one(n: int) -> None:
            i = n % accounts
            url = rpc_urls[n % len(rpc_urls)]
            nonce = nonces[i]
            if nonce is None:
                nonce = await nonce_of(i, url)
                if nonce is None:
                    counts["node unavailable"] += 1
                    return
            to = keys[(i + 1) % accounts].address
            tx = make_transfer(keys[i], to, 1, nonce, 1, chain_id)
            nonces[i] = nonce + 1
            try:
                r = await http.post(f"{url}/v1/tx", json={"tx": "0x" + encode(tx).hex()})
            except httpx.HTTPError:
                counts["node unavailable"] += 1
                nonces[i] = None
                return
            if r.status_code == 200:
                counts["accepted"] += 1
                return
            try:
                code = str(r.json()["error"]["code"])
            except (ValueError, KeyError, TypeError):
                code = f"HTTP {r.status_code}"
            counts[code] += 1
            nonces[i] = None

        try:
            await _drive(one, accounts, interval, duration, counts)
        finally:
            log.info("load stopped: outcomes %s", dict(counts))
    return counts


async def _drive(
    one: Callable[[int], Awaitable[None]],
    accounts: int,
    interval: float,
    duration: float | None,
    counts: Counter[str],
) -> None:
    """Start ``one(n)`` every ``interval`` seconds, at most ``accounts`` in flight."""
    with trio.move_on_after(duration if duration is not None else float("inf")):
        async with trio.open_nursery() as nursery:
            n = 0
            start = trio.current_time()
            next_report = start + 10
            while True:
                if len(nursery.child_tasks) >= accounts:
                    # the nodes are slower than the rate: skip this slot (bounded in-flight)
                    counts["skipped (backpressure)"] += 1
                else:
                    nursery.start_soon(one, n)
                n += 1
                await trio.sleep_until(start + n * interval)
                if trio.current_time() >= next_report:
                    next_report += 10
                    log.info("load: sent %d, outcomes %s", n, dict(counts))
