"""The DA mock's Trio shell: block production on a timer, SQLite persistence and the HTTP API
(JSON over hypercorn + starlette), in the style of :mod:`l1_mock.server`.

One :class:`DANode` owns the pure :class:`~l1_mock.da.chain.DAChain`. Every mutation (a blob
accepted, a block produced) happens under one lock together with its SQLite write. Proofs are
computed on request from the stored blobs (the block's shares are rebuilt from them, and the
result is checked against the header's data root), off the event loop.

API (every error is ``{"code": <http status>, "message": "..."}``):

* ``POST /v1/blobs``: submit a signed pay-for-blob; ``GET /v1/fees``; ``GET /v1/status``;
  ``GET /v1/accounts/{0xaddress}``;
* ``GET /v1/headers/{height|head}``; ``GET /v1/blocks/{height}/blobs`` (what a block holds);
* ``GET /v1/blobs/{height}/{0xnamespace}``: every blob of the namespace in that block with the
  namespace proof (inclusion + completeness, or absence); 404 once pruned;
* ``GET /v1/attestations/{nonce|latest}``: a data commitment over ``attestation_window``
  blocks, signed by the committee keys this process holds (it plays the orchestrators);
* ``GET /v1/pointers/{height}/{index}``: the DA pointer of a block's blob and its proof against
  its attestation, what a batcher hands the L1;
* ``POST /v1/dev/produce?count=N`` (only with ``dev_endpoints``): make blocks now.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from l1_mock.da import genesis as genesis_mod
from l1_mock.da.chain import (
    GAS_PER_BLOB_BYTE,
    PFB_BASE_GAS,
    DABlock,
    DAChain,
    DAGenesis,
    DAHeader,
    PayForBlob,
    Rejected,
    block_shares,
    data_available,
    retention_floor,
)
from l1_mock.da.relay import RelaySettings, run_relayer
from l1_mock.da.store import Store, StoredBlob, decode_state
from sequencer_node.system.signals import run_until_signal
from sequencer_node.wire.crypto import (
    ADDRESS_BYTES,
    PUBLIC_KEY_BYTES,
    SIGNATURE_BYTES,
    SigningKey,
)
from sequencer_node.wire.da import attest, nmt
from sequencer_node.wire.da.shares import (
    MAX_BLOB_BYTES,
    NAMESPACE_BYTES,
    SHARE_BYTES,
    blob_shares,
)

log = logging.getLogger("l1_mock.da")

#: A 1 MiB blob hex-encoded, plus the other fields and JSON framing.
MAX_BODY = 2 * MAX_BLOB_BYTES + 8 * 1024
MAX_DEV_PRODUCE = 1_000
_DIGITS = re.compile(r"[0-9]{1,19}")
_HEX = re.compile(r"0x[0-9a-fA-F]*")


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def parse_height(text: str) -> int:
    """A height in a path: ASCII digits only, at most 19 of them."""
    if not _DIGITS.fullmatch(text):
        raise BadRequest(400, f"invalid height {text!r}: use 1 to 19 ASCII digits (or head)")
    return int(text)


def parse_hex(value: Any, what: str, length: int | None = None, max_len: int = 0) -> bytes:
    if not isinstance(value, str) or not _HEX.fullmatch(value) or len(value) % 2:
        raise BadRequest(400, f"{what} must be 0x followed by an even number of hex digits")
    raw = bytes.fromhex(value[2:])
    if length is not None and len(raw) != length:
        raise BadRequest(400, f"{what} must be {length} bytes, got {len(raw)}")
    if max_len and len(raw) > max_len:
        raise BadRequest(400, f"{what} must be at most {max_len} bytes, got {len(raw)}")
    return raw


def parse_uint(value: Any, what: str, bits: int) -> int:
    """A JSON integer or a decimal string of ASCII digits, below ``2**bits``."""
    if isinstance(value, int) and not isinstance(value, bool):
        n = value
    elif isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 40:
        n = int(value)
    else:
        raise BadRequest(400, f"{what} must be a non-negative integer or a decimal string")
    if not 0 <= n < 1 << bits:
        raise BadRequest(400, f"{what} must be in [0, 2**{bits})")
    return n


def d(b: bytes) -> str:
    return "0x" + b.hex()


@dataclass(frozen=True, slots=True)
class DASettings:
    data_dir: Path
    retention_blocks: int
    auto_produce: bool = True
    dev_endpoints: bool = False
    #: DA blocks per attestation (0: no attestations are served).
    attestation_window: int = 10
    #: Committee keys this process signs attestations with (the mock plays the orchestrators).
    committee_keys: tuple[SigningKey, ...] = ()
    #: Relay attestations to this L1 (JSON-RPC URL) with ``relay_key``'s account
    #: (:mod:`l1_mock.da.relay`); None: no relayer in this process.
    relay_l1_url: str | None = None
    relay_key: SigningKey | None = None


class DANode:
    """The running DA chain: chain + store + lock. Create with :meth:`open`."""

    def __init__(self, chain: DAChain, store: Store, settings: DASettings) -> None:
        self.chain = chain
        self.store = store
        self.settings = settings
        self.lock = trio.Lock()
        self._pool_seq = 0
        #: Set (and replaced) after every block: tests and watchers wait on it.
        self.new_block = trio.Event()

    @classmethod
    def open(cls, genesis: DAGenesis, settings: DASettings) -> DANode:
        """Open (or create) the data directory; the stored genesis wins over ``genesis``."""
        store = Store(settings.data_dir / "da.sqlite")
        stored = store.get_meta("genesis")
        if stored is None:
            chain = DAChain(genesis)
            store.initialize(genesis_mod.dumps(genesis).encode(), chain.head)
        else:
            genesis = genesis_mod.from_json(json.loads(stored))
            raw = store.get_meta("state")
            state = DAChain(genesis).state if raw is None else decode_state(raw)
            chain = DAChain.restore(genesis, list(store.headers()), state, store.pool())
        node = cls(chain, store, settings)
        node._pool_seq = len(chain.pool)
        log.info(
            "opened %s: DA chain %d at height %d, %d pending blobs",
            settings.data_dir,
            chain.config.chain_id,
            chain.head.height,
            len(chain.pool),
        )
        return node

    async def submit(self, pfb: PayForBlob) -> bytes:
        async with self.lock:
            h = self.chain.submit(pfb)
            self._pool_seq += 1
            try:
                await trio.to_thread.run_sync(self.store.add_pool, h, self._pool_seq, pfb)
            except BaseException:
                del self.chain.pool[h]  # not durable, so not accepted
                raise
            return h

    async def produce(self, n: int = 1) -> list[DABlock]:
        out = []
        for _ in range(n):
            async with self.lock:
                # hashing a full block takes ~0.2 s: off the event loop, the state unchanged
                # (and readable) until the block is applied
                block = await trio.to_thread.run_sync(self.chain.build_block)
                self.chain.apply_block(block)
                await trio.to_thread.run_sync(self._persist, block)
            out.append(block)
            self.new_block.set()
            self.new_block = trio.Event()
            h = block.header
            log.info(
                "DA block %d shares %d blobs %d gas %d base_fee %d next_base_fee %d",
                h.height,
                h.share_count,
                h.blob_count,
                h.gas_used,
                h.base_fee_per_gas,
                self.chain.state.base_fee,
            )
        return out

    def _persist(self, block: DABlock) -> None:
        self.store.write_block(block, self.chain.state)
        floor = retention_floor(self.chain.head.height, self.settings.retention_blocks)
        if floor > 0:
            self.store.prune(floor)

    def root_tuples(self, start: int, end: int) -> list[attest.DataRootTuple]:
        """The data root tuples of DA blocks ``[start, end)`` (what an attestation signs)."""
        return [
            attest.DataRootTuple(h.height, h.share_count, h.data_root, h.base_fee_per_gas)
            for h in self.chain.headers[start:end]
        ]

    def attestation(self, nonce: int) -> attest.Attestation | None:
        """Attestation ``nonce`` signed by the committee keys held, once its window is complete
        (Ed25519 signatures are deterministic, so it is recomputed rather than stored)."""
        window = self.settings.attestation_window
        if not window or nonce >= attest.attested_nonces(self.chain.head.height, window):
            return None
        start, end = attest.attestation_range(nonce, window)
        c = attest.make_commitment(nonce, self.root_tuples(start, end))
        msg = c.signing_bytes(self.chain.config.chain_id)
        members = {k for k, _ in self.chain.genesis.committee}
        sigs = tuple(
            (k.public_key, k.sign(msg))
            for k in self.settings.committee_keys
            if k.public_key in members
        )
        return attest.Attestation(c, sigs)

    async def run_producer(self) -> None:
        """One block per slot time (when auto-producing)."""
        if not self.settings.auto_produce:
            await trio.sleep_forever()
        deadline = trio.current_time()
        while True:
            deadline += self.chain.config.slot_time
            await trio.sleep_until(deadline)
            await self.produce(1)


# --- JSON views ----------------------------------------------------------------------------


def header_json(h: DAHeader) -> dict[str, Any]:
    return {
        "height": h.height,
        "time": h.time,
        "hash": d(h.hash),
        "parentHash": d(h.parent_hash),
        "dataRoot": d(h.data_root),
        "shareCount": h.share_count,
        "blobCount": h.blob_count,
        "gasUsed": h.gas_used,
        "baseFeePerGas": str(h.base_fee_per_gas),
    }


def blob_meta_json(b: StoredBlob) -> dict[str, Any]:
    return {
        "index": b.index,
        "txHash": d(b.tx_hash),
        "signer": d(b.pfb.signer),
        "nonce": b.pfb.nonce,
        "namespace": d(b.pfb.namespace),
        "start": b.start,
        "end": b.end,
        "commitment": d(b.commitment),
        "fee": str(b.fee),
    }


def _namespace_answer(
    header: DAHeader, stored: list[StoredBlob], ns: bytes
) -> dict[str, Any] | str:
    """The blobs of ``ns`` and the namespace proof, or an error message (CPU-bound: a thread)."""
    shares = block_shares([b.pfb for b in stored])
    if nmt.root(shares) != header.data_root:
        return f"stored blobs of block {header.height} do not match its data root"
    proof = nmt.prove_namespace(shares, ns)
    return {
        "height": header.height,
        "namespace": d(ns),
        "dataRoot": d(header.data_root),
        "shareCount": header.share_count,
        "blobs": [
            {"start": b.start, "end": b.end, "commitment": d(b.commitment), "data": d(b.pfb.data)}
            for b in stored
            if b.pfb.namespace == ns
        ],
        "proof": {
            "start": proof.start,
            "end": proof.end,
            "nodes": [d(n) for n in proof.nodes],
            "leaf": None if proof.leaf is None else d(proof.leaf),
        },
    }


def _pointer_answer(
    pfbs: list[PayForBlob],
    height: int,
    blob: StoredBlob,
    tuples: list[attest.DataRootTuple],
    commitment: attest.DataCommitment,
) -> tuple[attest.DAPointer, attest.PointerProof]:
    """CPU-bound (the block's shares are rebuilt and hashed): runs in a thread."""
    shares = block_shares(pfbs)
    return attest.prove_pointer(shares, height, blob.start, blob.end, tuples, commitment)


class Api:
    def __init__(self, node: DANode) -> None:
        self.node = node

    @property
    def chain(self) -> DAChain:
        return self.node.chain

    def _header(self, text: str) -> DAHeader:
        if text == "head":
            return self.chain.head
        height = parse_height(text)
        if height > self.chain.head.height:
            raise BadRequest(
                404, f"DA block {height} does not exist yet (head is {self.chain.head.height})"
            )
        return self.chain.headers[height]

    async def status(self, request: Request) -> Response:
        c = self.chain
        retention = self.node.settings.retention_blocks
        return JSONResponse(
            {
                "chainId": c.config.chain_id,
                "head": c.head.height,
                "headTime": c.head.time,
                "genesisTime": c.config.genesis_time,
                "slotTime": c.config.slot_time,
                "baseFeePerGas": str(c.state.base_fee),
                "pool": len(c.pool),
                "retentionBlocks": retention,
                "oldestAvailable": retention_floor(c.head.height, retention),
                "burnt": str(c.state.burnt),
            }
        )

    async def fees(self, request: Request) -> Response:
        c = self.chain.config
        return JSONResponse(
            {
                "baseFeePerGas": str(self.chain.state.base_fee),
                "pfbBaseGas": PFB_BASE_GAS,
                "gasPerBlobByte": GAS_PER_BLOB_BYTE,
                "shareBytes": SHARE_BYTES,
                "blockGasLimit": c.block_gas_limit,
                "gasTarget": c.gas_target,
                "maxBlockShares": c.max_block_shares,
                "maxBlobBytes": MAX_BLOB_BYTES,
            }
        )

    async def account(self, request: Request) -> Response:
        addr = parse_hex(request.path_params["address"], "address", ADDRESS_BYTES)
        return JSONResponse(
            {
                "address": d(addr),
                "balance": str(self.chain.balance(addr)),
                "nonce": self.chain.nonce(addr),
                "pendingNonce": self.chain.pending_nonce(addr),
            }
        )

    async def header(self, request: Request) -> Response:
        return JSONResponse(header_json(self._header(request.path_params["height"])))

    async def block_blobs(self, request: Request) -> Response:
        h = self._header(request.path_params["height"])
        async with self.node.lock:
            stored = self.node.store.blobs(h.height)
        return JSONResponse({"height": h.height, "blobs": [blob_meta_json(b) for b in stored]})

    async def namespace_blobs(self, request: Request) -> Response:
        h = self._header(request.path_params["height"])
        ns = parse_hex(request.path_params["namespace"], "namespace", NAMESPACE_BYTES)
        head = self.chain.head.height
        retention = self.node.settings.retention_blocks
        if not data_available(h.height, head, retention):
            raise BadRequest(
                404,
                f"pruned: blob data of DA block {h.height} is gone; blocks below "
                f"{retention_floor(head, retention)} are older than the retention window of "
                f"{retention} blocks (headers and data roots stay)",
            )
        async with self.node.lock:
            stored = self.node.store.blobs(h.height)
        if any(b.data is None for b in stored):
            raise BadRequest(404, f"pruned: blob data of DA block {h.height} is gone")
        got = await trio.to_thread.run_sync(_namespace_answer, h, stored, ns)
        if isinstance(got, str):
            raise BadRequest(500, got)
        return JSONResponse(got)

    async def attestation(self, request: Request) -> Response:
        window = self.node.settings.attestation_window
        if not window:
            raise BadRequest(404, "this DA node serves no attestations (--attestation-window 0)")
        text = request.path_params["nonce"]
        done = attest.attested_nonces(self.chain.head.height, window)
        if text == "latest":
            if not done:
                raise BadRequest(404, f"no attestation yet: the first covers heights 1..{window}")
            nonce = done - 1
        else:
            nonce = parse_height(text)
        att = self.node.attestation(nonce)
        if att is None:
            start, end = attest.attestation_range(nonce, window)
            raise BadRequest(
                404, f"attestation {nonce} (heights {start}..{end - 1}) is not complete yet"
            )
        return JSONResponse(attest.attestation_to_json(att))

    async def pointer(self, request: Request) -> Response:
        """The DA pointer of one included blob and its proof against its attestation."""
        h = self._header(request.path_params["height"])
        index = parse_height(request.path_params["index"])
        window = self.node.settings.attestation_window
        if h.height == 0 or not window:
            raise BadRequest(404, "no attestation covers this height")
        nonce = attest.attestation_nonce(h.height, window)
        att = self.node.attestation(nonce)
        if att is None:
            raise BadRequest(404, f"DA block {h.height} is not attested yet (nonce {nonce})")
        if not data_available(
            h.height, self.chain.head.height, self.node.settings.retention_blocks
        ):
            raise BadRequest(404, f"pruned: blob data of DA block {h.height} is gone")
        async with self.node.lock:
            stored = self.node.store.blobs(h.height)
        if index >= len(stored) or any(b.data is None for b in stored):
            raise BadRequest(404, f"DA block {h.height} has no blob {index} (or it was pruned)")
        start, end = attest.attestation_range(nonce, window)
        tuples = self.node.root_tuples(start, end)
        b = stored[index]
        pointer, proof = await trio.to_thread.run_sync(
            _pointer_answer, [x.pfb for x in stored], h.height, b, tuples, att.commitment
        )
        return JSONResponse(
            {
                "pointer": attest.pointer_to_json(pointer),
                "attestationNonce": nonce,
                "proof": attest.pointer_proof_to_json(proof),
            }
        )

    async def submit(self, request: Request) -> Response:
        body = await _read_body(request)
        try:
            req = json.loads(body)
        except ValueError:
            raise BadRequest(400, "the body is not valid JSON") from None
        expected = {"signer", "nonce", "namespace", "data", "maxFeePerGas", "signature"}
        if not isinstance(req, dict) or set(req) != expected:
            raise BadRequest(400, f"the body must be an object with exactly {sorted(expected)}")
        pfb = PayForBlob(
            signer=parse_hex(req["signer"], "signer", PUBLIC_KEY_BYTES),
            nonce=parse_uint(req["nonce"], "nonce", 64),
            namespace=parse_hex(req["namespace"], "namespace", NAMESPACE_BYTES),
            data=parse_hex(req["data"], "data", max_len=MAX_BLOB_BYTES),
            max_fee_per_gas=parse_uint(req["maxFeePerGas"], "maxFeePerGas", 128),
            signature=parse_hex(req["signature"], "signature", SIGNATURE_BYTES),
        )
        try:
            h = await self.node.submit(pfb)
        except Rejected as e:
            raise BadRequest(422, str(e)) from None
        mine = blob_shares(pfb.namespace, pfb.data)
        return JSONResponse(
            {
                "txHash": d(h),
                "commitment": d(nmt.share_commitment(mine)),
                "shares": len(mine),
                "gas": pfb.gas,
            }
        )

    async def dev_produce(self, request: Request) -> Response:
        count = parse_uint(request.query_params.get("count", "1"), "count", 32)
        if not 1 <= count <= MAX_DEV_PRODUCE:
            raise BadRequest(400, f"count must be 1 to {MAX_DEV_PRODUCE}")
        blocks = await self.node.produce(count)
        return JSONResponse({"head": blocks[-1].header.height})

    async def health(self, request: Request) -> Response:
        return JSONResponse({"ok": True, "head": self.chain.head.height})


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > MAX_BODY:
        raise BadRequest(413, f"request body larger than {MAX_BODY} bytes")
    buf = bytearray()
    async for chunk in request.stream():
        buf += chunk
        if len(buf) > MAX_BODY:
            raise BadRequest(413, f"request body larger than {MAX_BODY} bytes")
    return bytes(buf)


def _wrap(fn: Any) -> Any:
    async def handler(request: Request) -> Response:
        try:
            resp: Response = await fn(request)
        except BadRequest as e:
            return JSONResponse({"code": e.status, "message": e.message}, status_code=e.status)
        return resp

    return handler


async def _not_found(request: Request, exc: Exception) -> Response:
    return JSONResponse({"code": 404, "message": "no such endpoint"}, status_code=404)


async def _not_allowed(request: Request, exc: Exception) -> Response:
    return JSONResponse({"code": 405, "message": "method not allowed"}, status_code=405)


def make_app(node: DANode) -> Starlette:
    api = Api(node)
    routes = [
        Route("/health", _wrap(api.health), methods=["GET"]),
        Route("/v1/status", _wrap(api.status), methods=["GET"]),
        Route("/v1/fees", _wrap(api.fees), methods=["GET"]),
        Route("/v1/accounts/{address}", _wrap(api.account), methods=["GET"]),
        Route("/v1/headers/{height}", _wrap(api.header), methods=["GET"]),
        Route("/v1/blocks/{height}/blobs", _wrap(api.block_blobs), methods=["GET"]),
        Route("/v1/blobs/{height}/{namespace}", _wrap(api.namespace_blobs), methods=["GET"]),
        Route("/v1/blobs", _wrap(api.submit), methods=["POST"]),
        Route("/v1/attestations/{nonce}", _wrap(api.attestation), methods=["GET"]),
        Route("/v1/pointers/{height}/{index}", _wrap(api.pointer), methods=["GET"]),
    ]
    if node.settings.dev_endpoints:
        routes.append(Route("/v1/dev/produce", _wrap(api.dev_produce), methods=["POST"]))
    return Starlette(routes=routes, exception_handlers={404: _not_found, 405: _not_allowed})


async def serve(
    node: DANode,
    host: str,
    port: int,
    *,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the API and produce blocks until cancelled; report the bound URL when ready."""
    from hypercorn.config import Config
    from hypercorn.trio import serve as hypercorn_serve

    config = Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.h11_max_incomplete_size = 64 * 1024
    config.graceful_timeout = 1.0
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(hypercorn_serve, make_app(node), config)
        url = binds[0]
        log.info("DA mock listening on %s (DA chain id %d)", url, node.chain.config.chain_id)
        nursery.start_soon(node.run_producer)
        s = node.settings
        if s.relay_l1_url is not None and s.relay_key is not None:
            nursery.start_soon(run_relayer, RelaySettings(url, s.relay_l1_url, s.relay_key))
        task_status.started(url)


async def serve_until_signal(node: DANode, host: str, port: int) -> None:
    """Serve until SIGTERM or SIGINT (the CLI's ``run``)."""
    await run_until_signal(serve, node, host, port, log=log)
