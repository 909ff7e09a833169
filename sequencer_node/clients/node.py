"""Async client of a sequencer node's JSON RPC (docs/node-api.md), for ``seqctl``.

Errors: :class:`NodeUnavailable` (cannot connect, timeout, 5xx, not JSON: exit 3) and
:class:`NodeRejected` (the node answered 4xx with ``{"error": {"code", "message"}}``: exit 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NotRequired, TypedDict, cast

import httpx
import msgpack

from sequencer_node.wire.codec import encode
from sequencer_node.wire.hexstr import to_hex
from sequencer_node.wire.messages import Transaction


class NodeError(Exception):
    """Base of the node client's errors."""


class NodeUnavailable(NodeError):
    """The node could not be reached, timed out, failed (5xx) or answered something that is
    not its API; ``code`` is the node's error code when it sent one, else UNREACHABLE."""

    def __init__(self, message: str, code: str = "UNREACHABLE") -> None:
        super().__init__(message)
        self.code = code


class NodeRejected(NodeError):
    """The node answered and refused; ``code`` is its error code (e.g. NONCE_TOO_LOW)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        message = _without_code(code, message)
        super().__init__(f"{code}: {message}" if code and message else code or message)
        self.status = status
        self.code = code
        self.message = message


def _without_code(code: str, message: str) -> str:
    """The node's message without a leading repeat of its code (``insufficient_balance: ...``)."""
    low = code.lower()
    if message.lower() == low:
        return ""
    if message.lower().startswith(low + ": "):
        return message[len(low) + 2 :]
    return message


class NodeAccount(TypedDict):
    """``GET /v1/account/{address}``: balance and nonce at the certified state ``height``;
    ``pending_nonce`` past the account's pooled transactions (nodes before it: absent)."""

    address: str
    balance: str
    nonce: int
    pending_nonce: NotRequired[int]
    height: NotRequired[int]


class NodeTxStatus(TypedDict):
    """``GET /v1/tx/{hash}``: pending, certified, batched, finalized or unknown."""

    tx_hash: str
    status: str
    height: NotRequired[int | None]
    batch: NotRequired[int | None]
    l1_block: NotRequired[int | None]


class NodeTxAccepted(TypedDict):
    """``POST /v1/tx`` when the node accepted the transaction into its pool."""

    tx_hash: str
    status: str


class NodeTxResult(TypedDict):
    """One item of ``POST /v1/txs``: accepted, or refused with the code ``POST /v1/tx`` would
    have answered (e.g. NONCE_TOO_LOW, OVERLOADED)."""

    tx_hash: str
    accepted: bool
    code: NotRequired[str]
    message: NotRequired[str]


def encode_tx_batch(txs: Sequence[Transaction] | Sequence[bytes]) -> bytes:
    """The ``POST /v1/txs`` body: a msgpack array of canonical encoded Transactions (pass the
    encodings themselves to encode once, e.g. before a timed run)."""
    return msgpack.packb(  # type: ignore[no-any-return]
        [t if isinstance(t, bytes) else encode(t) for t in txs], use_bin_type=True
    )


def _shaped(data: dict[str, Any], fields: dict[str, type], url: str, path: str) -> None:
    """Check the fields the client relies on (the rest passes through to ``--json``)."""
    for name, kind in fields.items():
        if not isinstance(data.get(name), kind) or isinstance(data.get(name), bool):
            raise NodeUnavailable(
                f"node at {url} answered {path} without a {kind.__name__} {name!r}; is that URL "
                f"a seqnet node's RPC (and of this version)?"
            )


_MSGPACK = {"content-type": "application/msgpack"}


class NodeClient:
    """``async with NodeClient(url) as node: await node.status()``."""

    def __init__(self, url: str, *, timeout: float = 10.0, max_connections: int = 8) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.AsyncClient(
            timeout=timeout,
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
        )

    async def __aenter__(self) -> NodeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._http.aclose()

    async def _request(
        self, method: str, path: str, body: dict[str, str] | None = None, *, raw: bytes = b""
    ) -> dict[str, Any]:
        try:
            if raw:
                r = await self._http.request(method, self.url + path, content=raw, headers=_MSGPACK)
            else:
                r = await self._http.request(method, self.url + path, json=body)
        except httpx.HTTPError as e:
            raise NodeUnavailable(
                f"node at {self.url} unreachable: {type(e).__name__}: {e}".rstrip(": ")
            ) from e
        try:
            data = r.json()
        except ValueError:
            if r.status_code >= 500:
                raise NodeUnavailable(
                    f"node at {self.url} answered HTTP {r.status_code} on {path}", "UNAVAILABLE"
                ) from None
            raise NodeUnavailable(
                f"node at {self.url} answered non-JSON (HTTP {r.status_code}) on {path}; "
                f"is that URL a seqnet node's RPC?"
            ) from None
        err = data.get("error") if isinstance(data, dict) else None
        if r.status_code >= 500:
            code = str(err.get("code", "UNAVAILABLE")) if isinstance(err, dict) else "UNAVAILABLE"
            msg = str(err.get("message", "")) if isinstance(err, dict) else ""
            raise NodeUnavailable(
                f"node at {self.url} answered HTTP {r.status_code} {code} on {path}: {msg}", code
            )
        if r.status_code >= 400:
            if isinstance(err, dict):
                raise NodeRejected(
                    r.status_code, str(err.get("code", "")), str(err.get("message", ""))
                )
            raise NodeRejected(r.status_code, f"HTTP_{r.status_code}", f"{path}: {data!r:.200}")
        if not isinstance(data, dict):
            raise NodeUnavailable(f"node at {self.url} answered a non-object on {path}")
        return data

    async def status(self) -> dict[str, Any]:
        return await self._request("GET", "/v1/status")

    async def schedule(self) -> dict[str, Any]:
        return await self._request("GET", "/v1/schedule")

    async def evidence(self) -> list[dict[str, Any]]:
        return list((await self._request("GET", "/v1/evidence")).get("evidence", []))

    async def batches(self) -> list[dict[str, Any]]:
        return list((await self._request("GET", "/v1/batches")).get("batches", []))

    async def fees(self) -> dict[str, Any] | None:
        """``GET /v1/fees`` (docs/fees.md), or None from a node that has no such route."""
        try:
            return await self._request("GET", "/v1/fees")
        except NodeRejected as e:
            if e.status == 404:
                return None
            raise

    async def account(self, address: bytes) -> NodeAccount:
        path = f"/v1/account/{to_hex(address)}"
        data = await self._request("GET", path)
        _shaped(data, {"balance": str, "nonce": int}, self.url, path)
        return cast(NodeAccount, data)

    async def block(self, height: int) -> dict[str, Any]:
        return await self._request("GET", f"/v1/blocks/{height}")

    async def send_tx(self, tx: Transaction) -> NodeTxAccepted:
        data = await self._request("POST", "/v1/tx", {"tx": to_hex(encode(tx))})
        _shaped(data, {"tx_hash": str, "status": str}, self.url, "/v1/tx")
        return cast(NodeTxAccepted, data)

    async def eth_send_raw(self, raws: Sequence[bytes]) -> list[str | None]:
        """``eth_sendRawTransaction`` of each of ``raws`` in one JSON-RPC batch at ``POST /``
        (at most 100): None where the node accepted it, else the refusal's reason code
        (``NONCE_TOO_LOW``, ...). Raises NodeUnavailable when the batch got no answer."""
        body = [
            {"jsonrpc": "2.0", "id": i, "method": "eth_sendRawTransaction", "params": [to_hex(r)]}
            for i, r in enumerate(raws)
        ]
        try:
            r = await self._http.post(self.url + "/", json=body)
            data = r.json()
        except (httpx.HTTPError, ValueError) as e:
            raise NodeUnavailable(f"node at {self.url}: eth_sendRawTransaction failed: {e}") from e
        if not isinstance(data, list):
            raise NodeUnavailable(f"node at {self.url} answered the batch with {data!r:.200}")
        by_id = {a.get("id"): a for a in data if isinstance(a, dict)}
        out: list[str | None] = []
        for i in range(len(raws)):
            answer = by_id.get(i)
            err = answer.get("error") if answer is not None else {"data": {"reason": "no_answer"}}
            if not isinstance(err, dict):
                out.append(None)
                continue
            reason = (
                err.get("data", {}).get("reason") if isinstance(err.get("data"), dict) else None
            )
            out.append(str(reason or err.get("code", "rejected")).upper())
        return out

    async def send_txs(self, batch: bytes) -> list[NodeTxResult]:
        """``POST /v1/txs`` with a body from :func:`encode_tx_batch`: one result per
        transaction, in order (NodeRejected if the whole batch was refused: malformed, 413,
        429)."""
        data = await self._request("POST", "/v1/txs", raw=batch)
        results = data.get("results")
        if not isinstance(results, list) or not all(
            isinstance(r, dict) and isinstance(r.get("tx_hash"), str) for r in results
        ):
            raise NodeUnavailable(
                f"node at {self.url} answered /v1/txs without a results list; is that URL a "
                f"seqnet node's RPC (and of this version)?"
            )
        return cast(list[NodeTxResult], results)

    async def tx_status(self, tx_hash: bytes) -> NodeTxStatus:
        path = f"/v1/tx/{to_hex(tx_hash)}"
        data = await self._request("GET", path)
        _shaped(data, {"tx_hash": str, "status": str}, self.url, path)
        return cast(NodeTxStatus, data)
