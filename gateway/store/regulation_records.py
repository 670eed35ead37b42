"""What a regulation is, as stored: the request, the status of each of its steps, and the
subjects it suppresses or stops tracking.

The names follow Segment's Public API (`regulationType`, `subjectType`, `subjectIds`), so
that its scripts port over; the statuses are Segment's too.
"""

from __future__ import annotations

from typing import Literal

import msgspec

RegulationType = Literal[
    "SUPPRESS_ONLY",
    "SUPPRESS_WITH_DELETE",
    "DELETE_ONLY",
    "UNSUPPRESS",
    "NO_TRACK",
    "TRACK",
    "ACCESS",
]
SubjectType = Literal["USER_ID", "ANONYMOUS_ID"]
Status = Literal["INITIALIZED", "RUNNING", "FINISHED", "FAILED", "PARTIAL_SUCCESS", "NOT_SUPPORTED"]

TYPES: tuple[str, ...] = RegulationType.__args__  # type: ignore[attr-defined]
STATUSES: tuple[str, ...] = Status.__args__  # type: ignore[attr-defined]
DONE = frozenset({"FINISHED", "FAILED", "NOT_SUPPORTED"})
"""A step in one of these is over."""

SUBJECTS = "suppression"
"""The step that changes the suppressed or no-track subjects (the API does it at once)."""
STREAMS = "streams"
"""The step over the partition streams and the dead letters (any worker does it)."""
DESTINATION = "destination:"
"""The prefix of the step of one destination (a worker that has it does it)."""

DELETES = frozenset({"SUPPRESS_WITH_DELETE", "DELETE_ONLY"})
WORKER_TYPES = DELETES | {"ACCESS"}
"""The types with steps a worker does."""


class Regulation(msgspec.Struct, kw_only=True):
    """One request, as it was made."""

    id: str
    regulationType: RegulationType
    subjectType: SubjectType
    subjectIds: list[str]
    sourceId: str | None = None
    """Only this source's messages; every source's when None."""
    createdAt: float
    accessTtl: float = 0.0
    """ACCESS: seconds the files stay downloadable once the last step is over."""


class Step(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Where one store (the streams, a destination) is with a regulation."""

    status: Status
    detail: str = ""
    updatedAt: float = 0.0
    finishedAt: float | None = None
    cursor: list[str] = []
    """Progress of a resumable step: the stream and the last entry id it went over."""
    count: int = 0
    """Messages it removed (a delete) or collected (an access)."""


class Capabilities(msgspec.Struct, kw_only=True):
    """What a worker's destination can do, as the worker registers it."""

    kind: str
    delete: bool
    access: bool
    group: str
    seenAt: float


def member(scope: str | None, subject_type: str, subject_id: str) -> str:
    """A subject as stored in the suppressed and no-track sets: the source it is limited
    to (empty for all), `U` or `A`, and the id, separated by a unit separator."""
    kind = "U" if subject_type == "USER_ID" else "A"
    return f"{scope or ''}\x1f{kind}\x1f{subject_id}"


def parse_member(text: str) -> tuple[str | None, str, str]:
    """(scope, `USER_ID` or `ANONYMOUS_ID`, id) of a stored subject."""
    scope, kind, subject_id = text.split("\x1f", 2)
    return scope or None, "USER_ID" if kind == "U" else "ANONYMOUS_ID", subject_id


def overall(steps: dict[str, Step]) -> Status:
    """The regulation's status from its steps' (Segment's rules)."""
    statuses = {s.status for s in steps.values()}
    if not statuses or statuses <= {"FINISHED", "NOT_SUPPORTED"}:
        return "FINISHED"
    if not statuses <= DONE:
        return "RUNNING" if statuses - {"INITIALIZED", "NOT_SUPPORTED"} else "INITIALIZED"
    return "FAILED" if "FINISHED" not in statuses else "PARTIAL_SUCCESS"
