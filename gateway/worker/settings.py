"""What the worker's commands are configured with: `Common` and a group, the destinations,
the consumer's pace. Each field is a flag and a `GATEWAY_*` variable (see `gateway.ops.flags`).

- `GroupSettings`: `gateway dead-letters list`.
- `ReplaySettings` (`gateway.worker.replay_settings`): `gateway replay`.
- `DeliverySettings`: `gateway dead-letters redrive` (a group and its destinations).
- `WorkerSettings`: `gateway worker`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

from msgspec import Meta

from gateway.ops.flags import Invalid, Setting
from gateway.settings import (
    Common,
    Count,
    DedupeWindow,
    Port,
    RetentionAcked,
    RetentionMaxAge,
    Seconds,
)
from gateway.worker.destinations import BUILTINS

KINDS = f"{', '.join(BUILTINS)}, or package.module:Class"
Kind = Annotated[str, Meta(pattern=rf"^({'|'.join(map(re.escape, BUILTINS))}|[\w.]+:\w+)$")]
Name = Annotated[str, Meta(min_length=1)]


Group = Annotated[
    Name, Setting("the consumer group; workers in one group share the entries", metavar="NAME")
]


class GroupSettings(Common, frozen=True, kw_only=True):
    """Where the streams are, and which consumer group."""

    group: Group


class DestinationSettings(Common, frozen=True, kw_only=True):
    """Where messages are delivered: one destination, or a file of them."""

    destination: Annotated[
        Kind | None,
        Setting(
            "one destination, with its flags below (this or --config is required)",
            metavar="KIND",
            allowed=f"one of {KINDS}",
        ),
    ] = None
    destination_name: Annotated[
        Name | None,
        Setting(
            "that destination's name, for `integrations`",
            flag="--name",
            metavar="NAME",
            default="KIND",
        ),
    ] = None
    worker_config: Annotated[
        Path | None,
        Setting(
            "a TOML file of [[destination]] tables, see docs/workers.md",
            flag="--config",
            metavar="FILE",
        ),
    ] = None
    batch_size: Annotated[Count, Setting("entries read, and sent to a destination, at a time")] = (
        100
    )

    def check(self) -> None:
        """One destination or a file of them: one of the two, not both."""
        if self.worker_config is not None and self.destination is not None:
            raise Invalid("worker_config", "give either --config or --destination, not both")
        if self.worker_config is None and self.destination is None:
            raise Invalid("destination", f"is required, or --config FILE: {KINDS}")


class DeliverySettings(DestinationSettings, frozen=True, kw_only=True):
    """A group and where it delivers."""

    group: Group


class WorkerSettings(DeliverySettings, frozen=True, kw_only=True):
    """Everything `gateway worker` is configured with."""

    consumer: Annotated[
        Name | None,
        Setting("this consumer's name in the group", metavar="NAME", default="<hostname>-<pid>"),
    ] = None
    reclaim_idle: Annotated[
        Seconds,
        Setting("seconds before an unacknowledged entry is retried, by any worker of the group"),
    ] = 30.0
    max_attempts: Annotated[Count, Setting("attempts before an entry goes to the dead letters")] = (
        10
    )
    block: Annotated[
        Seconds, Setting("seconds a read waits for new entries (and how fast a stop is noticed)")
    ] = 1.0
    burst: Annotated[bool, Setting("exit once nothing is left to read or retry")] = False
    metrics_port: Annotated[
        Port | None, Setting("serve Prometheus /metrics on this port", default="none")
    ] = None
    metrics_host: Annotated[Name, Setting("the address of --metrics-port", metavar="ADDRESS")] = (
        "0.0.0.0"
    )
    retention_acked: RetentionAcked = 3600.0
    retention_max_age: RetentionMaxAge = 604800.0


def _instant(text: str) -> datetime:
    """An ISO 8601 time; UTC when it has no offset."""
    moment = datetime.fromisoformat(text.strip())
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _time(help: str) -> Setting:
    return Setting(
        help,
        metavar="TIME",
        default="none",
        allowed="an ISO 8601 time, e.g. 2026-12-02T14:00:00Z (UTC without an offset)",
        parse=_instant,
    )


class ReplaySettings(DestinationSettings, frozen=True, kw_only=True):
    """`gateway replay`: what to read from an archive, and where to send it."""

    archive: Annotated[
        Path, Setting("the archive's directory (--path of the worker)", metavar="DIR")
    ]
    source: Annotated[
        Name | None, Setting("only this source's messages", metavar="SOURCE", default="all")
    ] = None
    since: Annotated[datetime | None, _time("messages received at or after this time")] = None
    until: Annotated[datetime | None, _time("messages received before this time")] = None
    to_streams: Annotated[
        bool,
        Setting("send the messages back into the gateway's streams (--redis-url)"),
    ] = False
    checkpoint: Annotated[
        Path | None,
        Setting(
            "where progress is kept; the same replay run again resumes from it",
            metavar="FILE",
            default="<data-dir>/replay-<hash of the query>.json",
        ),
    ] = None
    dedupe_window: DedupeWindow = 3600
    max_attempts: Annotated[
        Count, Setting("attempts of a batch before the replay stops (to be resumed)")
    ] = 5

    def check(self) -> None:
        """Exactly one target; a window that is not empty."""
        if self.to_streams:
            if self.destination is not None or self.worker_config is not None:
                raise Invalid("to_streams", "give --to-streams, --destination or --config, one")
        else:
            super().check()
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise Invalid("until", f"must be after --since ({self.since.isoformat()})")
