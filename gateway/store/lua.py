"""Lua scripts on Redis: called by their SHA1, and loaded again where a server forgot them.

A script is called with `EVALSHA`, so only its hash crosses the wire with each call. A
server that restarted, or a replica promoted by a failover, does not have it and answers
`NOSCRIPT`; `rerun_forgotten` loads it and runs those calls again. The answer looks
different on each of the two ways the gateway talks to Redis: a `hiredis.ReplyError` on
the lean connection (`gateway.store.resp`), a `NoScriptError` from redis-py.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import hiredis
from redis.exceptions import NoScriptError

from gateway.store.resp import command

C = TypeVar("C")


class Script:
    """A Lua script: its source, its SHA1 for `EVALSHA`, and the command that loads it."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest().encode()
        self.load = command(b"SCRIPT", b"LOAD", source.encode())
        """`SCRIPT LOAD` in RESP, to send ahead of calls on a lean connection."""


def forgotten(reply: object) -> bool:
    """Whether `reply` says the server does not have the script (`NOSCRIPT`)."""
    if isinstance(reply, NoScriptError):
        return True
    return isinstance(reply, hiredis.ReplyError) and str(reply).startswith("NOSCRIPT")


async def rerun_forgotten(
    calls: Sequence[C],
    replies: list[Any],
    again: Callable[[list[C]], Awaitable[Sequence[Any]]],
) -> list[Any]:
    """`replies` (of `calls`, in order), each `NOSCRIPT` replaced by its call's new reply.

    `again` loads the script, then runs the calls it is given; their replies, in order.
    Only the forgotten calls run again: the others did their work (added entries, took
    tokens) and must not do it twice.
    """
    missing = [index for index, reply in enumerate(replies) if forgotten(reply)]
    if missing:
        new = await again([calls[index] for index in missing])
        for index, reply in zip(missing, new, strict=True):
            replies[index] = reply
    return replies
