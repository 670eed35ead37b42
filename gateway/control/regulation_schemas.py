"""The bodies of `/v1/regulations`, in the shape of Segment's Public API: msgspec structs
that both check requests and document them (the admin OpenAPI comes from them)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from gateway.store.regulation_records import RegulationType, Status, SubjectType

MAX_SUBJECTS = 5000
"""Ids in one request, as Segment allows."""

SubjectId = Annotated[str, msgspec.Meta(min_length=1, max_length=1000)]


class NewRegulation(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`POST /v1/regulations`."""

    regulationType: RegulationType
    subjectType: SubjectType
    subjectIds: Annotated[list[SubjectId], msgspec.Meta(min_length=1, max_length=MAX_SUBJECTS)]
    sourceId: str | None = None
    """Only this source's messages (Segment's source-scoped regulations); all when absent."""


class Created(msgspec.Struct, kw_only=True):
    """The new regulation's id."""

    regulateId: str


class CreatedView(msgspec.Struct, kw_only=True):
    """`{"data": {"regulateId": ...}}`."""

    data: Created


class StoreStatus(msgspec.Struct, kw_only=True):
    """Where one store (the suppressed set, the streams, a destination) is."""

    name: str
    status: Status
    detail: str = ""
    count: int = 0
    """Messages removed (a delete) or collected (an access)."""
    finishedAt: str | None = None


class RegulationView(msgspec.Struct, kw_only=True):
    """One regulation and where each store is with it."""

    id: str
    regulationType: RegulationType
    subjectType: SubjectType
    subjectIds: list[str]
    sourceId: str | None
    overallStatus: Status
    createdAt: str
    finishedAt: str | None
    stores: list[StoreStatus]
    download: str | None = None
    """ACCESS, once FINISHED: where the zip is, until it expires."""


class OneRegulation(msgspec.Struct, kw_only=True):
    """The `data` of `GET /v1/regulations/{id}`."""

    regulation: RegulationView


class OneView(msgspec.Struct, kw_only=True):
    """`{"data": {"regulation": ...}}`."""

    data: OneRegulation


class Pagination(msgspec.Struct, kw_only=True):
    """Segment's paging: pass `next` as `pagination.cursor` for the next page."""

    current: str
    next: str | None
    totalEntries: int


class Regulations(msgspec.Struct, kw_only=True):
    """The `data` of `GET /v1/regulations`."""

    regulations: list[RegulationView]
    pagination: Pagination


class ListView(msgspec.Struct, kw_only=True):
    """`{"data": {"regulations": [...], "pagination": ...}}`."""

    data: Regulations


STRUCTS = (NewRegulation, CreatedView, OneView, ListView)
"""What the admin OpenAPI document lists."""
