"""Async client of the mock L1 (JSON-RPC + Beacon API) for nodes and ``seqctl``.

Every method returns typed values or raises one of three clean errors:

* :class:`L1Unavailable` — the L1 cannot be reached or answered garbage (retry later);
* :class:`L1Rejected` — the L1 answered and refused (``reason`` says why; do not retry as is);
* :class:`BlobsPruned` — the blobs of that block are past the retention window.

The node never imports ``l1_mock``: the wire messages it sends are in
:mod:`sequencer_node.wire.l1calls`.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, Self

import httpx
import trio

from sequencer_node.wire.codec import CodecError, decode, encode
from sequencer_node.wire.crypto import SigningKey
from sequencer_node.wire.da.attest import DataRootTuple
from sequencer_node.wire.hexstr import from_hex, to_hex
from sequencer_node.wire.l1calls import (
    QueueForced,
    ReportDowntime,
    SetFeeModel,
    SubmitBatch,
    SubmitEvidence,
    make_call,
)
from sequencer_node.wire.messages import (
    BatchHeader,
    DowntimeCertificate,
    Evidence,
    ForcedTransaction,
    L1Call,
    Transaction,
)


class L1Error(Exception):
    """Base of the client's errors."""


class L1Unavailable(L1Error):
    """The L1 could not be reached, timed out, or answered something that is not JSON-RPC."""


class L1Rejected(L1Error):
    """The L1 refused the request; ``reason`` is its explanation."""

    def __init__(self, reason: str, code: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class BlobsPruned(L1Error):
    """The requested block's blobs were pruned (retention window passed)."""

    def __init__(self, block_id: str, message: str) -> None:
        super().__init__(f"blobs of block {block_id} are pruned: {message}")
        self.block_id = block_id
        self.message = message


@dataclass(frozen=True, slots=True)
class L1Head:
    number: int
    hash: bytes
    timestamp: int
    slot: int
    base_fee_per_gas: int
    blob_gas_used: int
    excess_blob_gas: int


@dataclass(frozen=True, slots=True)
class L1StakeEntry:
    signing_key: bytes
    owner: bytes
    p2p_address: str
    rpc_address: str
    stake: int


@dataclass(frozen=True, slots=True)
class L1StakeSnapshot:
    epoch: int
    seed: bytes
    finalized: bool
    entries: tuple[L1StakeEntry, ...]

    @property
    def stakes(self) -> dict[bytes, int]:
        return {e.signing_key: e.stake for e in self.entries}


@dataclass(frozen=True, slots=True)
class SequencerInfo:
    signing_key: bytes
    owner: bytes
    p2p_address: str
    rpc_address: str
    stake: int
    status: str
    rewards: int
    unbonding: tuple[tuple[int, int], ...]
    jailed_until_epoch: int


@dataclass(frozen=True, slots=True)
class InboxBatch:
    header: BatchHeader
    l1_block: int
    tx_hash: bytes
    signers: tuple[bytes, ...]
    #: An extda batch: the DA block's data root tuple the inbox proved its pointer against.
    da_tuple: DataRootTuple | None = None


@dataclass(frozen=True, slots=True)
class ForcedQueue:
    length: int
    consumed: int
    entries: tuple[ForcedTransaction, ...]


@dataclass(frozen=True, slots=True)
class L1Receipt:
    tx_hash: bytes
    block_number: int
    status: int
    reason: str
    gas_used: int
    blob_gas_used: int
    blob_gas_price: int


@dataclass(frozen=True, slots=True)
class BlobSidecar:
    index: int
    blob: bytes
    kzg_commitment: bytes
    kzg_proof: bytes


def _b(s: str) -> bytes:
    return from_hex(s)


def _i(s: Any) -> int:
    return int(s, 16) if isinstance(s, str) and s.startswith("0x") else int(s)


def _methods(body: object) -> list[str]:
    """The JSON-RPC method names of a request body (one call or a batch)."""
    calls = body if isinstance(body, list) else [body]
    return [str(c.get("method", "?")) if isinstance(c, dict) else "?" for c in calls]


def _result(answer: dict[str, Any]) -> Any:
    """The result of one JSON-RPC answer, or its error raised as :class:`L1Rejected`."""
    if "error" in answer:
        err = answer["error"] or {}
        raise L1Rejected(str(err.get("message", "unknown error")), int(err.get("code", 0)))
    return answer.get("result")


@dataclass(frozen=True, slots=True)
class L1FeeRecord:
    """One finalized L1 block's L2 fee data, as the L1 serves it (``seq_getL1FeeInfo``)."""

    number: int
    base_fee: int
    blob_base_fee: int
    #: (batch number, posting cost in wei, data bytes) of each batch accepted in the block.
    batches: tuple[tuple[int, int, int], ...]
    #: The owner's fee-model setting made in the block (JSON text), if any.
    fee_model: str | None


def _fee_record(r: dict[str, Any]) -> L1FeeRecord:
    batches = tuple((_i(b["batchNumber"]), _i(b["cost"]), _i(b["dataBytes"])) for b in r["batches"])
    setting = r.get("feeModel")
    return L1FeeRecord(
        _i(r["number"]), _i(r["baseFeePerGas"]), _i(r["blobBaseFee"]), batches,
        setting if isinstance(setting, str) else None,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class L1Poll:
    """What one :meth:`L1Client.poll` read (all in one request)."""

    head: L1Head
    finalized: L1Head
    forced: ForcedQueue
    inbox: list[InboxBatch]
    #: Fee data of finalized blocks (at most up to ``finalized``).
    fees: list[L1FeeRecord]
    #: The fee page was full: more records may follow.
    full_fee_page: bool
    #: The inbox page was full: more batches may follow.
    full_inbox_page: bool = False
    #: The registered sequencers and the blob base fee, when the poll was asked for them
    #: (``registry=True``; None otherwise).
    sequencers: list[SequencerInfo] | None = None
    blob_base_fee: int | None = None


class L1Observer(Protocol):
    """Told of every HTTP exchange with the L1 (the node's metrics: how much a node asks of
    its L1 endpoint, which a hosted RPC provider meters and rate-limits)."""

    def l1_exchange(self, methods: Sequence[str], seconds: float, ok: bool) -> None:
        """One HTTP request carrying the JSON-RPC calls ``methods`` (several for a batch),
        its wall time, and whether it got a usable answer."""


class L1Client:
    """``async with L1Client(url) as l1: await l1.chain_id()``."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 10.0,
        chain_id: int | None = None,
        observer: L1Observer | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.AsyncClient(
            timeout=timeout, limits=httpx.Limits(max_connections=8, max_keepalive_connections=4)
        )
        self._ids = itertools.count(1)
        self._chain_id = chain_id
        self.observer = observer

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def rpc(self, method: str, *params: Any) -> Any:
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)}
        data = await self._post(body)
        if not isinstance(data, dict):
            raise L1Unavailable(f"L1 at {self.url} answered a malformed JSON-RPC response")
        return _result(data)

    async def rpc_batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        """Several calls in ONE HTTP request (a JSON-RPC batch): their results in order.

        An HTTP exchange costs a client about 1.5 ms of CPU (httpx on Trio) whatever it
        carries, and the L1 about as much: a follower that polls five reads a second pays five
        times that in separate requests. Raises as :meth:`rpc` does, for the first call in
        ``calls`` the L1 refused.
        """
        if not calls:
            return []
        ids = [next(self._ids) for _ in calls]
        body = [
            {"jsonrpc": "2.0", "id": i, "method": m, "params": list(p)}
            for i, (m, p) in zip(ids, calls, strict=True)
        ]
        data = await self._post(body)
        answers = (
            {a["id"]: a for a in data if isinstance(a, dict) and "id" in a}
            if isinstance(data, list)
            else {}
        )
        if len(answers) != len(ids) or any(i not in answers for i in ids):
            raise L1Unavailable(
                f"L1 at {self.url} answered a malformed JSON-RPC batch response "
                f"({len(calls)} calls)"
            )
        return [_result(answers[i]) for i in ids]

    async def _post(self, body: object) -> Any:
        if self.observer is None:
            return await self._exchange(body)
        started, ok = time.perf_counter(), False
        try:
            answer = await self._exchange(body)
            ok = True
            return answer
        finally:
            self.observer.l1_exchange(_methods(body), time.perf_counter() - started, ok)

    async def _exchange(self, body: object) -> Any:
        try:
            r = await self._http.post(self.url + "/", json=body)
        except httpx.HTTPError as e:
            raise L1Unavailable(f"L1 at {self.url} unreachable: {type(e).__name__}: {e}") from e
        if r.status_code >= 500:
            raise L1Unavailable(f"L1 at {self.url} answered HTTP {r.status_code}")
        try:
            return r.json()
        except ValueError:
            raise L1Unavailable(
                f"L1 at {self.url} answered non-JSON (HTTP {r.status_code})"
            ) from None

    # --- reads ----------------------------------------------------------------------------

    async def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = _i(await self.rpc("eth_chainId"))
        return self._chain_id

    async def block_number(self) -> int:
        return _i(await self.rpc("eth_blockNumber"))

    async def block(self, tag: str | int = "latest") -> L1Head:
        b = await self.rpc("eth_getBlockByNumber", hex(tag) if isinstance(tag, int) else tag, False)
        return self._head(b, tag)

    @staticmethod
    def _head(b: Any, tag: str | int) -> L1Head:
        if b is None:
            raise L1Rejected(f"no block {tag}")
        try:
            return L1Head(
                _i(b["number"]),
                _b(b["hash"]),
                _i(b["timestamp"]),
                _i(b["slot"]),
                _i(b["baseFeePerGas"]),
                _i(b["blobGasUsed"]),
                _i(b["excessBlobGas"]),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise L1Unavailable(f"L1 sent a malformed block {tag}: {e!r}") from None

    async def poll(
        self,
        *,
        forced_from: int,
        inbox_from: int,
        fee_from: int | None,
        page: int = 100,
        fee_page: int = 256,
        registry: bool = False,
    ) -> L1Poll:
        """The reads a follower makes every poll, in ONE request (see :meth:`rpc_batch`): the
        head, the finalized block, the forced queue from ``forced_from``, inbox batches from
        ``inbox_from`` and, unless ``fee_from`` is None, the fee data of finalized blocks from
        ``fee_from`` (pages of ``page`` / ``fee_page``; a full page means more may follow).
        The L1 answers a batch's calls one after the other, so the finalized block may move
        between two of them: the fee records above the returned finalized block are left out
        (the next poll reads them again). With ``registry``, the registered sequencers and
        the blob base fee too (a follower's slower reads, in the same exchange)."""
        calls: list[tuple[str, Sequence[Any]]] = [
            ("eth_getBlockByNumber", ("latest", False)),
            ("eth_getBlockByNumber", ("finalized", False)),
            ("inbox_getForcedQueue", (forced_from, page)),
            ("inbox_getBatches", (inbox_from, page)),
        ]
        if fee_from is not None:
            calls.append(("seq_getL1FeeInfo", (fee_from, fee_page)))
        if registry:
            calls += [("staking_getSequencers", ()), ("eth_blobBaseFee", ())]
        results = await self.rpc_batch(calls)
        head, fin = self._head(results[0], "latest"), self._head(results[1], "finalized")
        try:
            batches = [self._batch(b) for b in results[3]]
        except (KeyError, TypeError, ValueError) as e:
            raise L1Unavailable(f"L1 sent a malformed inbox batch: {e!r}") from None
        fees = self._fee_rows(results[4]) if fee_from is not None else []
        seqs, blob_fee = self._registry(results[-2], results[-1]) if registry else (None, None)
        return L1Poll(
            head,
            fin,
            self._forced_queue(results[2]),
            batches,
            [r for r in fees if r.number <= fin.number],
            full_fee_page=len(fees) >= fee_page,
            full_inbox_page=len(batches) >= page,
            sequencers=seqs,
            blob_base_fee=blob_fee,
        )

    @classmethod
    def _registry(cls, seqs: Any, blob_fee: Any) -> tuple[list[SequencerInfo], int]:
        try:
            return [cls._seq(s) for s in seqs], _i(blob_fee)
        except (KeyError, TypeError, ValueError) as e:
            raise L1Unavailable(f"L1 sent a malformed sequencer list or blob fee: {e!r}") from None

    async def head(self) -> L1Head:
        return await self.block("latest")

    async def finalized(self) -> L1Head:
        return await self.block("finalized")

    async def blob_base_fee(self) -> int:
        return _i(await self.rpc("eth_blobBaseFee"))

    async def balance(self, address: bytes) -> int:
        return _i(await self.rpc("eth_getBalance", to_hex(address), "latest"))

    async def nonce(self, address: bytes, pending: bool = True) -> int:
        tag = "pending" if pending else "latest"
        return _i(await self.rpc("eth_getTransactionCount", to_hex(address), tag))

    async def config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = await self.rpc("seq_getConfig")
        return cfg

    async def status(self) -> dict[str, Any]:
        st: dict[str, Any] = await self.rpc("seq_status")
        return st

    async def status_and_inbox(
        self, start: int, count: int = 100
    ) -> tuple[dict[str, Any], list[InboxBatch]]:
        """:meth:`status` and :meth:`inbox_batches` in one exchange (see :meth:`rpc_batch`)."""
        st, rows = await self.rpc_batch([("seq_status", ()), ("inbox_getBatches", (start, count))])
        if not isinstance(st, dict) or not isinstance(rows, list):
            raise L1Unavailable(f"L1 at {self.url} answered a malformed status or inbox page")
        try:
            return st, [self._batch(b) for b in rows]
        except (KeyError, TypeError, ValueError) as e:
            raise L1Unavailable(f"L1 sent a malformed inbox batch: {e!r}") from None

    async def stake_snapshot(self, epoch: int) -> L1StakeSnapshot:
        s = await self.rpc("staking_getSnapshot", epoch)
        return L1StakeSnapshot(
            s["epoch"],
            _b(s["seed"]),
            bool(s["finalized"]),
            tuple(
                L1StakeEntry(
                    _b(e["signingKey"]),
                    _b(e["owner"]),
                    e["p2pAddress"],
                    e["rpcAddress"],
                    int(e["stake"]),
                )
                for e in s["entries"]
            ),
        )

    async def sequencers(self) -> list[SequencerInfo]:
        return [self._seq(s) for s in await self.rpc("staking_getSequencers")]

    async def sequencer(self, signing_key: bytes) -> SequencerInfo | None:
        s = await self.rpc("staking_getSequencer", to_hex(signing_key))
        return None if s is None else self._seq(s)

    @staticmethod
    def _seq(s: dict[str, Any]) -> SequencerInfo:
        return SequencerInfo(
            _b(s["signingKey"]),
            _b(s["owner"]),
            s["p2pAddress"],
            s["rpcAddress"],
            int(s["stake"]),
            s["status"],
            int(s["rewards"]),
            tuple((int(e), int(a)) for e, a in s["unbonding"]),
            int(s["jailedUntilEpoch"]),
        )

    async def forced_queue(self, start: int = 0, count: int = 100) -> ForcedQueue:
        return self._forced_queue(await self.rpc("inbox_getForcedQueue", start, count))

    @staticmethod
    def _forced_queue(q: Any) -> ForcedQueue:
        try:
            entries = tuple(decode(_b(e), ForcedTransaction) for e in q["entries"])
            return ForcedQueue(int(q["length"]), int(q["consumed"]), entries)
        except CodecError as e:
            raise L1Unavailable(f"L1 sent an undecodable forced-queue entry: {e}") from None
        except (KeyError, TypeError, ValueError) as e:
            raise L1Unavailable(f"L1 sent a malformed forced queue: {e!r}") from None

    async def inbox_batches(self, start: int = 0, count: int = 100) -> list[InboxBatch]:
        return [self._batch(b) for b in await self.rpc("inbox_getBatches", start, count)]

    async def last_batch(self) -> InboxBatch | None:
        b = await self.rpc("inbox_getLastBatch")
        return None if b is None else self._batch(b)

    @staticmethod
    def _batch(b: dict[str, Any]) -> InboxBatch:
        try:
            header = decode(_b(b["header"]), BatchHeader)
        except CodecError as e:
            raise L1Unavailable(f"L1 sent an undecodable batch header: {e}") from None
        try:
            raw = b.get("daTuple")
            da_tuple = None if raw is None else decode(_b(raw), DataRootTuple)
        except CodecError as e:
            raise L1Unavailable(f"L1 sent an undecodable DA tuple: {e}") from None
        return InboxBatch(
            header,
            int(b["l1Block"]),
            _b(b["txHash"]),
            tuple(_b(s) for s in b["signers"]),
            da_tuple,
        )

    async def l1_fee_info(self, start: int, count: int = 100) -> list[L1FeeRecord]:
        """The L2 fee data of the finalized L1 blocks ``start ..`` (up to ``count``; fewer
        when the range passes the finalized block): base fees, batch costs, the owner's
        fee-model settings (``L1FeeInfo.from_record`` makes the core's value of one)."""
        return self._fee_rows(await self.rpc("seq_getL1FeeInfo", start, count))

    @staticmethod
    def _fee_rows(rows: Any) -> list[L1FeeRecord]:
        try:
            return [_fee_record(r) for r in rows]
        except (KeyError, TypeError, ValueError) as e:
            raise L1Unavailable(f"L1 sent malformed fee info: {e}") from None

    async def set_fee_model(self, fee_params: dict[str, Any], key: SigningKey) -> bytes:
        """The rollup owner's call: set the L2 fee model (in force from a later L2 epoch)."""
        return await self.submit(SetFeeModel(json.dumps(fee_params)), key)

    async def da_next_nonce(self) -> int:
        """The next data commitment nonce the L1's DA bridge takes (how many it holds)."""
        return int((await self.rpc("da_status"))["nextNonce"])

    async def receipt(self, tx_hash: bytes) -> L1Receipt | None:
        return self._receipt(tx_hash, await self.rpc("eth_getTransactionReceipt", to_hex(tx_hash)))

    async def receipt_and_block(
        self, tx_hash: bytes, block_number: int
    ) -> tuple[L1Receipt | None, L1Head | None]:
        """The receipt of ``tx_hash`` and block ``block_number`` in ONE request (a batch's
        cost: the block the inbox says it landed in, and what its transaction paid); None
        for either that the L1 does not have."""
        r, b = await self.rpc_batch(
            [
                ("eth_getTransactionReceipt", (to_hex(tx_hash),)),
                ("eth_getBlockByNumber", (hex(block_number), False)),
            ]
        )
        return self._receipt(tx_hash, r), None if b is None else self._head(b, block_number)

    @staticmethod
    def _receipt(tx_hash: bytes, r: Any) -> L1Receipt | None:
        if r is None:
            return None
        try:
            return L1Receipt(
                tx_hash,
                _i(r["blockNumber"]),
                _i(r["status"]),
                r.get("reason", ""),
                _i(r["gasUsed"]),
                _i(r.get("blobGasUsed", "0x0")),
                _i(r.get("blobGasPrice", "0x0")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise L1Unavailable(f"L1 sent a malformed receipt: {e!r}") from None

    async def wait_receipt(self, tx_hash: bytes, poll: float = 0.25) -> L1Receipt:
        """Poll until the call is in a block (bound it with ``trio.fail_after``)."""
        while True:
            r = await self.receipt(tx_hash)
            if r is not None:
                return r
            await trio.sleep(poll)

    # --- writes ---------------------------------------------------------------------------

    async def send_call(self, call: L1Call) -> bytes:
        """Submit a signed call; return its tx hash (raises L1Rejected with the reason)."""
        return _b(await self.rpc("seq_sendCall", to_hex(encode(call))))

    async def submit(self, params: Any, key: SigningKey, nonce: int | None = None) -> bytes:
        """Sign ``params`` (a :mod:`~sequencer_node.wire.l1calls` message) and submit it."""
        if nonce is None:
            nonce = await self.nonce(key.address, pending=True)
        return await self.send_call(make_call(params, key, nonce, await self.chain_id()))

    async def submit_batch(self, batch: SubmitBatch, key: SigningKey) -> bytes:
        return await self.submit(batch, key)

    async def submit_evidence(self, evidence: Evidence, key: SigningKey) -> bytes:
        return await self.submit(SubmitEvidence.of(evidence), key)

    async def report_downtime(self, cert: DowntimeCertificate, key: SigningKey) -> bytes:
        return await self.submit(ReportDowntime(cert), key)

    async def queue_forced(self, tx: Transaction, key: SigningKey) -> bytes:
        return await self.submit(QueueForced(tx), key)

    async def dev_mine(self, blocks: int = 1) -> int:
        """Mine ``blocks`` blocks now (devnet only); return the new head number."""
        return _i(await self.rpc("dev_mine", blocks))

    # --- Beacon API -----------------------------------------------------------------------

    async def _beacon(self, path: str, block_id: str, query: dict[str, str]) -> Any:
        try:
            r = await self._http.get(f"{self.url}{path}/{block_id}", params=query)
        except httpx.HTTPError as e:
            raise L1Unavailable(f"L1 at {self.url} unreachable: {type(e).__name__}: {e}") from e
        if r.status_code == 200:
            return r.json()["data"]
        try:
            msg = str(r.json().get("message", r.text))
        except ValueError:
            msg = r.text[:200]
        if r.status_code == 404 and "pruned" in msg:
            raise BlobsPruned(block_id, msg)
        if r.status_code >= 500:
            raise L1Unavailable(f"beacon API answered HTTP {r.status_code}: {msg}")
        raise L1Rejected(msg, r.status_code)

    async def blob_sidecars(self, block_id: str | int) -> list[BlobSidecar]:
        data = await self._beacon("/eth/v1/beacon/blob_sidecars", str(block_id), {})
        return [
            BlobSidecar(int(s["index"]), _b(s["blob"]), _b(s["kzg_commitment"]), _b(s["kzg_proof"]))
            for s in data
        ]

    async def blobs(
        self, block_id: str | int, versioned_hashes: list[bytes] | None = None
    ) -> list[bytes]:
        query = {}
        if versioned_hashes:
            query["versioned_hashes"] = ",".join(to_hex(h) for h in versioned_hashes)
        return [_b(x) for x in await self._beacon("/eth/v1/beacon/blobs", str(block_id), query)]


__all__ = [
    "BlobSidecar",
    "BlobsPruned",
    "ForcedQueue",
    "InboxBatch",
    "L1Client",
    "L1Error",
    "L1Head",
    "L1Rejected",
    "L1Unavailable",
    "L1Receipt",
    "SequencerInfo",
    "L1StakeEntry",
    "L1StakeSnapshot",
]
