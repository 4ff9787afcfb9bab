"""OAuth2 endpoints (RFC 6749 bodies, not the vendor error shape).

- OCTOSPINE ``POST /oauth/token``: ``client_credentials``.
- OpenFrame ``GET /v1/oauth/authorize``: auto-approves and redirects to ``redirect_uri`` with
  ``code`` and the same ``state`` (PKCE ``S256`` or ``plain`` optional);
  ``POST /v1/oauth/token``: ``authorization_code`` (checks ``code_verifier``) and
  ``refresh_token`` (rotates the refresh token). With ``openframe_refresh_tokens=False`` the
  code grant issues no refresh token (a vendor without offline access).

Client credentials come as HTTP Basic or as ``client_id`` / ``client_secret`` form fields.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import math
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
from aiohttp import web

from simulator.runtime import RUNTIME
from simulator.tokens import OAuthError, TokenStore
from simulator.wire import JsonObject, json_response

DEFAULT_SCOPE = "read write"


def _oauth_error(error: OAuthError) -> web.Response:
    response = json_response(
        {"error": error.error, "error_description": error.description}, status=error.status
    )
    response.headers["Cache-Control"] = "no-store"
    if error.status == 401:
        response.headers["WWW-Authenticate"] = 'Basic realm="oauth"'
    return response


async def _form(request: web.Request) -> dict[str, str]:
    raw = await request.read()
    if request.content_type == "application/json":
        try:
            data = orjson.loads(raw or b"{}")
        except orjson.JSONDecodeError:
            raise OAuthError("invalid_request", "malformed JSON body") from None
        if not isinstance(data, dict):
            raise OAuthError("invalid_request", "body must be an object")
        return {k: str(v) for k, v in data.items()}
    return dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))


def _client(request: web.Request, form: Mapping[str, str]) -> tuple[str, str | None]:
    """(client_id, client_secret or None) from Basic auth or the form."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "basic" and value:
        try:
            client_id, _, secret = base64.b64decode(value).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise OAuthError("invalid_client", "malformed Basic credentials", status=401) from None
        return client_id, secret
    return form.get("client_id", ""), form.get("client_secret")


def _check_client(request: web.Request, client_id: str, secret: str | None, *, secret_required: bool) -> None:
    expected_id, expected_secret = request.app[RUNTIME].config.oauth_client(request.app[RUNTIME].vendor)
    if not client_id or not hmac.compare_digest(client_id, expected_id):
        raise OAuthError("invalid_client", "unknown client", status=401)
    if secret is None and secret_required:
        raise OAuthError("invalid_client", "client authentication required", status=401)
    if secret is not None and not hmac.compare_digest(secret, expected_secret):
        raise OAuthError("invalid_client", "bad client secret", status=401)


def _token_answer(tokens: TokenStore, client_id: str, scope: str, *, refresh: bool) -> JsonObject:
    access, refresh_token = tokens.issue(client_id, scope, refresh=refresh)
    body: JsonObject = {
        "access_token": access.token,
        "token_type": "Bearer",
        "expires_in": math.ceil(tokens.ttl_s),
        "scope": scope,
    }
    if refresh_token:
        body["refresh_token"] = refresh_token
    return body


async def octospine_token(request: web.Request) -> web.StreamResponse:
    """`POST /oauth/token` (client_credentials)."""
    tokens = request.app[RUNTIME].tokens
    tokens.token_requests += 1
    try:
        form = await _form(request)
        if form.get("grant_type") != "client_credentials":
            raise OAuthError("unsupported_grant_type", "only client_credentials is supported")
        client_id, secret = _client(request, form)
        _check_client(request, client_id, secret, secret_required=True)
        body = _token_answer(tokens, client_id, form.get("scope") or DEFAULT_SCOPE, refresh=False)
    except OAuthError as exc:
        return _oauth_error(exc)
    response = json_response(body)
    response.headers["Cache-Control"] = "no-store"
    return response


async def openframe_authorize(request: web.Request) -> web.StreamResponse:
    """`GET /v1/oauth/authorize`: auto-approve and redirect with a code."""
    runtime = request.app[RUNTIME]
    query = request.query
    client_id, redirect_uri = query.get("client_id", ""), query.get("redirect_uri", "")
    expected_id, _ = runtime.config.oauth_client(runtime.vendor)
    if client_id != expected_id:
        return _oauth_error(OAuthError("invalid_request", "unknown client_id"))
    parts = urlsplit(redirect_uri)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return _oauth_error(OAuthError("invalid_request", "redirect_uri must be an absolute URL"))
    params: dict[str, str] = {}
    method = query.get("code_challenge_method") or ("plain" if "code_challenge" in query else "")
    if query.get("response_type") != "code":
        params["error"] = "unsupported_response_type"
    elif method and method not in ("S256", "plain"):
        params["error"] = "invalid_request"
        params["error_description"] = "code_challenge_method must be S256 or plain"
    else:
        params["code"] = runtime.tokens.new_code(
            client_id=client_id,
            redirect_uri=redirect_uri,
            scope=query.get("scope") or DEFAULT_SCOPE,
            challenge=query.get("code_challenge"),
            challenge_method=method or None,
        )
    if "state" in query:
        params["state"] = query["state"]
    existing = parse_qsl(parts.query, keep_blank_values=True)
    location = urlunsplit(parts._replace(query=urlencode([*existing, *params.items()])))
    return web.Response(status=302, headers={"Location": location})


async def openframe_token(request: web.Request) -> web.StreamResponse:
    """`POST /v1/oauth/token`: authorization_code and refresh_token grants."""
    tokens = request.app[RUNTIME].tokens
    tokens.token_requests += 1
    try:
        form = await _form(request)
        grant_type = form.get("grant_type")
        client_id, secret = _client(request, form)
        if grant_type == "authorization_code":
            verifier = form.get("code_verifier")
            # A public client proves itself with PKCE; a confidential one with its secret.
            _check_client(request, client_id, secret, secret_required=not verifier)
            grant = tokens.redeem_code(
                form.get("code", ""),
                client_id=client_id,
                redirect_uri=form.get("redirect_uri", ""),
                verifier=verifier,
            )
            refresh = request.app[RUNTIME].config.openframe_refresh_tokens
            body = _token_answer(tokens, client_id, grant.scope, refresh=refresh)
        elif grant_type == "refresh_token":
            _check_client(request, client_id, secret, secret_required=False)
            old = tokens.rotate_refresh(form.get("refresh_token", ""), client_id=client_id)
            body = _token_answer(tokens, client_id, old.scope, refresh=True)
        else:
            raise OAuthError("unsupported_grant_type", "use authorization_code or refresh_token")
    except OAuthError as exc:
        return _oauth_error(exc)
    response = json_response(body)
    response.headers["Cache-Control"] = "no-store"
    return response
