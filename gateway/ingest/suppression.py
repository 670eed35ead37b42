"""Which messages regulations drop, decided in memory on the hot path.

Every gateway process holds the suppressed and no-track subjects (`gateway.control`'s
poller swaps the table whole when the admin API changes them). A dropped message is
answered as accepted, so that clients do not retry it, and never reaches the committer:
nothing of it is written to Redis, the spool or any stream. Each drop is counted by reason.

The subjects are kept compact (`IdSet`, `Table`): 100,000 ids take about 1.2 MB, not the
11 MB of a `set` of strings.
"""

from __future__ import annotations

import uuid
from array import array
from bisect import bisect_left
from collections.abc import Iterable

from gateway.ingest.enrich import Arrival
from gateway.ingest.validate import MessageView
from gateway.ops.tally import Tally
from gateway.store.entry import Entry
from gateway.store.regulation_records import parse_member

TRACKED = frozenset({"track", "page", "screen"})
"""The types NO_TRACK drops from every caller (and `identify` from browsers)."""

SUPPRESSED = "suppressed"
NO_TRACK = "no_track"
"""The reasons a drop is counted under."""


class IdSet:
    """A set of strings as their 64-bit hashes, in a sorted array (8 bytes an id).

    Python's string hash is keyed per process (SipHash), so no client can make an id
    collide with a suppressed one on purpose; by chance, one lookup in 2**64 / size.
    """

    __slots__ = ("hashes",)

    def __init__(self, texts: Iterable[str]) -> None:
        self.hashes = array("q", sorted({hash(t) for t in texts}))

    def __contains__(self, text: str) -> bool:
        hashes, value = self.hashes, hash(text)
        index = bisect_left(hashes, value)
        return index < len(hashes) and hashes[index] == value

    def __len__(self) -> int:
        return len(self.hashes)


class Subjects:
    """The user and anonymous ids of one mode (suppressed, or no-track); an id limited to
    one source is held as `<source>\\x1f<id>`."""

    __slots__ = ("anonymous", "bare", "scoped", "size", "users")

    def __init__(self, members: Iterable[str]) -> None:
        users: list[str] = []
        anonymous: list[str] = []
        self.bare: list[str] = []
        """Every id without its source, for the table's prefilter."""
        self.scoped = False
        for member in members:
            scope, kind, subject = parse_member(member)
            self.bare.append(subject)
            if scope is not None:
                subject = f"{scope}\x1f{subject}"
                self.scoped = True
            (users if kind == "USER_ID" else anonymous).append(subject)
        self.users = IdSet(users)
        self.anonymous = IdSet(anonymous)
        self.size = len(self.users) + len(self.anonymous)

    def holds(self, user: str | None, anonymous: str | None, source: str) -> bool:
        """Whether the message of `user`/`anonymous` from `source` is one of the subjects'."""
        for subject, ids in ((user, self.users), (anonymous, self.anonymous)):
            if subject is not None and (
                subject in ids or (self.scoped and f"{source}\x1f{subject}" in ids)
            ):
                return True
        return False


class Table:
    """The suppressed and no-track subjects at one version, behind one bitmap of every id
    (32 bits an id): about 97% of the messages of other users stop at one bit."""

    __slots__ = ("bits", "empty", "mask", "no_track", "suppressed", "version")

    def __init__(self, version: int, suppressed: Iterable[str], no_track: Iterable[str]) -> None:
        self.version = version
        self.suppressed = Subjects(suppressed)
        self.no_track = Subjects(no_track)
        every = self.suppressed.bare + self.no_track.bare
        self.empty = not every
        """No subject at all: nothing to look up."""
        size = 1024
        while size < 32 * len(every):
            size *= 2
        self.mask = size - 1
        self.bits = bytearray(size // 8)
        for subject in every:
            at = hash(subject) & self.mask
            self.bits[at >> 3] |= 1 << (at & 7)
        self.suppressed.bare = self.no_track.bare = []  # not needed any more

    def may_hold(self, subject: object) -> bool:
        """False when `subject` is certainly no one's here (the bitmap's bit is clear)."""
        if subject is None or subject == "":
            return False
        at = hash(subject if isinstance(subject, str) else str(subject)) & self.mask
        return bool(self.bits[at >> 3] >> (at & 7) & 1)

    def verdict(self, view: MessageView, kind: str, arrival: Arrival, source: str) -> str | None:
        """Why the message is dropped (`suppressed`, `no_track`), or None."""
        user, anonymous = _text(view.userId), _text(view.anonymousId)
        if self.suppressed.size and self.suppressed.holds(user, anonymous, source):
            return SUPPRESSED
        if (
            self.no_track.size
            and (kind in TRACKED or (kind == "identify" and _browser(view, arrival)))
            and self.no_track.holds(user, anonymous, source)
        ):
            return NO_TRACK
        return None

    @property
    def nbytes(self) -> int:
        """The memory of the id sets and the bitmap, in bytes."""
        parts = (self.suppressed, self.no_track)
        hashes = sum(len(p.users) + len(p.anonymous) for p in parts) * 8
        return hashes + len(self.bits)


class Suppression:
    """This process's table, swapped whole when it changes, and the drop counts."""

    def __init__(self, tally: Tally | None = None) -> None:
        self.table = Table(0, (), ())
        self.tally = tally if tally is not None else Tally()

    @property
    def active(self) -> bool:
        """Some subject is suppressed or not tracked: messages are looked up."""
        return not self.table.empty

    def drops(self, view: MessageView, kind: str, arrival: Arrival, source: str) -> bool:
        """Whether the message is dropped (and counted)."""
        table = self.table
        if table.empty or not (table.may_hold(view.userId) or table.may_hold(view.anonymousId)):
            return False
        reason = table.verdict(view, kind, arrival, source)
        if reason is None:
            return False
        self.tally.drop(reason)
        return True


def dropped(view: MessageView) -> Entry:
    """What `Ingest.message` returns for a dropped message: an entry without a stream (the
    handlers commit all but those), with a messageId as an accepted one has, for the
    answers that carry it (Intilery's `eventId`)."""
    return Entry("", b"", "", view.messageId or str(uuid.uuid4()))


def _text(value: object) -> str | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


def _browser(view: MessageView, arrival: Arrival) -> bool:
    # A browser sends `Origin`; a tag on a device may say so with `context.direct`.
    return arrival.browser or bool(view.context and view.context.get("direct") is True)
