"""Length-prefixed frames: a 4-byte big-endian length, then that many bytes.

Goals / plan (as h11's receive buffer): accept bytes in arbitrary chunks, hand out whole
frames, never buffer more than one maximal frame plus one read, and refuse a bad length
*before* allocating for it. The length covers the frame body only (for encrypted frames, the
ciphertext including its 16-byte tag). A zero-length frame is never valid.
"""

from __future__ import annotations

import enum
import struct

from sequencer_node.shell.errors import RemoteProtocolError
from sequencer_node.shell.scoring import Offense

HEADER = struct.Struct(">I")
HEADER_BYTES = HEADER.size
#: AEAD tag (16) + 1 flag byte + slack: the largest wire message (8 MiB) still fits.
FRAME_OVERHEAD = 64
DEFAULT_MAX_FRAME = 8 * 1024 * 1024 + FRAME_OVERHEAD


class NeedData(enum.Enum):
    NEED_DATA = "NEED_DATA"


NEED_DATA = NeedData.NEED_DATA


def encode_frame(body: bytes, max_frame: int = DEFAULT_MAX_FRAME) -> bytes:
    """The framed bytes of ``body`` (raises ValueError if it is empty or too big)."""
    if not 0 < len(body) <= max_frame:
        raise ValueError(f"frame body of {len(body)} bytes is outside [1, {max_frame}]")
    return HEADER.pack(len(body)) + body


class FrameDecoder:
    """Turns a byte stream into frame bodies.

    Errors are :class:`RemoteProtocolError` (the stream cannot be trusted after one, so the
    caller closes it).
    """

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buf = bytearray()
        self._pos = 0
        self._eof = False

    @property
    def buffered(self) -> int:
        return len(self._buf) - self._pos

    def receive_data(self, data: bytes | bytearray) -> None:
        """Add bytes from the stream; ``b""`` means end of stream."""
        if self._eof:
            raise RuntimeError("data received after end of stream")
        if not data:
            self._eof = True
            return
        if self._pos and self._pos * 2 >= len(self._buf):
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    def next_frame(self) -> bytes | NeedData:
        """The next whole frame body, or NEED_DATA.

        Raises:
            RemoteProtocolError: OVERSIZED_FRAME / MALFORMED_FRAME for a bad length,
                TRUNCATED_FRAME if the stream ended inside a frame.
        """
        avail = len(self._buf) - self._pos
        if avail >= HEADER_BYTES:
            (length,) = HEADER.unpack_from(self._buf, self._pos)
            if length > self.max_frame:
                raise RemoteProtocolError(
                    f"frame of {length} bytes exceeds the limit of {self.max_frame}",
                    Offense.OVERSIZED_FRAME,
                )
            if length == 0:
                raise RemoteProtocolError("zero-length frame", Offense.MALFORMED_FRAME)
            end = self._pos + HEADER_BYTES + length
            if len(self._buf) >= end:
                body = bytes(self._buf[self._pos + HEADER_BYTES : end])
                self._pos = end
                if self._pos == len(self._buf):
                    self._buf.clear()
                    self._pos = 0
                return body
        if self._eof and avail:
            raise RemoteProtocolError(
                f"stream ended inside a frame ({avail} bytes pending)", Offense.TRUNCATED_FRAME
            )
        return NEED_DATA

    @property
    def at_eof(self) -> bool:
        """True once the stream ended and every whole frame was taken."""
        return self._eof and self.buffered == 0
