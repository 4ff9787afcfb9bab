"""Fuzz targets: credentials from outside, the caller's and the vendor's.

``security.bearer`` (adapter/security/jwt_verifier.py): whatever a caller sends as a
bearer token (any text, JWT-shaped text with any header and claims, tokens our issuer
signed with hostile claims, tokens another key signed that name our key or carry their
own ``jwk``/``jku``), verifying it raises nothing but ``AuthenticationFailed``, and a
principal comes back only for a token our issuer signed with an allowed algorithm, our
``iss``, our ``aud``, an ``exp`` not past and a non-empty string ``sub``. No token
makes the verifier fetch anything (its JWKS is a file).

``auth.token_answer`` (adapter/auth/token_endpoint.py): whatever the vendor's OAuth2
token endpoint answers (any status, any ``Retry-After``, any bytes, JSON shaped like a
token answer with hostile values, deep nesting included), reading it returns a grant
with a non-empty access token and a lifetime that is None or finite and positive, or
raises ``TokenEndpointUnavailable`` (its delay within ``max_server_delay``) or
``TokenRejected`` (its RFC 6749 error code short and printable); every message is
bounded. Nothing else escapes.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import orjson
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import event, example, given
from hypothesis import strategies as st

from adapter.auth.errors import TokenEndpointUnavailable, TokenRejected
from adapter.auth.renewing import renew_time
from adapter.auth.token_endpoint import MAX_MESSAGE_CHARS, TokenEndpoint, TokenGrant
from adapter.config.security import JwtSettings
from adapter.security.identity import Principal
from adapter.security.jwt_verifier import AuthenticationFailed, JwtVerifier
from tests.security.jwt_helpers import AUDIENCE, ISSUER, Issuer

from .counting import tried
from .profiles import budget
from .strategies import json_scalars, json_values

# -- security.bearer -------------------------------------------------------------------------

ISSUER_KEYS = Issuer()
ISSUER_KEYS.add_key("ec-1", kind="ec")
#: Another party's key: what it signs must never pass, whatever its header says.
ATTACKER = rsa.generate_private_key(public_exponent=65537, key_size=2048)
_JWKS_DIR = tempfile.TemporaryDirectory(prefix="fuzz-jwks-")
JWKS = ISSUER_KEYS.write(Path(_JWKS_DIR.name) / "jwks.json")
SETTINGS = JwtSettings(jwks_file=JWKS, issuer=ISSUER, audiences=[AUDIENCE], leeway_seconds=30)


class _NoNetwork(httpx.AsyncBaseTransport):
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"the verifier fetched {request.url}")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _json_text(doc: object) -> bytes:
    try:
        return orjson.dumps(doc)
    except orjson.JSONEncodeError:
        pass
    try:  # integers past 64 bits
        return json.dumps(doc).encode()
    except (RecursionError, ValueError):  # deeper than either writes: a caller still could
        return b"[" * 2000 + b"]" * 2000


_HOSTILE_NUMBERS = st.sampled_from([1e308, -1e308, 2**63, 2**64, 10**30, -1, 0, 0.5, True, "9" * 40, "NaN"])
_TIME_CLAIM = st.one_of(
    st.builds(lambda offset: int(time.time()) + offset, st.integers(-(10**6), 10**6)),
    _HOSTILE_NUMBERS,
    json_scalars(big_ints=True),
    json_values(),
)
_ISS = st.one_of(st.just(ISSUER), st.just([ISSUER]), st.just(ISSUER + "/"), json_values())
_AUD = st.one_of(
    st.just(AUDIENCE), st.just([AUDIENCE, "x"]), st.just([]), st.just([[AUDIENCE]]), json_values()
)
_SUB = st.one_of(st.just("svc-a"), st.just(""), st.text(max_size=30), json_values())
_CLAIM_VALUES = {
    "iss": _ISS,
    "aud": _AUD,
    "sub": _SUB,
    "exp": _TIME_CLAIM,
    "nbf": _TIME_CLAIM,
    "iat": _TIME_CLAIM,
}
_CLAIMS = st.fixed_dictionaries({}, optional=_CLAIM_VALUES)


@st.composite
def _nearly_valid_claims(draw: st.DrawFn) -> dict[str, Any]:
    """Claims our verifier admits, with up to two of them changed or left out."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "svc-a",
        "iat": now - 60,
        "exp": now + 300,
    }
    for name in draw(st.sets(st.sampled_from(sorted(_CLAIM_VALUES)), max_size=2)):
        if draw(st.booleans()):
            claims[name] = draw(_CLAIM_VALUES[name])
        else:
            claims.pop(name, None)
    return claims


_KID = st.one_of(st.sampled_from(["rsa-1", "ec-1", "", "nope", "rsa-1\x00"]), json_values())
_ALG = st.one_of(
    st.sampled_from(["RS256", "ES256", "PS256", "HS256", "none", "None", "RS512", "EdDSA", ""]), json_values()
)
_EXTRA_HEADER = st.fixed_dictionaries(
    {},
    optional={
        "jku": st.just("http://127.0.0.1:9/jwks.json"),
        "x5u": st.just("http://127.0.0.1:9/cert.pem"),
        "jwk": st.just({"kty": "RSA", "n": "AQAB", "e": "AQAB"}),
        "crit": st.one_of(st.just(["b64"]), json_values()),
        "b64": st.booleans(),
        "typ": json_values(),
    },
)


@st.composite
def _shaped(draw: st.DrawFn) -> str:
    """Three JWT segments with any header and claims, and a signature that is not one."""
    header = draw(st.one_of(st.fixed_dictionaries({"alg": _ALG, "kid": _KID}), json_values()))
    claims = draw(st.one_of(_CLAIMS, json_values()))
    signature = draw(st.binary(max_size=300))
    parts = [_b64(_json_text(header)), _b64(_json_text(claims)), _b64(signature)]
    if draw(st.booleans()):
        parts[draw(st.integers(0, 2))] = draw(st.text(max_size=40))
    return ".".join(parts)


@dataclass(frozen=True)
class Signed:
    """A token our issuer (``ours``) or the attacker signed, with what it says."""

    token: str
    ours: bool
    header: dict[str, Any]
    claims: Any


@st.composite
def _signed(draw: st.DrawFn) -> Signed:
    ours = draw(st.integers(0, 3)) > 0
    kid = (
        draw(st.sampled_from(["rsa-1", "ec-1"])) if ours else draw(st.sampled_from(["rsa-1", "", "attacker"]))
    )
    key = ISSUER_KEYS.keys[kid] if ours else ATTACKER
    alg = ("RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256") if ours else "RS256"
    header: dict[str, Any] = {"alg": alg, "kid": kid, **draw(_EXTRA_HEADER)}
    claims = draw(st.one_of(_nearly_valid_claims(), _nearly_valid_claims(), _CLAIMS, json_values()))
    # Signed by hand, so PyJWT's encoder cannot tidy the header or claims: an IdP's could differ.
    signing_input = f"{_b64(_json_text(header))}.{_b64(_json_text(claims))}"
    signature = jwt.get_algorithm_by_name(alg).sign(signing_input.encode(), key)
    return Signed(f"{signing_input}.{_b64(signature)}", ours, header, claims)


_TOKENS = st.one_of(
    st.text(max_size=200),
    st.text(alphabet="abcXYZ019-_.=", max_size=200),
    st.sampled_from(["", ".", "..", "...", "a.b.c", "e30.e30.", "e30.e30.e30", " " * 3, "\x00"]),
    _shaped(),
)


def _valid(signed: Signed) -> bool:
    """What the verifier must admit: our signature and a plain header, our iss, our aud,
    exp not past, nbf and iat past, a non-empty string sub (the leeway's edges aside)."""
    claims = signed.claims
    if not signed.ours or not isinstance(claims, dict) or {"crit", "b64", "typ"} & set(signed.header):
        return False
    now = time.time()
    aud = claims.get("aud")
    auds = aud if isinstance(aud, list) else [aud]
    exp, nbf, iat = claims.get("exp"), claims.get("nbf"), claims.get("iat")

    def number(value: Any) -> bool:
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)

    return (
        claims.get("iss") == ISSUER
        and AUDIENCE in auds
        and number(exp)
        and exp > now + SETTINGS.leeway_seconds
        and ("nbf" not in claims or (number(nbf) and nbf < now - SETTINGS.leeway_seconds))
        and ("iat" not in claims or (number(iat) and iat < now - SETTINGS.leeway_seconds))
        and isinstance(claims.get("sub"), str)
        and bool(claims["sub"])
    )


async def _verify(token: str) -> Principal | AuthenticationFailed:
    async with httpx.AsyncClient(transport=_NoNetwork()) as http:
        verifier = JwtVerifier(SETTINGS, http=http)
        try:
            return await verifier.verify(token)
        except AuthenticationFailed as failed:
            return failed


@budget(300)
@given(st.one_of(_TOKENS, _signed(), _signed()))
def test_any_bearer_token_is_refused_with_authentication_failed_unless_our_issuer_signed_it(
    case: str | Signed,
) -> None:
    tried("security.bearer")
    signed = case if isinstance(case, Signed) else None
    outcome = asyncio.run(_verify(case if isinstance(case, str) else case.token))
    if isinstance(outcome, AuthenticationFailed):
        event(f"refused: {outcome.reason}")
        assert outcome.reason.isupper() and len(outcome.detail) <= 300, outcome
        if signed is not None and _valid(signed):
            assert outcome.reason in ("TOKEN_NOT_YET_VALID", "TOKEN_EXPIRED"), (outcome, signed.claims)
        return
    event("admitted")
    assert signed is not None and signed.ours, "only a token our issuer signed may name a caller"
    claims = signed.claims
    assert claims.get("iss") == ISSUER
    assert isinstance(claims.get("sub"), str) and claims["sub"]
    assert outcome.name == f"jwt:{claims['sub']}" and outcome.source == "jwt"


# -- auth.token_answer -----------------------------------------------------------------------

MAX_DELAY = 60.0
ENDPOINT = TokenEndpoint(
    "https://idp.test/token", client_id="fuzz", upstream="openframe", max_server_delay=MAX_DELAY
)
_TOKEN_VALUES = st.one_of(st.just("at-123"), st.just(""), st.text(max_size=20), json_values())
_LIFETIMES = st.one_of(
    st.sampled_from(["3600", "²", "١٢", "9" * 400, "1e999", "-3", " 5 ", "NaN", "0", "1.5"]),
    _HOSTILE_NUMBERS,
    json_scalars(big_ints=True),
    json_values(),
)
_ANSWER_OBJECT = st.fixed_dictionaries(
    {},
    optional={
        "access_token": _TOKEN_VALUES,
        "token_type": st.one_of(st.just("Bearer"), json_values()),
        "expires_in": _LIFETIMES,
        "refresh_token": _TOKEN_VALUES,
        "scope": st.one_of(st.just("read write"), json_values()),
        "error": st.one_of(
            st.sampled_from(["invalid_client", "invalid_grant", "", "x" * 5000, "bad\ncode\x00"]),
            json_values(),
        ),
        "error_description": st.one_of(st.text(max_size=50), st.just("d" * 100_000), json_values()),
    },
)
_RETRY_AFTER = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "5",
            "9" * 400,
            "-1",
            "1e999",
            "NaN",
            "Wed, 21 Oct 2015 07:28:00 GMT",
            "Fri, 31 Dec 9999 23:59:59 GMT",
        ]
    ),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30),
)


@st.composite
def _answers(draw: st.DrawFn) -> httpx.Response:
    status = draw(st.sampled_from([200, 200, 200, 400, 401, 403, 429, 500, 503, 302, 204, 299, 418]))
    headers = {} if (after := draw(_RETRY_AFTER)) is None else {"retry-after": after}
    kind = draw(st.integers(0, 5))
    if kind == 0:
        body = draw(st.binary(max_size=200))
    elif kind == 1:
        body = _json_text(draw(json_values()))
    else:
        body = _json_text(draw(_ANSWER_OBJECT))
    return httpx.Response(status, headers=headers, content=body)


@budget(400)
@given(_answers())
# Found by CI: a lifetime this small adds nothing to a clock's reading (1000 + 5e-324 == 1000).
@example(httpx.Response(200, content=b'{"access_token": "t", "expires_in": 5e-324}'))
def test_any_token_answer_is_a_sane_grant_or_a_credential_error(answer: httpx.Response) -> None:
    tried("auth.token_answer")
    try:
        grant = ENDPOINT._grant(answer)
    except TokenEndpointUnavailable as exc:
        event("unavailable")
        assert len(str(exc)) <= MAX_MESSAGE_CHARS + 200, len(str(exc))
        assert exc.retry_after is None or 0 <= exc.retry_after <= MAX_DELAY, exc.retry_after
        return
    except TokenRejected as exc:
        event("rejected")
        assert len(str(exc)) <= MAX_MESSAGE_CHARS + 200, len(str(exc))
        assert 0 < len(exc.error) <= 64 and exc.error.isprintable() and exc.error.isascii(), exc.error
        return
    event("granted")
    assert isinstance(grant, TokenGrant)
    assert isinstance(grant.access_token, str) and grant.access_token
    assert grant.expires_in is None or (math.isfinite(grant.expires_in) and grant.expires_in > 0)
    assert grant.refresh_token is None or isinstance(grant.refresh_token, str)
    assert isinstance(grant.token_type, str) and isinstance(grant.scope, str)
    renew = renew_time(1000.0, grant.expires_in, 60.0)
    # Never before the grant: a lifetime below the clock's resolution renews at once (the
    # token is as good as expired), never earlier, never at an infinite or NaN time.
    assert renew is None or (math.isfinite(renew) and renew >= 1000.0)
    if renew is not None and grant.expires_in is not None and grant.expires_in >= 1e-6:
        assert renew > 1000.0, (grant.expires_in, renew)
