"""Every Redis key the gateway and its workers use, in one place.

Stream keys carry a hash tag (`{n}`) so that on a Redis Cluster each partition lives in
one slot and the partitions spread over the nodes.
"""

EVENTS_PREFIX = "gateway:events"
"""Accepted messages: `gateway:events:{0}` ... `gateway:events:{N-1}`."""

DEAD_LETTER_PREFIX = "gateway:dead"
"""Messages a worker group gave up on: `gateway:dead:{group}`."""

SEEN_PREFIX = "gateway:seen"
"""Recently accepted messageIds and where each went: hashes `gateway:seen:{n}:<bucket>` of
`<source>:<messageId>` -> `<entry id> <route>`, in the stream's slot
(`gateway.store.dedupe_script`). Before them, sets `gateway:dedupe:{n}:<bucket>` and hashes
`gateway:where:{n}:<bucket>`, which a gateway no longer reads (docs/durability.md,
"Upgrading")."""
REFUSED_STREAM = "gateway:refused"
"""Messages refused with a readable messageId, and why (bounded; `gateway.store.refusals`)."""
INSPECT_STREAM = "gateway:inspect"
"""What the live inspector shows that nothing else records (duplicates, suppressed,
throttled, spooled), written only while a page is open (bounded; `gateway.store.inspector_ring`)."""
INSPECT_WATCHING = "gateway:inspect:watching"
"""Set, with a short TTL, while an inspector page is open: every process notes outcomes then."""
REDRIVE_PREFIX = "gateway:redrive"
"""`gateway:redrive:{group}`: a re-drive of the group's dead letters asked for from the
inspector, taken by a worker of the group; `...:done` its last report
(`gateway.worker.redrive_requests`)."""
DELIVERIES_PREFIX = "gateway:deliveries"
"""What workers did per minute: hashes `gateway:deliveries:<minute>` of counts per group,
source, destination and outcome; and `gateway:deliveries:retrying:{group}`, the last error
of each message waiting for its retry (`gateway.store.deliveries`)."""

REPLICATION_MARK_PREFIX = "gateway:replicated"
"""One small key per partition, `gateway:replicated:{n}`, set by a flush that wrote nothing
else (only duplicates) so that `WAIT` has a write to wait for (`gateway.store.replicas`)."""

REJECTED_STREAM = "gateway:rejected"
"""Events a dialect answered 200 but could not accept, with the reason (bounded, for debugging)."""
RATELIMIT_PREFIX = "gateway:ratelimit"
"""Token buckets of rate-limited callers: `gateway:ratelimit:<sha256 of the caller>`."""

PARTITIONS_KEY = "gateway:partitions"
"""A hash the gateway keeps its partition count in: `current` (the last gateway started) and
`highest` (the most ever used), read by workers, `gateway status` and the trimmer
(`gateway.store.partitions`)."""

RETENTION_LEASE = "gateway:retention:lease"
"""Which process trims the streams now: its name, expiring unless renewed
(`gateway.store.lease`)."""
RETENTION_COUNTS = "gateway:retention:counts"
"""A hash of what trimming removed: `acked` (every group had it), `expired` (past the
maximum age, read or not) (`gateway.store.retention`)."""

CONTROL_SOURCES = "gateway:control:{sources}"
"""Sources and keys made through the admin API: a hash of `source:<id>` and `key:<id>` to
JSON records, keys as SHA-256 digests only (`gateway.control.store`)."""
CONTROL_VERSION = "gateway:control:{sources}:version"
"""Counts every change of `CONTROL_SOURCES` (same slot): what every process polls."""

REGULATIONS_PREFIX = "gateway:regulations:{reg}"
"""Regulations (`gateway.store.regulations`), every key in one slot: `<prefix>:index` (a
sorted set of ids by creation), `<prefix>:r:<id>` (a hash: the record and each step's
status), `<prefix>:pending` (the ids a worker still has steps of), `<prefix>:suppressed`
and `<prefix>:no_track` (sets of subjects), `<prefix>:version` (counts their changes: what
every gateway process polls), `<prefix>:lease:<id>:<step>`, `<prefix>:access:<id>` (an
Access regulation's files, until they expire) and `<prefix>:destinations` (what each
worker's destinations can do)."""

DEFAULT_SOURCE = "default"
"""The source id of every message when no sources file is configured (open mode)."""


def events_key(partition: int) -> str:
    """The stream key of one partition."""
    return f"{EVENTS_PREFIX}:{{{partition}}}"


def dead_letter_key(group: str) -> str:
    """The dead-letter stream of `group`."""
    return f"{DEAD_LETTER_PREFIX}:{{{group}}}"


def all_events_keys(partitions: int) -> list[str]:
    """The stream keys of every partition, in order."""
    return [events_key(n) for n in range(partitions)]


def redrive_key(group: str) -> str:
    """Where a re-drive of `group`'s dead letters is asked for (`REDRIVE_PREFIX`)."""
    return f"{REDRIVE_PREFIX}:{{{group}}}"


def hash_tag(key: str) -> str:
    """The `{...}` of a key, the part Redis Cluster hashes; `{key}` when it has none."""
    start = key.find("{")
    end = key.find("}", start + 1)
    if start == -1 or end == -1 or end == start + 1:
        return f"{{{key}}}"  # Cluster hashes the whole key; the same text in braces hashes alike
    return key[start : end + 1]


def seen_prefix(stream: str) -> str:
    """What the seen hash of each time bucket of `stream` is named (plus the bucket)."""
    return f"{SEEN_PREFIX}:{hash_tag(stream)}:"


def replication_mark(stream: str) -> str:
    """The key `WAIT`'s forced write sets, in `stream`'s slot."""
    return f"{REPLICATION_MARK_PREFIX}:{hash_tag(stream)}"
