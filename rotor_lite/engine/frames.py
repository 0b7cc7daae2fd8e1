"""The messages between the server and its delivery helpers, and how they travel.

A frame is a 4-byte big-endian length, then that many bytes of MessagePack (msgspec, typed): no
pickling, so a helper can only ever receive these structs. One frame carries a batch (the deliveries
one claim took, or the outcomes that finished in one pass of a helper's loop), so the cost of a frame
is shared by its items.
"""

from __future__ import annotations

import asyncio
import struct

import msgspec

from rotor_lite.engine.sending import Answer, Delivery, Outcome, Post, SenderSettings
from rotor_lite.logs import LogFormat

__all__ = ["MAX_FRAME_BYTES", "Batch", "FrameError", "Results", "Setup", "decode_to_helper",
           "decode_from_helper", "encode", "read_frame"]

MAX_FRAME_BYTES = 256 * 1024 * 1024  # far beyond any batch: a larger length means a broken stream
_HEADER = struct.Struct(">I")


class Setup(msgspec.Struct, tag=True, array_like=True, kw_only=True):
    """The first frame a helper gets: how to send, and how to log."""

    sender: SenderSettings
    log_level: str
    log_format: LogFormat


class Batch(msgspec.Struct, tag=True, array_like=True, kw_only=True):
    """Work for a helper, each item under a number the server chose."""

    deliveries: list[tuple[int, Delivery]] = msgspec.field(default_factory=list)
    posts: list[tuple[int, Post]] = msgspec.field(default_factory=list)


class Results(msgspec.Struct, tag=True, array_like=True, kw_only=True):
    """What finished, under the numbers the items came with."""

    outcomes: list[tuple[int, Outcome]] = msgspec.field(default_factory=list)
    answers: list[tuple[int, Answer]] = msgspec.field(default_factory=list)


class FrameError(Exception):
    """The stream does not hold a valid frame: the other side is broken, so the pipe is given up."""


_encoder = msgspec.msgpack.Encoder()
_to_helper = msgspec.msgpack.Decoder(Setup | Batch)
_from_helper = msgspec.msgpack.Decoder(Results)


def encode(message: Setup | Batch | Results) -> bytes:
    """One frame: the length, then the message."""
    buffer = bytearray(_HEADER.size)
    _encoder.encode_into(message, buffer, _HEADER.size)
    _HEADER.pack_into(buffer, 0, len(buffer) - _HEADER.size)
    return bytes(buffer)


def decode_to_helper(payload: bytes) -> Setup | Batch:
    try:
        return _to_helper.decode(payload)
    except msgspec.DecodeError as exc:
        raise FrameError(f"not a message for a helper: {exc}") from exc


def decode_from_helper(payload: bytes) -> Results:
    try:
        return _from_helper.decode(payload)
    except msgspec.DecodeError as exc:
        raise FrameError(f"not a message from a helper: {exc}") from exc


def _length(header: bytes) -> int:
    (length,) = _HEADER.unpack(header)
    if length > MAX_FRAME_BYTES:
        raise FrameError(f"a frame of {length} bytes is larger than {MAX_FRAME_BYTES}")
    return int(length)


async def read_frame(reader: asyncio.StreamReader) -> bytes | None:
    """The next frame's payload; None at a clean end of the stream (between frames).

    Raises FrameError when the stream ends inside a frame or announces an impossible length.
    """
    try:
        header = await reader.readexactly(_HEADER.size)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise FrameError("the stream ended inside a frame's length") from exc
        return None
    try:
        return await reader.readexactly(_length(header))
    except asyncio.IncompleteReadError as exc:
        raise FrameError("the stream ended inside a frame") from exc

