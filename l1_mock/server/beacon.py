"""The Beacon API's blob endpoints (``/eth/v1/beacon/blob_sidecars/{block_id}`` and
``/eth/v1/beacon/blobs/{block_id}``): errors are ``{code, message}`` with the HTTP status."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from l1_mock.chain import Chain, L1Block, Sidecar, retention_floor_epoch
from l1_mock.server.params import MAX_QUANTITY
from l1_mock.server.service import L1Service
from l1_mock.server.views import sidecar_json
from sequencer_node.wire.hexstr import to_hex

#: ASCII digits only (``str.isdigit`` also accepts "²" and Arabic-Indic digits).
_SLOT = re.compile(r"[0-9]{1,20}")
_ROOT = re.compile(r"0x[0-9a-fA-F]{64}")
_VERSIONED_HASH = re.compile(r"(?:0x)?[0-9a-fA-F]{64}")
#: More indices than a block can have blobs is malformed.
MAX_INDICES = 64


class BeaconError(Exception):
    """An error answer with its HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def response(self) -> Response:
        return JSONResponse({"code": self.status, "message": self.message}, self.status)


def find_block(c: Chain, block_id: str) -> L1Block:
    """The block named by a Beacon ``block_id`` (head, genesis, finalized, slot, 0x root)."""
    if block_id == "head":
        return c.blocks[-1]
    if block_id == "genesis":
        return c.blocks[0]
    if block_id == "finalized":
        return c.blocks[c.finalized_block().number]
    if block_id.startswith("0x"):
        if not _ROOT.fullmatch(block_id):
            raise BeaconError(400, f"invalid block id {block_id!r:.80}: a root is 0x + 64 hex")
        n = c.block_by_hash.get(bytes.fromhex(block_id[2:]))
        if n is None:
            raise BeaconError(404, f"block {block_id} not found")
        return c.blocks[n]
    if _SLOT.fullmatch(block_id):
        slot = int(block_id)
        if slot > MAX_QUANTITY:
            raise BeaconError(400, f"slot {slot} is out of range (at most {MAX_QUANTITY})")
        b = c.block_at_slot(slot)
        if b is None:
            raise BeaconError(404, f"no block at slot {block_id}")
        return b
    raise BeaconError(
        400,
        f"invalid block id {block_id!r:.80}: use head, genesis, finalized, a slot (decimal "
        "digits) or 0x<root>",
    )


def _indices(text: str | None) -> set[int] | None:
    if not text:
        return None
    parts = text.split(",")
    if len(parts) > MAX_INDICES or not all(re.fullmatch(r"[0-9]{1,4}", x) for x in parts):
        raise BeaconError(
            400, f"indices must be at most {MAX_INDICES} comma-separated decimal integers"
        )
    return {int(x) for x in parts}


def _versioned_hashes(text: str | None) -> set[bytes] | None:
    if not text:
        return None
    parts = text.split(",")
    if len(parts) > MAX_INDICES or not all(_VERSIONED_HASH.fullmatch(x) for x in parts):
        raise BeaconError(
            400, f"versioned_hashes must be at most {MAX_INDICES} comma-separated 0x + 64 hex"
        )
    return {bytes.fromhex(x.removeprefix("0x")) for x in parts}


class BeaconApi:
    """The blob endpoints over one :class:`L1Service`."""

    def __init__(self, service: L1Service) -> None:
        self.service = service

    @property
    def chain(self) -> Chain:
        return self.service.chain

    async def _sidecars(self, request: Request) -> tuple[L1Block, list[Sidecar]]:
        b = find_block(self.chain, request.path_params["block_id"])
        if not any(b.blob_hashes):
            return b, []
        if not self.chain.blobs_available(b.header.number):
            cfg = self.chain.config
            floor = retention_floor_epoch(self.chain.current_epoch, cfg.blob_retention_epochs)
            raise BeaconError(
                404,
                f"blobs pruned: block {b.header.number} (slot {b.header.slot}, epoch "
                f"{b.header.epoch}) is older than the retention window of "
                f"{cfg.blob_retention_epochs} epochs; blobs before epoch {floor} are pruned "
                f"(since epoch {b.header.epoch + cfg.blob_retention_epochs + 1})",
            )
        async with self.service.lock:
            sidecars = self.service.store.sidecars(b.header.number)
        return b, sidecars

    def _final(self, b: L1Block) -> bool:
        return b.header.number <= self.chain.finalized_block().number

    async def blob_sidecars(self, request: Request) -> Response:
        try:
            wanted = _indices(request.query_params.get("indices"))
            b, sidecars = await self._sidecars(request)
        except BeaconError as e:
            return e.response()
        data = [sidecar_json(b, s) for s in sidecars if wanted is None or s.index in wanted]
        body: dict[str, Any] = {
            "version": "deneb",
            "execution_optimistic": False,
            "finalized": self._final(b),
            "data": data,
        }
        return JSONResponse(body, headers={"Eth-Consensus-Version": "deneb"})

    async def blobs(self, request: Request) -> Response:
        try:
            wanted = _versioned_hashes(request.query_params.get("versioned_hashes"))
            b, sidecars = await self._sidecars(request)
        except BeaconError as e:
            return e.response()
        data = [to_hex(s.blob) for s in sidecars if wanted is None or s.versioned_hash in wanted]
        return JSONResponse(
            {"execution_optimistic": False, "finalized": self._final(b), "data": data}
        )
