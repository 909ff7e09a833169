"""The Blobstream relayer: posts the DA committee's attestations to the L1, in order.

Every tick it asks the L1 which data commitment it takes next (``da_status``) and the DA node
which attestations are complete (``GET /v1/attestations/latest``), then sends
``submitDataCommitment`` for the missing nonces, oldest first, signed by its own funded L1
key. It sends only while its account has nothing pending on the L1, so a commitment is never
sent twice (a duplicate would be included and fail, burning the fee); what the L1 refuses is
logged and retried on the next tick. It trusts neither side: the L1 verifies the signatures.

Run it with ``da-mock relay`` (or inside ``da-mock run --relay-l1-url``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import httpx
import trio

from sequencer_node.wire.codec import encode
from sequencer_node.wire.crypto import SigningKey
from sequencer_node.wire.da import attest
from sequencer_node.wire.hexstr import to_hex
from sequencer_node.wire.l1calls import SubmitDataCommitment, make_call

log = logging.getLogger("l1_mock.da.relay")
#: Most commitments sent in one tick (each waits for the next L1 block anyway).
MAX_PER_TICK = 16


class RelayError(RuntimeError):
    """The L1 or the DA node answered something unusable; the message says what."""


@dataclass(frozen=True, slots=True)
class RelaySettings:
    da_url: str
    l1_url: str
    key: SigningKey
    interval: float = 1.0


class Relayer:
    """One relayer between a DA node and an L1 (see the module docstring)."""

    def __init__(self, settings: RelaySettings, http: httpx.AsyncClient) -> None:
        self.settings = settings
        self.http = http
        self.relayed = 0
        self._l1_chain_id: int | None = None

    async def _rpc(self, method: str, *params: Any) -> Any:
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
        r = await self.http.post(self.settings.l1_url, json=body)
        answer = r.json()
        if "error" in answer:
            raise RelayError(f"L1 {method}: {answer['error'].get('message')}")
        return answer["result"]

    async def _latest_attested(self) -> int | None:
        """The newest complete attestation's nonce on the DA node (None: none yet)."""
        r = await self.http.get(self.settings.da_url.rstrip("/") + "/v1/attestations/latest")
        if r.status_code == 404:
            return None
        if r.status_code != 200:
            raise RelayError(f"DA attestations: HTTP {r.status_code}: {r.text[:200]}")
        return int(r.json()["nonce"])

    async def _attestation(self, nonce: int) -> attest.Attestation:
        r = await self.http.get(self.settings.da_url.rstrip("/") + f"/v1/attestations/{nonce}")
        if r.status_code != 200:
            raise RelayError(f"DA attestation {nonce}: HTTP {r.status_code}: {r.text[:200]}")
        try:
            return attest.attestation_from_json(r.json())
        except (ValueError, KeyError, TypeError) as e:
            raise RelayError(f"DA attestation {nonce} is malformed: {e}") from None

    async def tick(self) -> int:
        """Send what the L1 lacks; return how many commitments were sent."""
        if self._l1_chain_id is None:
            self._l1_chain_id = int(await self._rpc("eth_chainId"), 16)
        address = to_hex(self.settings.key.address)
        nonce = int(await self._rpc("eth_getTransactionCount", address, "latest"), 16)
        pending = int(await self._rpc("eth_getTransactionCount", address, "pending"), 16)
        if pending != nonce:
            return 0  # our last commitments are not included yet
        want = int((await self._rpc("da_status"))["nextNonce"])
        latest = await self._latest_attested()
        if latest is None or latest < want:
            return 0
        sent = 0
        for n in range(want, min(latest + 1, want + MAX_PER_TICK)):
            params = SubmitDataCommitment.of(await self._attestation(n))
            call = make_call(params, self.settings.key, nonce + sent, self._l1_chain_id)
            await self._rpc("seq_sendCall", to_hex(encode(call)))
            sent += 1
            log.info("relayed data commitment %d, DA heights [%d, %d)", n, params.start, params.end)
        self.relayed += sent
        return sent

    async def run(self) -> None:
        """Tick forever; errors of either side are logged and retried."""
        while True:
            try:
                await self.tick()
            except (httpx.HTTPError, RelayError, ValueError, KeyError) as e:
                log.warning("relay: %s", e)
            await trio.sleep(self.settings.interval)


async def run_relayer(settings: RelaySettings) -> None:
    async with httpx.AsyncClient(timeout=10.0) as http:
        await Relayer(settings, http).run()


__all__ = ["RelayError", "RelaySettings", "Relayer", "run_relayer"]
