"""`stdout`: print each message as one NDJSON line (logs go to stderr)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import BinaryIO, ClassVar

from gateway.worker.destinations.base import Destination, Result
from gateway.worker.message import Message


class StdoutDestination(Destination):
    """One JSON line per message on standard output, flushed per batch."""

    kind: ClassVar[str] = "stdout"

    def __init__(self, name: str, stream: BinaryIO | None = None) -> None:
        super().__init__(name)
        self._stream = stream

    async def send(self, batch: Sequence[Message]) -> Result:
        """Write and flush the batch; a closed pipe fails it (retryable)."""
        stream = self._stream or sys.stdout.buffer
        try:
            stream.write(b"".join(m.data + b"\n" for m in batch))
            stream.flush()
        except OSError as exc:
            return Result.all_failed(len(batch), f"cannot write to stdout: {exc}")
        return Result()
