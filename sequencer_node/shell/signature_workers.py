"""Transfer signature checks off the event loop, in worker threads (Ethereum transactions'
sender recovery too).

A node checks the signature of every transfer it pools or executes: one Ed25519 check, about a
quarter of a loaded node's CPU (docs/benchmarks.md). Done where it was needed (a peer reader's
check of a gossiped batch, the core's pool admission of a client's request), each check holds
the event loop: a batch of 500 transfers is ~40 ms in which no other task runs (``/health``,
votes, the other peers' frames). libsodium releases the GIL while it checks, so the same
work in a worker thread lets the loop go on, and uses a second core when the machine has one.
The node warms gossiped batches and client requests (``POST /v1/txs``, Ethereum JSON-RPC
batches): messages whose every transaction is checked anyway. Blocks and catch-up answers
are not warmed: they are judged first by a signature or a QC, and warming their transactions
before that would let a peer buy thousands of checks with a message the node then refuses.

:class:`SignatureWorkers` only *warms* the memo each transfer object carries
(:func:`~sequencer_node.core.ledger.verify_tx_signature` remembers a good signature on the
object). It decides nothing: the checks that decide (the peer manager's validate hook, the
mempool, block execution) run where they did, and find the good signatures remembered. So
the deterministic core is untouched, and a wrong or missing warm-up costs time, never a
different outcome.

Bounds: at most ``threads`` checks run at once (a :class:`trio.CapacityLimiter`), a warm-up
stops at its first bad signature (the caller's lazy check charges the peer and stops at a ban,
so a hostile batch costs no more checks than before), and batches of fewer than
``min_batch`` transfers are left to the inline check (a thread hand-off costs about as much
as a few checks).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import trio

from sequencer_node.core.ledger import verify_tx_signature
from sequencer_node.wire.eth import EthTxError, decode_eth, is_decoded
from sequencer_node.wire.messages import Transaction

#: Fewer unchecked transfers than this are checked inline: a hand-off to a worker thread and
#: back costs the loop about as much as a few checks.
MIN_BATCH = 8
#: Transfers per hand-off (~20 ms of checks): a catch-up answer of 64 full blocks takes its
#: turns with the gossiped batches instead of holding a worker for seconds.
CHUNK = 256


def default_threads() -> int:
    """One worker per core the process may run on (at least one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _check_until_bad(txs: Sequence[Transaction], chain_id: int) -> tuple[int, bool]:
    """Check ``txs`` in order (each good one is remembered on its object), stopping after
    the first bad one: (how many were checked, whether one was bad). Runs in a worker
    thread."""
    for i, tx in enumerate(txs):
        if not verify_tx_signature(tx, chain_id):
            return i + 1, True
    return len(txs), False


def _decode_until_bad(raws: Sequence[bytes]) -> tuple[int, bool]:
    """Decode ``raws`` (each good one's sender recovered and cached), stopping after the
    first that does not decode: (how many were tried, whether one failed). Runs in a worker
    thread."""
    for i, raw in enumerate(raws):
        try:
            decode_eth(raw)
        except EthTxError:
            return i + 1, True
    return len(raws), False


class SignatureWorkers:
    """Checks batches of transfers in worker threads ahead of the checks that decide."""

    def __init__(
        self, chain_id: int, *, threads: int | None = None, min_batch: int = MIN_BATCH
    ) -> None:
        n = default_threads() if threads is None else threads
        if n < 1:
            raise ValueError(f"signature worker threads must be at least 1, got {n}")
        if min_batch < 1:
            raise ValueError(f"min_batch must be at least 1, got {min_batch}")
        self.chain_id = chain_id
        self.threads = n
        self.min_batch = min_batch
        self._limiter = trio.CapacityLimiter(n)
        #: Transactions checked in a worker thread (what the loop did not have to check).
        self.checked = 0
        #: Warm-ups that stopped at a bad signature.
        self.stopped_at_bad = 0

    async def warm(self, txs: Sequence[Transaction]) -> None:
        """Check the transfers of ``txs`` not yet known good, in a worker thread, if there
        are at least ``min_batch`` of them; return when done (at once otherwise)."""
        chain = self.chain_id
        todo = [tx for tx in txs if tx._good_for != chain]
        if len(todo) < self.min_batch:
            return
        for start in range(0, len(todo), CHUNK):
            # Not abandoned on cancel: the thread finishes its chunk (at most CHUNK checks),
            # then the cancellation is delivered.
            done, bad = await trio.to_thread.run_sync(
                _check_until_bad, todo[start : start + CHUNK], chain, limiter=self._limiter
            )
            self.checked += done
            if bad:
                self.stopped_at_bad += 1
                return

    async def warm_eth(self, raws: Sequence[bytes]) -> None:
        """The same for raw Ethereum transactions: decode them and recover their senders
        (secp256k1, about as costly as an Ed25519 check) into the decode cache
        (:func:`~sequencer_node.wire.eth.decode_eth`) that the RPC, the pool and execution
        read."""
        todo = [raw for raw in raws if not is_decoded(raw)]
        if len(todo) < self.min_batch:
            return
        for start in range(0, len(todo), CHUNK):
            done, bad = await trio.to_thread.run_sync(
                _decode_until_bad, todo[start : start + CHUNK], limiter=self._limiter
            )
            self.checked += done
            if bad:
                self.stopped_at_bad += 1
                return
