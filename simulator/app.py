"""Assembles one vendor's aiohttp application: pipeline, vendor routes (and OCTOSPINE's
GraphQL endpoint), OAuth, admin API."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from simulator import oauth
from simulator.admin import add_admin_routes
from simulator.middleware import PIPELINE, add_response_headers
from simulator.octospine import routes as octospine_routes
from simulator.octospine.graphql_endpoint import GRAPHQL_ROUTE
from simulator.openframe import routes as openframe_routes
from simulator.runtime import RUNTIME, VendorRuntime

if TYPE_CHECKING:
    from simulator.simulator import Simulator

# Routes that need no credentials (OAuth endpoints; incoming webhooks check their own HMAC).
PUBLIC_ROUTES = {
    "openframe": frozenset({openframe_routes.AUTHORIZE_ROUTE, openframe_routes.TOKEN_ROUTE}),
    "octospine": frozenset({octospine_routes.TOKEN_ROUTE, "/webhooks/{endpoint}"}),
}
WEBSOCKET_ROUTES = {
    "openframe": frozenset({openframe_routes.WS_ROUTE}),
    "octospine": frozenset({octospine_routes.WS_ROUTE}),
}


def build_app(runtime: VendorRuntime, sim: Simulator) -> web.Application:
    """The aiohttp application serving `runtime.vendor`."""
    app = web.Application(middlewares=PIPELINE)
    app[RUNTIME] = runtime
    app.on_response_prepare.append(add_response_headers)
    if runtime.vendor == "openframe":
        openframe_routes.add_routes(app.router, sim.openframe)
        app.router.add_get(openframe_routes.AUTHORIZE_ROUTE, oauth.openframe_authorize)
        app.router.add_post(openframe_routes.TOKEN_ROUTE, oauth.openframe_token)
    else:
        octospine_routes.add_routes(app.router, sim.octospine)
        app.router.add_post(GRAPHQL_ROUTE, sim.graphql.handle)
        app.router.add_post(octospine_routes.TOKEN_ROUTE, oauth.octospine_token)
    add_admin_routes(app.router, runtime.vendor, sim)
    return app
