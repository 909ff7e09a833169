"""Transfer signature checks off the event loop, in worker threads.

A node checks the signature of every transfer it pools or executes: one Ed25519 check, about a
quarter of a loaded node's CPU (docs/benchmarks.md). Done where it was needed (a peer reader's
check of a gossiped batch, the core's pool admission of a client's request), each check holds
the event loop: a batch of 500 transfers is ~40 ms in which no other task runs (``/health``,
votes, the other peers' frames). libsodium releases the GIL while it checks, so the same
work in a worker thread lets the loop go on, and uses a second core when the machine has one.
The node warms gossiped batches and client requests (``POST /v1/txs``): messages whose
every transfer is checked anyway. Blocks and catch-up answers
are not warmed: they are judged first by a signature or a QC, and warming their transactions
before that would let a peer buy thousands of checks with a message the node then refuses.

:class:`SignatureWorkers` only *warms* the memo each transfer object carries
(:func:`~sequencer_node.core.ledger.verify_tx_signature` remembers a good signature on the
object). It decides nothing: the checks that decide (the peer manager's validate hook, the
mempool, block execution) run where they did, and find the good signatures remembered. So
the deterministic core is untouched, and a wrong or missing warm-up costs time, never a
different outcome.

Bounds: at most ``threads`` checks run at once (a :class:`trio.CapacityLimiter`), a warm-up
stops at its first bad signature (failures are not remembered, so the caller's lazy check,
which charges the peer and stops at a ban, checks that one again: a hostile batch costs at
most one check more than before), and batches of fewer than ``min_batch`` transfers are left
to the inline check (a thread hand-off costs about as much as a few checks).

Off by default in the node (``--signature-threads 0``): on this 2-core machine the workers
helped at saturation (1,030 against 906 certified tx/s at 1,200 offered, 8de1edd) but cost
more CPU per transaction and doubled the median latency below it (3 pairs of runs of the
final version: docs/benchmarks.md, tenth part): the GIL hand-offs cost more than the loop
gains. An operator with cores the node does not use can turn them on.

The worker takes the GIL back after each check, and a thread that waits for the GIL loses
to one that releases and retakes it often, which the event loop does at every socket call:
500 checks that take 54 ms alone took 2.7 s beside a thread in a pure Python loop and 36-71 s
beside one that released the GIL every 0.1 ms (docs/benchmarks.md, tenth part). So the
workers check in the loop's idle time, and under a loop busy for good they starve. A warm-up
is therefore waited for at most ``wait_s``: past it the caller goes on, and its own check
does what the worker has not (the worker, told to stop, ends before its next check).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence

import trio

from sequencer_node.core.ledger import verify_tx_signature
from sequencer_node.wire.messages import Transaction

#: Fewer unchecked transfers than this are checked inline: a hand-off to a worker thread and
#: back costs the loop about as much as a few checks.
MIN_BATCH = 8
#: Transfers per hand-off (~20 ms of checks): a large request takes its turns with the
#: gossiped batches instead of holding a worker.
CHUNK = 256
#: Longest wait for a warm-up (a chunk takes ~5-20 ms when the workers get the GIL): past it
#: the caller's inline check does the rest, so a starved worker never holds a peer's stream.
WAIT_S = 0.1


def default_threads() -> int:
    """One worker per core the process may run on (at least one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _check_until_bad(
    txs: Sequence[Transaction], chain_id: int, stop: threading.Event | None = None
) -> tuple[int, bool]:
    """Check ``txs`` in order (each good one is remembered on its object), stopping after
    the first bad one, or once ``stop`` is set (the caller gave up and checks the rest
    itself): (how many were checked, whether one was bad). Runs in a worker thread."""
    for i, tx in enumerate(txs):
        if stop is not None and stop.is_set():
            return i, False
        if not verify_tx_signature(tx, chain_id):
            return i + 1, True
    return len(txs), False


class SignatureWorkers:
    """Checks batches of transfers in worker threads ahead of the checks that decide
    (``threads=0``: off, every check stays inline; None: one thread per core)."""

    def __init__(
        self,
        chain_id: int,
        *,
        threads: int | None = None,
        min_batch: int = MIN_BATCH,
        wait_s: float = WAIT_S,
        on_give_up: Callable[[], None] | None = None,
    ) -> None:
        n = default_threads() if threads is None else threads
        if n < 0:
            raise ValueError(f"signature worker threads must be 0 (off) or more, got {n}")
        if min_batch < 1:
            raise ValueError(f"min_batch must be at least 1, got {min_batch}")
        if wait_s <= 0:
            raise ValueError(f"wait_s must be positive, got {wait_s}")
        self.chain_id = chain_id
        self.threads = n
        self.min_batch = min_batch
        self.wait_s = wait_s
        self._on_give_up = on_give_up
        self._limiter = trio.CapacityLimiter(max(1, n))
        #: Transactions checked in a worker thread (what the loop did not have to check).
        self.checked = 0
        #: Warm-ups that stopped at a bad signature.
        self.stopped_at_bad = 0
        #: Warm-ups given up after ``wait_s`` (their workers starved of the GIL).
        self.gave_up = 0

    async def warm(self, txs: Sequence[Transaction]) -> int:
        """Check the transfers of ``txs`` not yet known good, in a worker thread, if there
        are at least ``min_batch`` of them; return when done or after ``wait_s`` (at once if
        there are fewer), with how many this call checked."""
        if self.threads == 0:
            return 0  # off: every check inline, where it decides
        chain = self.chain_id
        todo = [tx for tx in txs if tx._good_for != chain]
        if len(todo) < self.min_batch:
            return 0
        checked = 0
        stop = threading.Event()
        with trio.move_on_after(self.wait_s) as waited:
            for start in range(0, len(todo), CHUNK):
                # Abandoned on cancel: the thread stops before its next check (``stop``), so
                # it does not check what the caller now checks itself, and gives its slot of
                # the limiter back then.
                done, bad = await trio.to_thread.run_sync(
                    _check_until_bad,
                    todo[start : start + CHUNK],
                    chain,
                    stop,
                    limiter=self._limiter,
                    abandon_on_cancel=True,
                )
                checked += done
                if bad:
                    self.stopped_at_bad += 1
                    break
        if waited.cancelled_caught:
            stop.set()
            self.gave_up += 1
            if self._on_give_up is not None:
                self._on_give_up()
        self.checked += checked
        return checked
