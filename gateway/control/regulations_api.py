"""`/v1/regulations`: suppress, delete, stop tracking and access a user's data, in the shape
of Segment's Public API (docs/regulations.md).

Suppressing and tracking take effect here before the answer (this process reads the
subjects again) and in every other process within a poll; deleting and access are steps
that workers do (`gateway.worker.regulation_jobs`), whose status this API reports.
"""

from __future__ import annotations

import io
import secrets
import time
import zipfile
from datetime import UTC, datetime

import msgspec
from aiohttp import web

from gateway.constants import DEFAULT_SOURCE
from gateway.control.app_keys import ACCESS_TTL, LIVE, SUPPRESSION, Routes
from gateway.control.regulation_schemas import (
    Created,
    CreatedView,
    ListView,
    NewRegulation,
    OneRegulation,
    OneView,
    Pagination,
    Regulations,
    RegulationView,
    StoreStatus,
)
from gateway.errors import JSON, ApiError, invalid
from gateway.store.regulation_records import (
    DELETES,
    DESTINATION,
    STATUSES,
    STREAMS,
    SUBJECTS,
    Regulation,
    Status,
    Step,
    member,
    overall,
)
from gateway.store.regulations import NO_TRACK, SUPPRESSED, RegulationStore

_encode = msgspec.json.Encoder().encode
_SETS = {
    "SUPPRESS_ONLY": (SUPPRESSED, True),
    "SUPPRESS_WITH_DELETE": (SUPPRESSED, True),
    "UNSUPPRESS": (SUPPRESSED, False),
    "NO_TRACK": (NO_TRACK, True),
    "TRACK": (NO_TRACK, False),
}
"""The subjects set each type changes, and whether it adds to it (else removes)."""
MAX_PAGE = 100


def routes() -> Routes:
    """The family's routes."""
    return {
        "/v1/regulations": {"GET": list_regulations, "POST": create_regulation},
        "/v1/regulations/{id}": {"GET": get_regulation},
        "/v1/regulations/{id}/download": {"GET": download},
    }


async def create_regulation(request: web.Request) -> web.Response:
    """`POST /v1/regulations`: `{"data": {"regulateId": ...}}`."""
    body = _decode(await request.read())
    live = request.app[SUPPRESSION]
    store = live.store
    kind = body.regulationType
    ids = list(dict.fromkeys(body.subjectIds))
    if body.sourceId is not None and not _known_source(request, body.sourceId):
        raise ApiError(404, "No such source", body.sourceId)
    if kind == "DELETE_ONLY":
        await _check_suppressed(store, body, ids)
    now = time.time()
    regulation = Regulation(
        id=f"{int(now * 1000):x}{secrets.token_hex(4)}",
        regulationType=kind,
        subjectType=body.subjectType,
        subjectIds=ids,
        sourceId=body.sourceId,
        createdAt=now,
        accessTtl=request.app[ACCESS_TTL] if kind == "ACCESS" else 0.0,
    )
    steps = await _steps(store, kind, now)
    change = _SETS.get(kind)
    members = [member(body.sourceId, body.subjectType, i) for i in ids]
    await store.create(
        regulation,
        steps,
        add=(change[0], members) if change and change[1] else None,
        remove=(change[0], members) if change and not change[1] else None,
        pending=any(name != SUBJECTS for name in steps),
    )
    if change is not None:
        await live.refresh()  # in force in this process before the answer
    return _answer(CreatedView(data=Created(regulateId=regulation.id)))


async def list_regulations(request: web.Request) -> web.Response:
    """`GET /v1/regulations`: newest first, `?status=` to filter, `pagination.count` and
    `pagination.cursor` to page."""
    store = request.app[SUPPRESSION].store
    wanted = request.query.get("status")
    if wanted is not None and wanted not in STATUSES:
        raise invalid("Unknown status", f"status={wanted!r}; one of {', '.join(STATUSES)}")
    count = _int(request, "pagination.count", 10, 1, MAX_PAGE)
    start = _int(request, "pagination.cursor", 0, 0, None)
    views: list[RegulationView] = []
    at = start
    ids, total = await store.ids(at, MAX_PAGE)
    while ids and len(views) < count:
        for regulation_id in ids:
            at += 1
            view = await _view(store, regulation_id)
            if view is not None and (wanted is None or view.overallStatus == wanted):
                views.append(view)
                if len(views) == count:
                    break
        ids, total = await store.ids(at, MAX_PAGE) if len(views) < count else ([], total)
    page = Pagination(current=str(start), next=str(at) if at < total else None, totalEntries=total)
    return _answer(ListView(data=Regulations(regulations=views, pagination=page)))


async def get_regulation(request: web.Request) -> web.Response:
    """`GET /v1/regulations/{id}`: the overall status and each store's."""
    view = await _view(request.app[SUPPRESSION].store, request.match_info["id"])
    if view is None:
        raise ApiError(404, "No such regulation", request.match_info["id"])
    return _answer(OneView(data=OneRegulation(regulation=view)))


async def download(request: web.Request) -> web.Response:
    """`GET /v1/regulations/{id}/download`: an ACCESS regulation's zip, once FINISHED."""
    store = request.app[SUPPRESSION].store
    regulation_id = request.match_info["id"]
    view = await _view(store, regulation_id)
    if view is None:
        raise ApiError(404, "No such regulation", regulation_id)
    if view.regulationType != "ACCESS":
        raise ApiError(409, "Conflict", "only an ACCESS regulation has a download")
    if view.overallStatus not in ("FINISHED", "PARTIAL_SUCCESS"):
        raise ApiError(409, "Conflict", f"the regulation is {view.overallStatus}; try later")
    files = await store.access_files(regulation_id)
    if files is None:
        raise ApiError(410, "Gone", "the files expired (--access-ttl)")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in sorted(files.items()):
            archive.writestr(name, data)
    return web.Response(
        body=buffer.getvalue(),
        content_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{regulation_id}.zip"'},
    )


async def _steps(store: RegulationStore, kind: str, now: float) -> dict[str, Step]:
    """Each store's first status: what the API did at once, what workers will do."""
    steps: dict[str, Step] = {}
    if kind in _SETS:
        steps[SUBJECTS] = Step(status="FINISHED", updatedAt=now, finishedAt=now)
    if kind not in DELETES and kind != "ACCESS":
        return steps
    steps[STREAMS] = Step(status="INITIALIZED", updatedAt=now)
    for name, can in (await store.destinations()).items():
        able = can.delete if kind in DELETES else can.access
        status: Status = "INITIALIZED" if able else "NOT_SUPPORTED"
        detail = "" if able else f"the {can.kind} destination cannot do this"
        steps[DESTINATION + name] = Step(status=status, detail=detail, updatedAt=now)
    return steps


async def _check_suppressed(store: RegulationStore, body: NewRegulation, ids: list[str]) -> None:
    """DELETE_ONLY is for suppressed subjects only (Intilery's rule): suppressed for every
    source, or for the regulation's own."""
    scopes = [None] if body.sourceId is None else [None, body.sourceId]
    missing = set(ids)
    for scope in scopes:
        members = [member(scope, body.subjectType, i) for i in ids]
        found = await store.which(SUPPRESSED, members)
        missing -= {i for i, hit in zip(ids, found, strict=True) if hit}
    if missing:
        shown = ", ".join(sorted(missing)[:10])
        raise ApiError(
            409,
            "Not suppressed",
            f"DELETE_ONLY needs its subjects suppressed first (SUPPRESS_ONLY, or use "
            f"SUPPRESS_WITH_DELETE); not suppressed: {shown}",
        )


async def _view(store: RegulationStore, regulation_id: str) -> RegulationView | None:
    found = await store.get(regulation_id)
    if found is None:
        return None
    regulation, steps = found
    status = overall(steps)
    ends = [s.finishedAt for s in steps.values() if s.finishedAt is not None]
    finished = _iso(max(ends)) if status not in ("INITIALIZED", "RUNNING") and ends else None
    stores = [
        StoreStatus(
            name=name,
            status=step.status,
            detail=step.detail,
            count=step.count,
            finishedAt=_iso(step.finishedAt) if step.finishedAt is not None else None,
        )
        for name, step in sorted(steps.items())
    ]
    done = regulation.regulationType == "ACCESS" and status in ("FINISHED", "PARTIAL_SUCCESS")
    return RegulationView(
        id=regulation.id,
        regulationType=regulation.regulationType,
        subjectType=regulation.subjectType,
        subjectIds=regulation.subjectIds,
        sourceId=regulation.sourceId,
        overallStatus=status,
        createdAt=_iso(regulation.createdAt),
        finishedAt=finished,
        stores=stores,
        download=f"/v1/regulations/{regulation.id}/download" if done else None,
    )


def _known_source(request: web.Request, source_id: str) -> bool:
    live = request.app[LIVE]
    if live.table.open:
        return source_id == DEFAULT_SOURCE
    return any(s.id == source_id for s in live.table.configured)


def _decode(raw: bytes) -> NewRegulation:
    try:
        return msgspec.json.decode(raw, type=NewRegulation)
    except msgspec.ValidationError as exc:
        raise invalid("Invalid request body", str(exc)) from None
    except msgspec.DecodeError as exc:
        raise invalid("The body is not JSON", str(exc)) from None


def _int(request: web.Request, name: str, default: int, low: int, high: int | None) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise invalid(f"{name} must be a whole number", f"{name}={text!r}") from None
    if value < low or (high is not None and value > high):
        raise invalid(f"{name} is out of range", f"{name}={value}: {low} to {high or 'any'}")
    return value


def _iso(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).isoformat(timespec="milliseconds")


def _answer(value: object, status: int = 200) -> web.Response:
    return web.Response(status=status, body=_encode(value), content_type=JSON)
