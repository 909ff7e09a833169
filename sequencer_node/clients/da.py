"""HTTP client of the external DA layer (the ``da-mock`` API, docs/da.md).

The batcher posts a batch's payload as a blob under the rollup's namespace (:meth:`DAClient.
publish`), co-signers and the derivation follower read it back (:meth:`DAClient.read`) and
check it against a data root they trust: nothing the DA node answers is believed without a
proof (:func:`sequencer_node.wire.da.reader.pointed_blob`).

Every network or server problem is a :class:`DAUnavailable`; an answer that fails its proof
is :class:`~sequencer_node.wire.da.reader.NotVerified` (a lying or withholding DA node).
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
import trio

from sequencer_node.wire.crypto import SigningKey
from sequencer_node.wire.da import attest, reader
from sequencer_node.wire.da.attest import DAPointer, PointerProof
from sequencer_node.wire.da.pfb import pfb_to_json, signed_pfb

log = logging.getLogger("seqnet.da")


class DAUnavailable(Exception):
    """The DA node cannot be reached or does not (yet) have what was asked."""


class DAUnreachable(DAUnavailable):
    """No answer at all (connection refused, timeout): the DA node is down."""


class DAClient:
    """One DA node's API. ``key`` pays for blobs (None: a reader only)."""

    def __init__(
        self, url: str, namespace: bytes, key: SigningKey | None = None, timeout: float = 5.0
    ) -> None:
        self.url = url.rstrip("/")
        self.namespace = namespace
        self.key = key
        self._http = httpx.AsyncClient(timeout=timeout)
        self._chain_id: int | None = None

    async def __aenter__(self) -> DAClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _get(self, path: str) -> Any:
        try:
            r = await self._http.get(self.url + path)
        except httpx.HTTPError as e:
            raise DAUnreachable(f"DA at {self.url} unreachable: {type(e).__name__}") from e
        if r.status_code != 200:
            raise DAUnavailable(f"DA GET {path}: HTTP {r.status_code}: {r.text[:200]}")
        return r.json()

    async def healthy(self) -> bool:
        try:
            await self._get("/health")
        except DAUnavailable:
            return False
        return True

    async def head(self) -> int:
        return int((await self._get("/v1/status"))["head"])

    async def header(self, height: int) -> attest.DataRootTuple:
        h = await self._get(f"/v1/headers/{height}")
        root = bytes.fromhex(h["dataRoot"][2:])
        return attest.DataRootTuple(
            int(h["height"]), int(h["shareCount"]), root, int(h["baseFeePerGas"])
        )

    async def submit(self, payload: bytes) -> tuple[bytes, int]:
        """Sign and send a pay-for-blob; return its tx hash and the DA head at submission."""
        if self.key is None:
            raise ValueError("a DA client without a key cannot post blobs")
        status = await self._get("/v1/status")
        if self._chain_id is None:
            self._chain_id = int(status["chainId"])
        account = await self._get(f"/v1/accounts/0x{self.key.address.hex()}")
        fee = 2 * int(status["baseFeePerGas"]) + 1  # room for a few blocks of increases
        pfb = signed_pfb(
            self.key, int(account["pendingNonce"]), self.namespace, payload, fee, self._chain_id
        )
        try:
            r = await self._http.post(self.url + "/v1/blobs", json=pfb_to_json(pfb))
        except httpx.HTTPError as e:
            raise DAUnreachable(f"DA at {self.url} unreachable: {type(e).__name__}") from e
        if r.status_code != 200:
            raise DAUnavailable(f"DA refused the blob: HTTP {r.status_code}: {r.text[:200]}")
        return bytes.fromhex(r.json()["txHash"][2:]), int(status["head"])

    async def included(self, tx_hash: bytes, after: int) -> DAPointer:
        """Wait until the blob ``tx_hash`` (sent when the head was ``after``) is in a block;
        return its pointer (the caller bounds the wait)."""
        want = "0x" + tx_hash.hex()
        height = after + 1
        while True:
            if await self.head() < height:
                await trio.sleep(0.2)
                continue
            blobs = (await self._get(f"/v1/blocks/{height}/blobs"))["blobs"]
            for b in blobs:
                if b["txHash"] == want:
                    return DAPointer(
                        height,
                        self.namespace,
                        int(b["start"]),
                        int(b["end"]),
                        bytes.fromhex(b["commitment"][2:]),
                    )
            height += 1

    async def pointer_proof(self, pointer: DAPointer) -> tuple[int, PointerProof]:
        """The attestation nonce and the proof of ``pointer`` (DAUnavailable until the DA
        block is attested)."""
        i, _ = await self._blob_entry(pointer)
        body = await self._get(f"/v1/pointers/{pointer.height}/{i}")
        try:
            got = attest.pointer_from_json(body["pointer"])
            proof = attest.pointer_proof_from_json(body["proof"])
        except (ValueError, KeyError, TypeError) as e:
            raise DAUnavailable(f"malformed pointer answer: {e}") from None
        if got != pointer:
            raise DAUnavailable("the DA node's pointer differs from ours")
        return int(body["attestationNonce"]), proof

    async def blob_fee(self, pointer: DAPointer) -> int:
        """What the DA chain charged the blob ``pointer`` names: the ``fee`` of its receipt in
        the block's blob list (DA fee units; kept after the blob data is pruned)."""
        _, entry = await self._blob_entry(pointer)
        try:
            return int(str(entry["fee"]))
        except (KeyError, ValueError) as e:
            raise DAUnavailable(f"malformed blob receipt: {e}") from None

    async def _blob_entry(self, pointer: DAPointer) -> tuple[int, dict[str, Any]]:
        """The index and receipt of the blob at ``pointer``'s share range in its block."""
        blobs = (await self._get(f"/v1/blocks/{pointer.height}/blobs"))["blobs"]
        for i, b in enumerate(blobs):
            if (int(b["start"]), int(b["end"])) == (pointer.start, pointer.end):
                return i, b
        raise DAUnavailable(f"DA block {pointer.height} holds no blob at our share range")

    async def read(self, pointer: DAPointer, data_root: bytes, share_count: int) -> bytes:
        """The blob ``pointer`` names, proven against ``data_root`` (raises NotVerified for a
        withheld or forged blob, DAUnavailable when the node does not answer)."""
        body = await self._get(f"/v1/blobs/{pointer.height}/0x{pointer.namespace.hex()}")
        return reader.pointed_blob(data_root, share_count, pointer, reader.answer_from_json(body))


__all__ = ["DAClient", "DAUnavailable", "DAUnreachable"]
