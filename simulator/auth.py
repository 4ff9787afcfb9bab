"""Who is calling: the API key in the profile's header, or an OAuth2 bearer token.

| `auth_style`  | API key header                  |
|---------------|---------------------------------|
| `bearer`      | `Authorization: Bearer <key>`   |
| `x-api-key`   | `X-API-Key: <key>`              |

Tenants' keys (`*_tenant_api_keys`) are accepted the same way and recorded as `api_key:<label>`.
Issued OAuth2 access tokens are accepted as `Authorization: Bearer <token>` in either style.
WebSocket upgrades may pass either in a `token` query parameter instead.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from aiohttp import web

from simulator.config import AuthStyle, Vendor
from simulator.errors import TOKEN_EXPIRED_CODES, ApiError
from simulator.tokens import TokenStore

API_KEY_CREDENTIAL = "api_key"


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def authenticate(
    request: web.Request,
    *,
    vendor: Vendor,
    style: AuthStyle,
    api_keys: Mapping[str, str],
    tokens: TokenStore,
    allow_query_token: bool = False,
) -> str:
    """The caller's credential label (``api_key``, ``api_key:<tenant>`` or
    ``oauth:<client_id>``), else a 401. ``api_keys``: label -> accepted key."""
    bearer = _bearer(request)
    key = bearer if style == "bearer" else request.headers.get("X-API-Key")
    query_token = request.query.get("token") if allow_query_token else None
    for candidate in (key, query_token):
        if not candidate:
            continue
        for label, api_key in api_keys.items():
            if _same(candidate, api_key):
                return label
    for candidate in (bearer, query_token):
        if not candidate:
            continue
        state, access = tokens.lookup(candidate)
        if state == "valid" and access is not None:
            return f"oauth:{access.client_id}"
        if state == "expired":
            raise ApiError(
                401,
                "The access token expired",
                code=TOKEN_EXPIRED_CODES[vendor],
                headers={
                    "WWW-Authenticate": 'Bearer error="invalid_token", '
                    'error_description="The access token expired"'
                },
            )
    expected = "Authorization: Bearer <api key>" if style == "bearer" else "X-API-Key: <api key>"
    presented = bearer or request.headers.get("X-API-Key") or query_token
    message = "Invalid credentials" if presented else f"Missing credentials (send {expected})"
    raise ApiError(401, message, headers={"WWW-Authenticate": f'Bearer realm="{vendor}"'})
