"""OpenFrame's REST and WebSocket routes (paths exactly as in `protos/openframe/v1`)."""

from __future__ import annotations

from aiohttp import web

from simulator.crud import add_crud_routes
from simulator.openframe.services import OpenFrameServices
from simulator.websocket import openframe_ws

WS_ROUTE = "/v1/ws"
AUTHORIZE_ROUTE = "/v1/oauth/authorize"
TOKEN_ROUTE = "/v1/oauth/token"


def add_routes(router: web.UrlDispatcher, services: OpenFrameServices) -> None:
    """Registers devices, alerts, security events (as in the protos) and the WebSocket."""
    add_crud_routes(
        router,
        base="/v1/devices",
        id_param="device_id",
        service=services.devices,
        operations=("list", "get"),
    )
    add_crud_routes(
        router,
        base="/v1/alerts",
        id_param="alert_id",
        service=services.alerts,
        operations=("list", "create", "get", "update"),
    )
    add_crud_routes(
        router,
        base="/v1/security-events",
        id_param="security_event_id",
        service=services.security_events,
        operations=("list",),
    )
    router.add_get(WS_ROUTE, openframe_ws, allow_head=False)
