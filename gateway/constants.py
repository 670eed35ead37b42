"""Every Redis key the gateway and its workers use, in one place.

Stream keys carry a hash tag (`{n}`) so that on a Redis Cluster each partition lives in
one slot and the partitions spread over the nodes.
"""

EVENTS_PREFIX = "gateway:events"
"""Accepted messages: `gateway:events:{0}` ... `gateway:events:{N-1}`."""

DEAD_LETTER_PREFIX = "gateway:dead"
"""Messages a worker group gave up on: `gateway:dead:{group}`."""

DEFAULT_SOURCE = "default"
"""The source id of every message when no sources file is configured (open mode)."""


def events_key(partition: int) -> str:
    """The stream key of one partition."""
    return f"{EVENTS_PREFIX}:{{{partition}}}"


def all_events_keys(partitions: int) -> list[str]:
    """The stream keys of every partition, in order."""
    return [events_key(n) for n in range(partitions)]
