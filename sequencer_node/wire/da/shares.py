"""Namespaces, shares, the layout of blobs in a block, and share commitments. Pure.

Modelled on Celestia's share format (celestia-app specs, "Shares" and "Namespace"), simplified
where noted in docs/da.md:

* A **namespace** is 29 bytes: a version byte and a 28-byte id. Version 0 ids start with 18
  zero bytes, leaving 10 bytes for users. Namespaces up to ``00..00ff`` are reserved (Celestia
  keeps them for transactions and padding), as are the version-255 ones (parity, tail padding).
* A **share** is 512 bytes: ``namespace || info || [sequence length] || data || zero padding``.
  The info byte is ``share_version << 1 | sequence_start``. The first share of a blob carries the
  blob's length as a 4-byte big-endian integer, so it holds 478 data bytes and every
  continuation share 482.
* A **namespace padding share** is a first share with sequence length 0; it fills the gap left
  when the next blob must start at an aligned index and carries the preceding blob's namespace.
* Blob layout follows Celestia's non-interactive default rules: blobs are ordered by namespace
  (stable within one namespace) and each starts at a multiple of its **subtree width**, so its
  shares are covered by whole subtrees of the block's tree. The **share commitment** is the
  plain Merkle root over the namespaced roots of those subtrees (a Merkle mountain range of
  width-sized trees), computable from the blob alone before it is included anywhere.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

NAMESPACE_VERSION_BYTES = 1
NAMESPACE_ID_BYTES = 28
NAMESPACE_BYTES = NAMESPACE_VERSION_BYTES + NAMESPACE_ID_BYTES
#: Leading zero bytes of a version-0 namespace id; the user part is the last 10 bytes.
V0_ZERO_PREFIX = 18
V0_USER_BYTES = NAMESPACE_ID_BYTES - V0_ZERO_PREFIX
SHARE_BYTES = 512
SEQUENCE_LEN_BYTES = 4
SHARE_VERSION = 0
FIRST_SHARE_CAPACITY = SHARE_BYTES - NAMESPACE_BYTES - 1 - SEQUENCE_LEN_BYTES  # 478
CONTINUATION_CAPACITY = SHARE_BYTES - NAMESPACE_BYTES - 1  # 482
#: Largest blob the DA chain accepts (so the largest payload of an external-DA batch).
MAX_BLOB_BYTES = 1024 * 1024
#: Celestia's SubtreeRootThreshold: a blob's commitment has at most about this many subtrees.
SUBTREE_ROOT_THRESHOLD = 64
#: The largest reserved version-0 namespace (Celestia's MaxPrimaryReservedNamespace).
MAX_RESERVED_NAMESPACE = bytes(NAMESPACE_BYTES - 1) + b"\xff"
PARITY_NAMESPACE = b"\xff" * NAMESPACE_BYTES


class ShareError(ValueError):
    """Bytes that are not valid shares, or an invalid namespace or blob."""


def user_namespace(user_id: bytes) -> bytes:
    """The version-0 namespace of a 10-byte user id."""
    if len(user_id) != V0_USER_BYTES:
        raise ShareError(f"a user namespace id has {V0_USER_BYTES} bytes, got {len(user_id)}")
    ns = bytes(NAMESPACE_VERSION_BYTES + V0_ZERO_PREFIX) + user_id
    check_user_namespace(ns)
    return ns


def check_user_namespace(ns: bytes) -> None:
    """Raise :class:`ShareError` unless ``ns`` is a namespace a user may post blobs under."""
    if len(ns) != NAMESPACE_BYTES:
        raise ShareError(f"a namespace has {NAMESPACE_BYTES} bytes, got {len(ns)}")
    if ns[0] != 0:
        raise ShareError(f"namespace version {ns[0]} is not supported (only version 0)")
    if any(ns[1 : 1 + V0_ZERO_PREFIX]):
        raise ShareError(
            f"a version-0 namespace id starts with {V0_ZERO_PREFIX} zero bytes "
            f"(the user part is the last {V0_USER_BYTES} bytes)"
        )
    if ns <= MAX_RESERVED_NAMESPACE:
        raise ShareError(
            f"namespace 0x{ns.hex()} is reserved (up to 0x{MAX_RESERVED_NAMESPACE.hex()})"
        )


def share_namespace(share: bytes) -> bytes:
    return share[:NAMESPACE_BYTES]


def shares_needed(data_len: int) -> int:
    """Shares taken by a blob of ``data_len`` bytes (at least one)."""
    if data_len <= FIRST_SHARE_CAPACITY:
        return 1
    return 1 + math.ceil((data_len - FIRST_SHARE_CAPACITY) / CONTINUATION_CAPACITY)


def _share(ns: bytes, first: bool, seq_len: int, chunk: bytes) -> bytes:
    head = ns + bytes([SHARE_VERSION << 1 | int(first)])
    if first:
        head += seq_len.to_bytes(SEQUENCE_LEN_BYTES, "big")
    body = head + chunk
    return body + bytes(SHARE_BYTES - len(body))


def blob_shares(ns: bytes, data: bytes) -> list[bytes]:
    """Split a blob into shares (``data`` must not be empty)."""
    if not data:
        raise ShareError("a blob must hold at least one byte")
    if len(data) >= 1 << (8 * SEQUENCE_LEN_BYTES):
        raise ShareError("blob too large for a 4-byte sequence length")
    out = [_share(ns, True, len(data), data[:FIRST_SHARE_CAPACITY])]
    for i in range(FIRST_SHARE_CAPACITY, len(data), CONTINUATION_CAPACITY):
        out.append(_share(ns, False, 0, data[i : i + CONTINUATION_CAPACITY]))
    return out


def padding_share(ns: bytes) -> bytes:
    return _share(ns, True, 0, b"")


def parse_blobs(shares: Sequence[bytes]) -> list[tuple[int, int, bytes]]:
    """The blobs in a run of shares of one namespace: ``(start, end, data)`` per blob, indices
    relative to ``shares``. Padding shares are skipped. Raises :class:`ShareError`."""
    out: list[tuple[int, int, bytes]] = []
    i = 0
    while i < len(shares):
        s = shares[i]
        if len(s) != SHARE_BYTES:
            raise ShareError(f"share {i} has {len(s)} bytes, not {SHARE_BYTES}")
        info = s[NAMESPACE_BYTES]
        if info >> 1 != SHARE_VERSION:
            raise ShareError(f"share {i} has share version {info >> 1}")
        if not info & 1:
            raise ShareError(f"share {i} continues a blob that did not start in this range")
        p = NAMESPACE_BYTES + 1
        seq_len = int.from_bytes(s[p : p + SEQUENCE_LEN_BYTES], "big")
        if seq_len == 0:
            i += 1
            continue
        n = shares_needed(seq_len)
        if i + n > len(shares):
            raise ShareError(f"the blob starting at share {i} runs past the range")
        data = bytearray(s[p + SEQUENCE_LEN_BYTES :])
        for j in range(i + 1, i + n):
            c = shares[j]
            if len(c) != SHARE_BYTES or c[:NAMESPACE_BYTES] != s[:NAMESPACE_BYTES]:
                raise ShareError(f"share {j} does not continue the blob of share {i}")
            if c[NAMESPACE_BYTES] != SHARE_VERSION << 1:
                raise ShareError(f"share {j} should be a continuation share")
            data += c[NAMESPACE_BYTES + 1 :]
        if any(data[seq_len:]):
            raise ShareError(f"the blob starting at share {i} has non-zero padding")
        out.append((i, i + n, bytes(data[:seq_len])))
        i += n
    return out


def namespace_shares(
    ns: bytes, start: int, end: int, blobs: Sequence[tuple[int, int, bytes]]
) -> list[bytes]:
    """Rebuild the shares ``[start, end)`` of namespace ``ns`` from its blobs (``(start, end,
    data)`` with block indices): blob shares where a blob sits, padding shares between. What a
    reader does with a DA node's answer before checking the namespace proof."""
    out: list[bytes] = []
    pos = start
    for b_start, b_end, data in sorted(blobs):
        if not pos <= b_start < b_end <= end:
            raise ShareError(f"blob at [{b_start}, {b_end}) overlaps or leaves [{start}, {end})")
        out += [padding_share(ns)] * (b_start - pos)
        mine = blob_shares(ns, data)
        if len(mine) != b_end - b_start:
            raise ShareError(f"blob at [{b_start}, {b_end}) has {len(mine)} shares")
        out += mine
        pos = b_end
    return out + [padding_share(ns)] * (end - pos)


# --- layout and commitments ----------------------------------------------------------------


def _pow2_ceil(n: int) -> int:
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


def subtree_width(share_count: int) -> int:
    """Celestia's SubtreeWidth: ``ceil(n / 64)`` rounded up to a power of two, capped by the
    smallest square (power-of-two side) that fits the blob."""
    by_threshold = _pow2_ceil(math.ceil(share_count / SUBTREE_ROOT_THRESHOLD))
    min_square = _pow2_ceil(math.isqrt(share_count - 1) + 1)  # ceil(sqrt(n))
    return min(by_threshold, min_square)


def mountain_sizes(total: int, max_tree: int) -> list[int]:
    """Trees of ``max_tree`` leaves, then the remainder as decreasing powers of two."""
    out: list[int] = []
    while total >= max_tree:
        out.append(max_tree)
        total -= max_tree
    while total:
        size = 1 << (total.bit_length() - 1)
        out.append(size)
        total -= size
    return out


def commitment_spans(start: int, share_count: int) -> list[tuple[int, int]]:
    """The subtree spans a blob of ``share_count`` shares at ``start`` is committed by."""
    spans = []
    lo = start
    for size in mountain_sizes(share_count, subtree_width(share_count)):
        spans.append((lo, lo + size))
        lo += size
    return spans


@dataclass(frozen=True, slots=True)
class Placement:
    """Where one blob sits in a block: shares ``[start, end)``."""

    index: int  # position in the list given to :func:`layout`
    namespace: bytes
    start: int
    end: int


def layout(blobs: Sequence[tuple[bytes, bytes]]) -> tuple[list[bytes], list[Placement]]:
    """The shares of a block holding ``blobs`` (``(namespace, data)`` pairs), and where each
    blob landed. Blobs are sorted by namespace (stable) and aligned to their subtree width."""
    order = sorted(range(len(blobs)), key=lambda i: blobs[i][0])
    shares: list[bytes] = []
    placed: list[Placement] = []
    for i in order:
        ns, data = blobs[i]
        mine = blob_shares(ns, data)
        w = subtree_width(len(mine))
        gap = -len(shares) % w
        if gap:
            shares += [padding_share(shares[-1][:NAMESPACE_BYTES])] * gap
        placed.append(Placement(i, ns, len(shares), len(shares) + len(mine)))
        shares += mine
    placed.sort(key=lambda p: p.index)
    return shares, placed


def layout_bound(share_counts: Sequence[int]) -> int:
    """An upper bound of a block's share count for blobs of these sizes, whatever their order."""
    return sum(n + subtree_width(n) - 1 for n in share_counts)
