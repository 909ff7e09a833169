"""Compression of batch data: zlib, zstd and brotli behind a one-byte tag, bounded on decode.

The tag travels in the payload header (see :mod:`sequencer_node.batching.codec`), so a
follower decodes any batch whatever the poster's setting. The default is chosen from
``scripts/bench_compression.py`` (``bench-results/compression.txt``, summarised in
``docs/batch-format.md``): the bytes per transaction it saves on L1 dominate, since L1 data is
the scarce resource and compression runs once per batch.

Decompression never produces more than ``max_output`` bytes: every algorithm is driven as a
stream with an output limit, so a small "zip bomb" payload cannot exhaust memory.
"""

from __future__ import annotations

import enum
import zlib

import brotli
import zstandard


class Algorithm(enum.IntEnum):
    NONE = 0
    ZLIB = 1
    ZSTD = 2
    BROTLI = 3


#: Chosen from the measurements in docs/batch-format.md.
DEFAULT_ALGORITHM = Algorithm.BROTLI
#: Levels used when compressing. Batches are compressed once, off the consensus path, and
#: every byte saved is paid on L1, so the levels are high; but brotli 10/11 cost 7-19x the
#: CPU of brotli 9 for under 1 % fewer bytes (bench-results/compression.txt), so 9.
LEVELS: dict[Algorithm, int] = {
    Algorithm.NONE: 0,
    Algorithm.ZLIB: 9,
    Algorithm.ZSTD: 19,
    Algorithm.BROTLI: 9,
}
#: Default bound of decompressed batch data (a batch of 21 full blobs at a 10x ratio).
DEFAULT_MAX_OUTPUT = 32 * 1024 * 1024

_CHUNK = 64 * 1024


class CompressionError(ValueError):
    """Compressed data that is corrupt, truncated, of an unknown algorithm, or too large."""


def parse_algorithm(name: str) -> Algorithm:
    """``"zlib"`` / ``"zstd"`` / ``"brotli"`` / ``"none"`` -> :class:`Algorithm`."""
    try:
        return Algorithm[name.strip().upper()]
    except KeyError:
        choices = ", ".join(a.name.lower() for a in Algorithm)
        raise ValueError(f"unknown compression {name!r}; choose one of {choices}") from None


def compress(data: bytes, algorithm: Algorithm, *, level: int | None = None) -> bytes:
    lvl = LEVELS[algorithm] if level is None else level
    if algorithm is Algorithm.NONE:
        return bytes(data)
    if algorithm is Algorithm.ZLIB:
        return zlib.compress(data, lvl)
    if algorithm is Algorithm.ZSTD:
        # No content size in the frame: the decoder must not trust a declared size anyway.
        c = zstandard.ZstdCompressor(level=lvl, write_content_size=False, write_checksum=True)
        return bytes(c.compress(data))
    if algorithm is Algorithm.BROTLI:
        return bytes(brotli.compress(data, quality=lvl))
    raise ValueError(f"unknown compression algorithm {algorithm!r}")


def decompress(data: bytes, algorithm: int, *, max_output: int = DEFAULT_MAX_OUTPUT) -> bytes:
    """Inverse of :func:`compress`, refusing output beyond ``max_output`` bytes.

    Raises:
        CompressionError: unknown algorithm, corrupt or truncated data, trailing bytes,
            or more than ``max_output`` bytes of output.
    """
    try:
        algo = Algorithm(algorithm)
    except ValueError:
        raise CompressionError(f"unknown compression algorithm tag {algorithm}") from None
    if algo is Algorithm.NONE:
        if len(data) > max_output:
            raise CompressionError(f"{len(data)} bytes exceed the limit of {max_output}")
        return bytes(data)
    try:
        if algo is Algorithm.ZLIB:
            return _zlib(data, max_output)
        if algo is Algorithm.ZSTD:
            return _zstd(data, max_output)
        return _brotli(data, max_output)
    except CompressionError:
        raise
    except (zlib.error, zstandard.ZstdError, brotli.error) as e:
        raise CompressionError(f"corrupt {algo.name.lower()} data: {e}") from None


def _too_large(max_output: int) -> CompressionError:
    return CompressionError(f"decompressed data exceeds the limit of {max_output} bytes")


def _zlib(data: bytes, max_output: int) -> bytes:
    d = zlib.decompressobj()
    out = d.decompress(data, max_output + 1)
    if len(out) > max_output:
        raise _too_large(max_output)
    if d.unconsumed_tail:
        # The limit stopped it with input left: more output would follow.
        raise _too_large(max_output)
    if not d.eof:
        raise CompressionError("truncated zlib data")
    if d.unused_data:
        raise CompressionError("trailing bytes after the zlib stream")
    return out


def _zstd(data: bytes, max_output: int) -> bytes:
    d = zstandard.ZstdDecompressor().decompressobj()
    parts: list[bytes] = []
    total = 0
    # The zstandard binding has no output limit per call, so the input goes in small pieces:
    # a block header of 3 bytes can expand to at most 128 KiB (an RLE block), so one piece
    # yields at most ~11 MiB and memory stays near max_output + that.
    step = 256
    for i in range(0, len(data), step):
        piece = d.decompress(data[i : i + step])
        total += len(piece)
        if total > max_output:
            raise _too_large(max_output)
        parts.append(piece)
        if d.eof and i + step < len(data):
            raise CompressionError("trailing bytes after the zstd frame")
    if not d.eof:
        raise CompressionError("truncated zstd data")
    if d.unused_data:
        raise CompressionError("trailing bytes after the zstd frame")
    return b"".join(parts)


def _brotli(data: bytes, max_output: int) -> bytes:
    d = brotli.Decompressor()
    parts: list[bytes] = []
    total = 0
    pending = data
    while True:
        if pending and d.can_accept_more_data():
            piece = d.process(pending[:_CHUNK], output_buffer_limit=_CHUNK)
            pending = pending[_CHUNK:]
        else:
            piece = d.process(b"", output_buffer_limit=_CHUNK)
        total += len(piece)
        if total > max_output:
            raise _too_large(max_output)
        parts.append(piece)
        if d.is_finished():
            if pending:
                raise CompressionError("trailing bytes after the brotli stream")
            return b"".join(parts)
        if not piece and not pending and d.can_accept_more_data():
            raise CompressionError("truncated brotli data")
