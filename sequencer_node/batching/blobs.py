"""Packing bytes into EIP-4844 blobs (the OP Stack's scheme) and back, strictly.

A blob is 4096 field elements of 32 bytes, and each must be below the BLS12-381 scalar
modulus or KZG refuses it. The OP Stack's encoding (``op-service/eth/blob.go``; see
``docs/research/eip4844.md`` section 8) keeps the top two bits of every element's first byte
at zero, which is always below the modulus (``0x73ed...``), and still uses 254 of each
element's 256 bits:

* the data runs in 1024 *rounds*; a round turns 127 bytes into 4 elements (128 bytes): four
  31-byte chunks fill bytes 1..31 of the elements, and three more bytes (24 bits) are split
  into four 6-bit values that fill byte 0 of each element;
* round 0 starts with the encoding version (``0x00``) and the data length as 3 big-endian
  bytes, so 27 data bytes fit in its first chunk;
* hence ``MAX_BLOB_DATA_SIZE = (4 * 31 + 3) * 1024 - 4 = 130044`` usable bytes per blob.

Decoding rejects, with a :class:`BlobDecodeError` that says what is wrong: a wrong size, a
wrong version, a length above the maximum, an element with either top bit set, and any
non-zero byte after the declared length (in the last round or in the unused rounds), so
one payload has exactly one blob encoding.

A payload longer than one blob is cut into ``MAX_BLOB_DATA_SIZE`` pieces, one per blob, in
order (:func:`pack_blobs` / :func:`unpack_blobs`).
"""

from __future__ import annotations

from collections.abc import Sequence

from sequencer_node.wire.blobs import (
    BLS_MODULUS,
    BYTES_PER_BLOB,
    BYTES_PER_FIELD_ELEMENT,
    FIELD_ELEMENTS_PER_BLOB,
)

ENCODING_VERSION = 0
ROUNDS = FIELD_ELEMENTS_PER_BLOB // 4  # 1024
MAX_BLOB_DATA_SIZE = (4 * 31 + 3) * ROUNDS - 4  # 130044
#: The most blobs one payload may span (a bound for decoders; the L1 limits per transaction
#: and per block are lower and are enforced by the poster).
MAX_BLOBS_PER_PAYLOAD = 21

assert MAX_BLOB_DATA_SIZE == 130044
assert BYTES_PER_BLOB == ROUNDS * 4 * BYTES_PER_FIELD_ELEMENT
assert BLS_MODULUS >> 254 == 1  # so any element below 2**254 (top two bits clear) is valid


class BlobDecodeError(ValueError):
    """Bytes that are not a canonical OP-Stack-encoded blob (or blob sequence)."""


def encode_blob(data: bytes) -> bytes:
    """One blob (131072 bytes) carrying ``data`` (at most 130044 bytes)."""
    n = len(data)
    if n > MAX_BLOB_DATA_SIZE:
        raise ValueError(f"{n} bytes do not fit in one blob (at most {MAX_BLOB_DATA_SIZE})")
    # The version/length prefix is 4 bytes of the stream; with it, every round reads exactly
    # 127 consecutive bytes of `stream` (zero-padded), which keeps the loop simple and fast.
    stream = bytes([ENCODING_VERSION]) + n.to_bytes(3, "big") + data
    used_rounds = max(1, -(-len(stream) // 127))
    stream += bytes(used_rounds * 127 - len(stream))
    out = bytearray(BYTES_PER_BLOB)
    for r in range(used_rounds):
        s = r * 127
        w = r * 128
        # layout of one round's 127 stream bytes: c0 (31) x c1 (31) y c2 (31) z c3 (31)
        x = stream[s + 31]
        y = stream[s + 63]
        z = stream[s + 95]
        out[w] = x & 0x3F
        out[w + 1 : w + 32] = stream[s : s + 31]
        out[w + 32] = (y & 0x0F) | ((x & 0xC0) >> 2)
        out[w + 33 : w + 64] = stream[s + 32 : s + 63]
        out[w + 64] = z & 0x3F
        out[w + 65 : w + 96] = stream[s + 64 : s + 95]
        out[w + 96] = ((z & 0xC0) >> 2) | ((y & 0xF0) >> 4)
        out[w + 97 : w + 128] = stream[s + 96 : s + 127]
    return bytes(out)


def decode_blob(blob: bytes) -> bytes:
    """The data carried by one blob.

    Raises:
        BlobDecodeError: the blob is not exactly what :func:`encode_blob` produces.
    """
    if len(blob) != BYTES_PER_BLOB:
        raise BlobDecodeError(f"a blob has {BYTES_PER_BLOB} bytes, got {len(blob)}")
    for i in range(0, BYTES_PER_BLOB, BYTES_PER_FIELD_ELEMENT):
        if blob[i] & 0xC0:
            raise BlobDecodeError(
                f"field element {i // 32} has a top bit set (byte 0x{blob[i]:02x}); "
                "this is not an OP-Stack blob encoding"
            )
    if blob[1] != ENCODING_VERSION:
        raise BlobDecodeError(f"unknown blob encoding version {blob[1]} (expected 0)")
    n = int.from_bytes(blob[2:5], "big")
    if n > MAX_BLOB_DATA_SIZE:
        raise BlobDecodeError(f"declared length {n} exceeds the maximum {MAX_BLOB_DATA_SIZE}")
    used_rounds = max(1, -(-(n + 4) // 127))
    stream = bytearray()
    for r in range(used_rounds):
        w = r * 128
        b0, b1, b2, b3 = blob[w], blob[w + 32], blob[w + 64], blob[w + 96]
        x = (b0 & 0x3F) | ((b1 & 0x30) << 2)
        y = (b1 & 0x0F) | ((b3 & 0x0F) << 4)
        z = (b2 & 0x3F) | ((b3 & 0x30) << 2)
        stream += blob[w + 1 : w + 32]
        stream.append(x)
        stream += blob[w + 33 : w + 64]
        stream.append(y)
        stream += blob[w + 65 : w + 96]
        stream.append(z)
        stream += blob[w + 97 : w + 128]
    if any(stream[4 + n :]):
        raise BlobDecodeError(f"non-zero bytes after the declared length {n}")
    if any(blob[used_rounds * 128 :]):
        raise BlobDecodeError(f"non-zero bytes after the last used round ({used_rounds})")
    return bytes(stream[4 : 4 + n])


def blobs_needed(n_bytes: int) -> int:
    """How many blobs a payload of ``n_bytes`` occupies (at least one)."""
    return max(1, -(-n_bytes // MAX_BLOB_DATA_SIZE))


def pack_blobs(payload: bytes, *, max_blobs: int = MAX_BLOBS_PER_PAYLOAD) -> list[bytes]:
    """Cut ``payload`` into 130044-byte pieces, one blob each, in order.

    An empty payload still makes one blob (a batch always has a blob to commit to).

    Raises:
        ValueError: the payload needs more than ``max_blobs`` blobs.
    """
    count = blobs_needed(len(payload))
    if count > max_blobs:
        raise ValueError(
            f"a payload of {len(payload)} bytes needs {count} blobs, more than {max_blobs}; "
            "build smaller batches"
        )
    return [
        encode_blob(payload[i * MAX_BLOB_DATA_SIZE : (i + 1) * MAX_BLOB_DATA_SIZE])
        for i in range(count)
    ]


def unpack_blobs(blobs: Sequence[bytes]) -> bytes:
    """The payload of :func:`pack_blobs`: every blob but the last must be full.

    Raises:
        BlobDecodeError: a blob is malformed, the sequence is empty or too long, or a blob
            before the last is not full (so one payload has exactly one blob sequence).
    """
    if not blobs:
        raise BlobDecodeError("no blobs")
    if len(blobs) > MAX_BLOBS_PER_PAYLOAD:
        raise BlobDecodeError(f"{len(blobs)} blobs, at most {MAX_BLOBS_PER_PAYLOAD} allowed")
    parts = []
    for i, blob in enumerate(blobs):
        try:
            part = decode_blob(blob)
        except BlobDecodeError as e:
            raise BlobDecodeError(f"blob {i}: {e}") from None
        if i < len(blobs) - 1 and len(part) != MAX_BLOB_DATA_SIZE:
            raise BlobDecodeError(
                f"blob {i} carries {len(part)} bytes but is not the last; "
                f"every blob but the last must be full ({MAX_BLOB_DATA_SIZE} bytes)"
            )
        if i == len(blobs) - 1 and i > 0 and not part:
            raise BlobDecodeError(f"blob {i} is an empty trailing blob")
        parts.append(part)
    return b"".join(parts)
