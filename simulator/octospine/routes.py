"""OCTOSPINE's REST and WebSocket routes (paths exactly as in `protos/octospine/v1`)."""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from aiohttp import web

from simulator.crud import add_crud_routes, read_object
from simulator.errors import ApiError
from simulator.octospine.services import OctospineServices
from simulator.octospine.webhooks import sign
from simulator.websocket import octospine_ws
from simulator.wire import json_response

WS_ROUTE = "/ws"
TOKEN_ROUTE = "/oauth/token"
INCOMING_WEBHOOK_ROUTE = "/webhooks/{endpoint:.+}"


def add_routes(router: web.UrlDispatcher, services: OctospineServices) -> None:
    """Registers health, the five resources, task cancel, incoming webhooks and the WebSocket."""

    async def health(request: web.Request) -> web.StreamResponse:
        return json_response(services.health.report())

    async def cancel_task(request: web.Request) -> web.StreamResponse:
        body = await read_object(request, required=False)
        reason = body.get("reason")
        reason = reason if isinstance(reason, str) else ""
        return json_response(services.tasks.cancel(request.match_info["task_id"], reason))

    async def incoming_webhook(request: web.Request) -> web.StreamResponse:
        # An incoming webhook call fires the enabled automations with a matching trigger.
        endpoint = "/webhooks/" + request.match_info["endpoint"]
        _check_signature(services, endpoint, await request.read(), request.headers)
        payload = await read_object(request, required=False)
        fired = [
            services.trigger_automation(a["id"], payload)["automation_id"]
            for a in services.automations.store.all()
            if a.get("status") == "enabled"
            and any(
                t.get("type") == "webhook" and t.get("endpoint") == endpoint for t in a.get("triggers") or []
            )
        ]
        if not fired:
            raise ApiError(404, f"no enabled automation listens on {endpoint!r}")
        return json_response({"triggered": fired}, status=202)

    router.add_get("/api/health", health, allow_head=False)
    for base, id_param, service in (
        ("/api/pipelines", "pipeline_id", services.pipelines),
        ("/api/automations", "automation_id", services.automations),
        ("/api/integrations", "integration_id", services.integrations),
        ("/api/webhooks", "webhook_id", services.webhook_resources),
    ):
        add_crud_routes(router, base=base, id_param=id_param, service=service)
    add_crud_routes(
        router,
        base="/api/tasks",
        id_param="task_id",
        service=services.tasks,
        operations=("list", "create", "get", "delete"),
    )
    router.add_post("/api/tasks/{task_id}/cancel", cancel_task)
    router.add_post(INCOMING_WEBHOOK_ROUTE, incoming_webhook)
    router.add_get(WS_ROUTE, octospine_ws, allow_head=False)


def _check_signature(
    services: OctospineServices, endpoint: str, body: bytes, headers: Mapping[str, str]
) -> None:
    """Incoming webhooks registered with an HMAC secret need `x-octospine-signature`."""
    secrets: list[str] = []
    for hook in services.webhook_resources.store.all():
        secret = (hook.get("authentication") or {}).get("secret")
        wanted = hook.get("type") == "incoming" and hook.get("endpoint") == endpoint
        if secret and wanted and hook.get("active", True):
            secrets.append(secret)
    if not secrets:
        return
    offered = headers.get("x-octospine-signature", "")
    if not any(hmac.compare_digest(sign(secret, body), offered) for secret in secrets):
        raise ApiError(401, "Missing or invalid x-octospine-signature")
