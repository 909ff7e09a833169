"""``0x``-prefixed hex, the one way bytes appear in JSON, logs and command output.

Every HTTP API, genesis file and command line of the project writes bytes as lowercase
``0x``-prefixed hex; :func:`to_hex` writes it and :func:`from_hex` reads it back with an error
that names the value and the expected size.
"""

from __future__ import annotations


def to_hex(data: bytes) -> str:
    """``b"\\x01\\xab"`` -> ``"0x01ab"``."""
    return "0x" + data.hex()


def opt_hex(data: bytes | None) -> str | None:
    """:func:`to_hex`, with ``None`` kept as ``None`` (JSON ``null``)."""
    return None if data is None else to_hex(data)


def from_hex(text: str, size: int | None = None, what: str = "value") -> bytes:
    """Bytes from hex with or without ``0x``; ``size`` (when given) is the exact length.

    Raises ValueError saying what ``what`` should have been.
    """
    try:
        raw = bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        raise ValueError(f"{what} {text!r} is not hex") from None
    if size is not None and len(raw) != size:
        raise ValueError(f"{what} {text!r} is not {size} bytes of 0x-hex (got {len(raw)})")
    return raw
