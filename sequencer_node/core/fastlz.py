"""The length of FastLZ (level 1) compressed data, without building it. Pure, deterministic.

The OP Stack's Fjord L1 fee prices a transaction by ``fastlzSize``, the size of its FastLZ
compression (specs: protocol/fjord/exec-engine.md, "Fjord L1-Cost fee changes (FastLZ
estimator)"; the compressor must behave as ``fastlz_compress`` of ariya/FastLZ, level 1, which
op-geth and Solady's ``LibZip.flzCompress`` follow). Only the length is needed, so this walks
the input as the level-1 compressor does (a 8192-entry hash table of 3-byte sequences, matches
at most 8191 bytes back, literal runs of up to 32 bytes, long matches split every 262 bytes)
and adds up what each emitted instruction would take, never allocating the output.

No maintained Python package provides it (the PyPI FastLZ wrappers are single 0.0.x releases
without the length-only form), hence this small counter; tests/core/test_fastlz.py checks it
against the vectors op-geth's and Besu's tests use.
"""

from __future__ import annotations

_HASH_MASK = 0x1FFF  # 13-bit hash: 8192 slots
_MAX_DISTANCE = 0x1FFF
#: Bytes at the end the compressor never starts a match in (FastLZ's ``ip_bound`` margin).
_TAIL = 13
_MAX_LITERALS = 32
_MAX_MATCH = 262


def _literal_run_len(count: int) -> int:
    """Bytes of ``count`` literals: runs of up to 32, each with a one-byte header."""
    full, rest = divmod(count, _MAX_LITERALS)
    return full * (_MAX_LITERALS + 1) + (rest + 1 if rest else 0)


def _match_len(length: int) -> int:
    """Bytes of the instructions for a match of ``length`` (as the compressor counts it):
    three per full 262-byte chunk, then two for a short tail, three for a long one."""
    chunks, tail = divmod(length - 1, _MAX_MATCH)
    return 3 * chunks + (3 if tail >= 6 else 2)


def fastlz_compressed_len(data: bytes) -> int:
    """How many bytes FastLZ level 1 compresses ``data`` to."""
    size = len(data)
    table = [0] * (_HASH_MASK + 1)

    def seq(i: int) -> int:
        return data[i] | data[i + 1] << 8 | data[i + 2] << 16

    def slot(v: int) -> int:
        return ((v * 2654435769) & 0xFFFFFFFF) >> 19 & _HASH_MASK

    out = 0
    anchor = 0  # first byte not yet emitted
    limit = size - _TAIL if size >= _TAIL else 0
    ip = 2
    while ip < limit:
        while True:  # find the next position whose 3 bytes were seen close enough before
            s = seq(ip)
            h = slot(s)
            ref = table[h]
            table[h] = ip
            if ip >= limit:
                break
            ip += 1
            if ip - 1 - ref <= _MAX_DISTANCE and s == seq(ref):
                break
        if ip >= limit:
            break
        ip -= 1
        if ip > anchor:
            out += _literal_run_len(ip - anchor)
        length = _common_len(data, ref + 3, ip + 3, limit + 9)
        out += _match_len(length)
        ip += length
        for _ in range(2):  # the compressor hashes the two positions after a match
            table[slot(seq(ip))] = ip
            ip += 1
        anchor = ip
    return out + _literal_run_len(size - anchor)


def _common_len(data: bytes, p: int, q: int, end: int) -> int:
    """The compressor's match extension from ``q`` against ``p``, up to ``end``: the count of
    equal bytes plus one when it stopped at a difference (the first differing byte is taken
    as part of the match's length and removed again by :func:`_match_len`)."""
    n = end - q
    for i in range(n):
        if data[p + i] != data[q + i]:
            return i + 1
    return n


__all__ = ["fastlz_compressed_len"]
