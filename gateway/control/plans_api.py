"""`/v1/sources/{id}/tracking-plan`: a source's tracking plan, set at run time, and its dry run.

A plan is compiled before it is stored: one that does not compile is refused (400) with the
error and its JSON path, and the plan in force stays. Stored, it is in force here at once
and on every process within a poll (`gateway.control.live`), like any change of sources.
The sources file's plans are shown and dry-run here, and changed in the file.
"""

from __future__ import annotations

import time

import msgspec
from aiohttp import web

from gateway.control.app_keys import LIVE, Routes
from gateway.control.live import LiveSources
from gateway.control.records import PlanRecord
from gateway.control.schemas import PlanView
from gateway.control.sources_api import _answer, _api_source, _body
from gateway.errors import ApiError, invalid
from gateway.ingest.plan_check import dry_run
from gateway.ingest.plan_enforce import Enforcer
from gateway.ingest.tracking_plan import PlanError, PlanSettings, compile_plan, digest


def routes() -> Routes:
    """The family's routes."""
    return {
        "/v1/sources/{id}/tracking-plan": {
            "GET": get_plan,
            "PUT": put_plan,
            "DELETE": delete_plan,
        },
        "/v1/sources/{id}/tracking-plan/validate": {"POST": validate_messages},
    }


async def get_plan(request: web.Request) -> web.Response:
    """`GET .../tracking-plan`: the plan in force; 404 when the source has none."""
    live = request.app[LIVE]
    return _answer(_view(live, request.match_info["id"], _enforcer(live, request)))


async def put_plan(request: web.Request) -> web.Response:
    """`PUT .../tracking-plan`: set an API source's plan and modes; 400 when it does not
    compile (the error and its path), 409 for the sources file's."""
    settings = await _body(request, PlanSettings)
    if settings.path is not None:
        raise invalid("`path` is for the sources file", "send the document as `plan`")
    if settings.plan is None:
        raise invalid("A tracking plan needs `plan`", "Segment's tracking-plan JSON")
    try:
        compile_plan(settings.plan)
    except PlanError as exc:
        raise invalid("The tracking plan does not compile", str(exc)) from None
    live = request.app[LIVE]
    source = await _api_source(live, request.match_info["id"])
    await live.store.put(PlanRecord(source=source.id, settings=settings, updatedAt=time.time()))
    await live.refresh()
    return _answer(_view(live, source.id, _enforcer(live, request)))


async def delete_plan(request: web.Request) -> web.Response:
    """`DELETE .../tracking-plan`: 204; the source's messages are no longer checked."""
    live = request.app[LIVE]
    source = await _api_source(live, request.match_info["id"])
    record = live.records.plans.get(source.id)
    if record is None:
        raise ApiError(404, "No tracking plan", source.id)
    await live.store.delete(record)
    await live.refresh()
    return web.Response(status=204)


async def validate_messages(request: web.Request) -> web.Response:
    """`POST .../tracking-plan/validate`: the violations the plan in force would raise for
    the messages (a JSON array, `{"batch": [...]}` or one message); nothing is stored."""
    enforcer = _enforcer(request.app[LIVE], request)
    try:
        body = msgspec.json.decode(await request.read())
    except msgspec.DecodeError as exc:
        raise invalid("The body is not JSON", str(exc)) from None
    if isinstance(body, dict) and isinstance(body.get("batch"), list):
        body = body["batch"]
    messages = body if isinstance(body, list) else [body]
    findings = dry_run(enforcer, messages)
    violations = sum(len(f.violations) for f in findings)
    return _answer(
        {"violations": violations, "messages": [f.public() for f in findings]},
    )


def _enforcer(live: LiveSources, request: web.Request) -> Enforcer:
    source = request.match_info["id"]
    enforcer = live.table.plans.get(source)
    if enforcer is None:
        raise ApiError(404, "No tracking plan", f"source {source} has none (or does not exist)")
    return enforcer


def _view(live: LiveSources, source: str, enforcer: Enforcer) -> PlanView:
    settings = enforcer.settings
    assert settings.plan is not None  # an enforcer is made only for a plan
    record = live.records.plans.get(source)
    from_file = any(s.id == source for s in live.file or ())
    return PlanView(
        source=source,
        name=enforcer.plan.name,
        events=len(enforcer.plan.events),
        digest=digest(settings.plan),
        mode=settings.mode,
        unplanned=settings.unplanned,
        modes={str(k): m for k, m in settings.modes.items()},
        origin="file" if from_file else "api",
        plan=settings.plan,
        updatedAt=None if from_file or record is None else record.updatedAt,
    )
