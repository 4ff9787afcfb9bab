"""REST handlers for a `ResourceService`: list, create, get, merge-patch, delete."""

from __future__ import annotations

from collections.abc import Collection

import orjson
from aiohttp import web

from simulator.errors import ApiError
from simulator.paging import paginate
from simulator.resources import ResourceService
from simulator.runtime import RUNTIME
from simulator.wire import JsonObject, json_response

OPERATIONS = frozenset({"list", "create", "get", "update", "delete"})


async def read_object(request: web.Request, *, required: bool = True) -> JsonObject:
    """The JSON object in the body: 400 when malformed or not an object.

    An empty body is ``{}`` unless `required`, where it is a 400 as well.
    """
    raw = await request.read()
    if not raw.strip():
        if required:
            raise ApiError(400, "Request body is empty; a JSON object is expected")
        return {}
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"Malformed JSON body: {exc}") from exc
    if not isinstance(value, dict):
        raise ApiError(400, "Request body must be a JSON object")
    return value


def add_crud_routes(
    router: web.UrlDispatcher,
    *,
    base: str,
    id_param: str,
    service: ResourceService,
    operations: Collection[str] = OPERATIONS,
) -> None:
    """Registers ``base`` (list, create) and ``base/{id_param}`` (get, update, delete)."""
    unknown = set(operations) - OPERATIONS
    if unknown:
        raise ValueError(f"unknown operations: {sorted(unknown)}")
    item = f"{base}/{{{id_param}}}"

    async def list_(request: web.Request) -> web.StreamResponse:
        style = request.app[RUNTIME].settings.pagination
        items = service.list(request.query)
        return json_response(paginate(style, request.query, items))

    async def create(request: web.Request) -> web.StreamResponse:
        return json_response(service.create(await read_object(request)), status=201)

    async def get(request: web.Request) -> web.StreamResponse:
        return json_response(service.get(request.match_info[id_param]))

    async def update(request: web.Request) -> web.StreamResponse:
        patch = await read_object(request)
        resource_id = request.match_info[id_param]
        body_id = patch.pop("id", None)
        if body_id not in (None, resource_id):
            raise ApiError(400, f"Body id {body_id!r} does not match the path id {resource_id!r}")
        return json_response(service.update(resource_id, patch))

    async def delete(request: web.Request) -> web.StreamResponse:
        service.delete(request.match_info[id_param])
        return web.Response(status=204)

    handlers = {
        "list": ("GET", base, list_),
        "create": ("POST", base, create),
        "get": ("GET", item, get),
        "update": ("PATCH", item, update),
        "delete": ("DELETE", item, delete),
    }
    for name in sorted(operations, key=list(handlers).index):
        method, path, handler = handlers[name]
        router.add_route(method, path, handler)
