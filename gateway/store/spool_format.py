"""The spool's record format: an entry framed with its length and a checksum, and reading
records back from a segment file.

Each record is::

    length (u32 LE) | crc32 of length and payload (u32 LE) | payload (msgpack Entry)

A crash can leave the last record of a segment torn (a short or garbled write); the
reader detects it by its length or CRC and stops there: a torn record belongs to a write
that never completed, so no request was answered for it. The files themselves (segments,
slots, fsync) are `gateway.store.spool`'s.
"""

from __future__ import annotations

import dataclasses
import logging
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import msgspec

from gateway.store.entry import Entry

log = logging.getLogger(__name__)

HEADER = struct.Struct("<II")
MAX_RECORD = 64 * 1024 * 1024
"""No entry is this large (messages are limited to kilobytes); a longer length is damage."""

_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(Entry).decode


def frame(entry: Entry) -> bytes:
    """One entry as a spool record."""
    payload = _encode(entry)
    length = len(payload).to_bytes(4, "little")
    return length + zlib.crc32(payload, zlib.crc32(length)).to_bytes(4, "little") + payload


@dataclasses.dataclass
class Chunk:
    """Records read from a segment: the entries, where reading stopped, and whether it ended."""

    entries: list[Entry]
    offset: int
    end: bool


def read_chunk(path: Path, offset: int, max_records: int, max_bytes: int) -> Chunk:
    """Up to `max_records` entries (about `max_bytes`) of the segment at `path` from `offset`.

    `end` is true at the end of the segment, and at a torn or damaged record: whatever
    follows one cannot be trusted, and is logged and skipped.
    """
    entries: list[Entry] = []
    read = 0
    with path.open("rb") as file:
        file.seek(offset)
        while len(entries) < max_records and read < max_bytes:
            header = file.read(HEADER.size)
            if not header:
                return Chunk(entries, offset, True)
            payload = _payload(file, header)
            if isinstance(payload, str):
                log.error("spool %s: %s at byte %d; skipping the rest", path, payload, offset)
                return Chunk(entries, offset, True)
            try:
                entries.append(_decode(payload))
            except msgspec.DecodeError as exc:  # CRC fine yet undecodable: a bug, not a tear
                log.error(
                    "spool %s: undecodable record at byte %d (%s); skipped", path, offset, exc
                )
            offset += HEADER.size + len(payload)
            read += HEADER.size + len(payload)
    return Chunk(entries, offset, False)


def _payload(file: BinaryIO, header: bytes) -> bytes | str:
    """The payload of the record whose `header` was just read, or what is wrong with it."""
    if len(header) < HEADER.size:
        return "torn record header"
    length, crc = HEADER.unpack(header)
    if length > MAX_RECORD:
        return f"impossible record length {length}"
    payload: bytes = file.read(length)
    if len(payload) < length:
        return f"torn record ({len(payload)} of {length} bytes)"
    if zlib.crc32(payload, zlib.crc32(header[:4])) != crc:
        return "record CRC mismatch"
    return payload
