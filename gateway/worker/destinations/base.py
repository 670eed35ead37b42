"""The `Destination` interface: send a batch, say which messages failed and whether to retry."""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Mapping, Sequence
from typing import ClassVar

from gateway.worker.message import Message
from gateway.worker.subject import Subject


@dataclasses.dataclass(frozen=True, slots=True)
class Failure:
    """Why one message was not accepted.

    `retry=True`: the failure may pass (an outage, a rate limit, a rejection an operator can
    fix); the message is tried again later, until the worker's attempt limit.
    `retry=False`: sending it again cannot help; it goes to the dead letters at once.
    """

    error: str
    retry: bool = True


@dataclasses.dataclass(frozen=True, slots=True)
class Result:
    """What became of a batch: every message not in `failed` (by index) was accepted."""

    failed: Mapping[int, Failure] = dataclasses.field(default_factory=dict)

    @classmethod
    def all_failed(cls, size: int, error: str, retry: bool = True) -> Result:
        """The whole batch failed for one reason."""
        failure = Failure(error, retry)
        return cls({index: failure for index in range(size)})

    @property
    def ok(self) -> bool:
        """Every message was accepted."""
        return not self.failed


class Destination(abc.ABC):
    """Where a worker delivers messages. Subclass it and implement `send`; implement
    `delete` and `access` (and say so in `can_delete`, `can_access`) if regulations can
    reach what it holds (docs/regulations.md).

    The worker constructs a destination as `cls(name, **options)`, where the options come
    from the TOML file (or the command line); reject unknown options with a `TypeError` or
    `ValueError`. `send` gets at most the worker's batch size of messages and must return
    only once the accepted ones are safe (the worker acknowledges them right after).
    """

    kind: ClassVar[str] = ""
    """The name of the built-in (`http`, `file`, `stdout`); empty for your own classes."""

    consent: tuple[str, ...] = ()
    """The consent categories a message must grant to be sent here (`consent = [...]` in
    its table; `gateway.worker.consent`)."""

    def __init__(self, name: str) -> None:
        self.name = name

    @abc.abstractmethod
    async def send(self, batch: Sequence[Message]) -> Result:
        """Deliver `batch`; an exception counts as a retryable failure of the whole batch."""

    def bind(self, consumer: str) -> None:  # noqa: B027 - optional hook
        """Told the worker's consumer name before the first `send` (the archive names its
        files after it)."""

    async def close(self) -> None:  # noqa: B027 - optional hook, most destinations need none
        """Release what the destination holds (connections, files)."""

    @property
    def can_delete(self) -> bool:
        """Whether `delete` is implemented (a regulation's status says NOT_SUPPORTED if not)."""
        return False

    @property
    def can_access(self) -> bool:
        """Whether `access` is implemented."""
        return False

    async def delete(self, subject: Subject) -> int | None:
        """Remove (or ask the service to remove) every message of `subject` it holds; how
        many, or None when it cannot tell. Called again after a worker was killed half-way:
        deleting twice must be harmless. An exception fails the regulation's step."""
        raise NotImplementedError(f"{self.describe()} cannot delete")

    async def access(self, subject: Subject) -> bytes:
        """Every message of `subject` it holds, as NDJSON (for an ACCESS regulation)."""
        raise NotImplementedError(f"{self.describe()} cannot read messages back")

    def describe(self) -> str:
        """One line for the logs, without secrets."""
        return f"{self.name} ({self.kind or type(self).__qualname__})"
