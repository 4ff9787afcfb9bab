"""The simulator's own HTTP API under `/_sim/` on each vendor's port.

It acts on the vendor of the port it is called on, is never recorded, faulted, authenticated
or rate limited, and answers plain JSON (``{"error": "..."}`` on a 400). See
docs/simulator.md for the table of endpoints.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from simulator.config import Vendor
from simulator.faults import Fault
from simulator.wire import JsonObject, json_response

if TYPE_CHECKING:
    from simulator.simulator import Simulator


class _BadRequest(Exception):
    pass


async def _body(request: web.Request) -> JsonObject:
    raw = await request.read()
    try:
        value = orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError as exc:
        raise _BadRequest(f"malformed JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise _BadRequest("body must be a JSON object")
    return value


def _number(body: JsonObject, name: str, default: float | None = None) -> float:
    value = body.get(name, default)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise _BadRequest(f"{name!r} must be a number")
    return float(value)


def add_admin_routes(router: web.UrlDispatcher, vendor: Vendor, sim: Simulator) -> None:
    """Registers the `/_sim/` endpoints for `vendor` on `router`."""
    routes = web.RouteTableDef()

    @routes.get("/_sim/health")
    async def health(request: web.Request) -> web.StreamResponse:
        settings = sim.settings[vendor]
        return json_response(
            {
                "vendor": vendor,
                "profile": sim.config.profile_of(vendor),
                "auth_style": settings.auth_style,
                "pagination": settings.pagination,
                "rate_limit_per_minute": settings.rate_limit_per_minute,
                "rate_limit_headers": settings.rate_limit_headers,
            }
        )

    @routes.get("/_sim/faults")
    async def list_faults(request: web.Request) -> web.StreamResponse:
        return json_response({"faults": [f.to_json() for f in sim.faults if f.vendor == vendor]})

    @routes.post("/_sim/faults")
    async def add_fault(request: web.Request) -> web.StreamResponse:
        try:
            fault = Fault.from_json(vendor, await _body(request))
        except (TypeError, ValueError) as exc:
            raise _BadRequest(str(exc)) from exc
        return json_response(sim.faults.add(fault).to_json(), status=201)

    @routes.delete("/_sim/faults")
    async def clear_faults(request: web.Request) -> web.StreamResponse:
        sim.faults.clear(vendor)
        return web.Response(status=204)

    @routes.delete("/_sim/faults/{fault_id}")
    async def remove_fault(request: web.Request) -> web.StreamResponse:
        found = sim.faults.remove(request.match_info["fault_id"])
        return web.Response(status=204) if found else json_response({"error": "unknown"}, status=404)

    @routes.get("/_sim/requests")
    async def requests(request: web.Request) -> web.StreamResponse:
        q = request.query
        selected = sim.log.select(
            vendor=vendor, method=q.get("method"), route=q.get("route"), path=q.get("path")
        )
        return json_response({"count": len(selected), "requests": [r.to_json() for r in selected]})

    @routes.delete("/_sim/requests")
    async def clear_requests(request: web.Request) -> web.StreamResponse:
        sim.log.clear(vendor)
        return web.Response(status=204)

    @routes.post("/_sim/reset")
    async def reset(request: web.Request) -> web.StreamResponse:
        await sim.reset(vendor)
        return web.Response(status=204)

    @routes.get("/_sim/events")
    async def events(request: web.Request) -> web.StreamResponse:
        return json_response({"events": sim.events(vendor, since=request.query.get("since"))})

    @routes.post("/_sim/events")
    async def generate(request: web.Request) -> web.StreamResponse:
        body = await _body(request)
        kind, count = body.get("kind"), body.get("count", 1)
        rate = body.get("rate_per_s")
        if not isinstance(kind, str) or not isinstance(count, int) or count < 0:
            raise _BadRequest("need 'kind' (string) and 'count' (integer >= 0)")
        try:
            made = await sim.generate_events(
                vendor, kind, count, _number(body, "rate_per_s") if rate is not None else None
            )
        except ValueError as exc:
            raise _BadRequest(str(exc)) from exc
        return json_response({"generated": made})

    @routes.post("/_sim/ws/drop")
    async def ws_drop(request: web.Request) -> web.StreamResponse:
        return json_response({"dropped": sim.ws_drop(vendor)})

    @routes.get("/_sim/ws/sessions")
    async def ws_session_log(request: web.Request) -> web.StreamResponse:
        return json_response({"sessions": sim.ws_session_log(vendor)})

    @routes.post("/_sim/ws/push")
    async def ws_push(request: web.Request) -> web.StreamResponse:
        body = await _body(request)
        text, frame, topic = body.get("text"), body.get("frame"), body.get("topic")
        if frame is not None:
            text = orjson.dumps(frame).decode()
        if not isinstance(text, str) or (topic is not None and not isinstance(topic, str)):
            raise _BadRequest("need 'text' (string) or 'frame' (any JSON), and an optional 'topic'")
        return json_response({"pushed": sim.ws_push(vendor, text, topic=topic)})

    @routes.post("/_sim/records")
    async def insert_record(request: web.Request) -> web.StreamResponse:
        body = await _body(request)
        collection, record = body.get("collection"), body.get("record")
        if not isinstance(collection, str) or not isinstance(record, dict):
            raise _BadRequest("need 'collection' (string) and 'record' (object)")
        try:
            stored = sim.insert_record(vendor, collection, record)
        except ValueError as exc:
            raise _BadRequest(str(exc)) from exc
        return json_response(stored, status=201)

    @routes.post("/_sim/ws/stall")
    async def ws_stall(request: web.Request) -> web.StreamResponse:
        seconds = _number(await _body(request), "seconds")
        return json_response({"stalled": sim.ws_stall(vendor, seconds)})

    @routes.get("/_sim/rate-limits")
    async def rate_limits(request: web.Request) -> web.StreamResponse:
        limits = sim.rate_limits[vendor].to_json()
        if vendor == "octospine":
            limits["graphql"] = sim.graphql_rate_limit.to_json()
        return json_response(limits)

    @routes.post("/_sim/tokens/expire")
    async def expire_tokens(request: web.Request) -> web.StreamResponse:
        sim.expire_tokens(vendor)
        return web.Response(status=204)

    if vendor == "octospine":

        @routes.post("/_sim/webhooks/emit")
        async def emit(request: web.Request) -> web.StreamResponse:
            body = await _body(request)
            event, data, raw = body.get("event"), body.get("data", {}), body.get("raw")
            if not isinstance(event, str) or not isinstance(data, dict):
                raise _BadRequest("need 'event' (string) and 'data' (object)")
            if raw is not None and not isinstance(raw, str):
                raise _BadRequest("'raw' must be the body text to sign and send verbatim")
            deliveries = await sim.emit_webhook_event(
                event, data, raw=raw.encode() if raw is not None else None
            )
            return json_response({"deliveries": [d.to_json() for d in deliveries]})

        @routes.get("/_sim/webhooks/deliveries")
        async def deliveries(request: web.Request) -> web.StreamResponse:
            return json_response({"deliveries": [d.to_json() for d in sim.webhook_deliveries]})

        @routes.post("/_sim/health/components")
        async def set_component(request: web.Request) -> web.StreamResponse:
            body = await _body(request)
            name, status = body.get("name"), body.get("status")
            if not isinstance(name, str) or not isinstance(status, str):
                raise _BadRequest("need 'name' and 'status' (strings)")
            try:
                report = sim.octospine.health.set_component(name, status, str(body.get("message", "")))
            except ValueError as exc:
                raise _BadRequest(str(exc)) from exc
            return json_response(report)

    for route in routes:
        assert isinstance(route, web.RouteDef)
        router.add_route(route.method, route.path, _translating(cast(Handler, route.handler)))


def _translating(handler: Handler) -> Handler:
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except _BadRequest as exc:
            return json_response({"error": str(exc)}, status=400)

    return wrapped
