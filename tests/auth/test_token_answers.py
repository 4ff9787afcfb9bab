"""How a token endpoint's answer is read (adapter/auth/token_endpoint.py), as a table:
the cases the auth.token_answer fuzz target found, and their neighbours."""

from __future__ import annotations

import httpx
import orjson
import pytest

from adapter.auth.errors import TokenEndpointUnavailable, TokenRejected
from adapter.auth.token_endpoint import TokenEndpoint

MAX_MESSAGE_CHARS = 300

ENDPOINT = TokenEndpoint("https://idp.test/token", client_id="c", upstream="openframe")


def _answer(status: int, body: object) -> httpx.Response:
    return httpx.Response(status, content=orjson.dumps(body))


@pytest.mark.parametrize(
    ("expires_in", "lifetime"),
    [
        (3600, 3600.0),
        ("3600", 3600.0),
        ("²", None),  # str.isdigit() says yes, float() refused it: the answer used to raise ValueError
        ("١٢", None),  # not ASCII digits
        ("9" * 400, None),  # float() makes it infinite
        (1e308, 1e308),
        (0, None),
        (-5, None),
        (True, None),
        ([60], None),
    ],
)
def test_a_lifetime_is_finite_and_positive_or_unknown(expires_in: object, lifetime: float | None) -> None:
    grant = ENDPOINT._grant(_answer(200, {"access_token": "at", "expires_in": expires_in}))
    assert grant.expires_in == lifetime


def test_an_endpoints_words_are_bounded_and_printable_in_errors_and_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    body = {"error": "invalid_grant", "error_description": "line\nbreak " + "d" * 100_000}
    with pytest.raises(TokenRejected) as info:
        ENDPOINT._grant(_answer(400, body))
    assert info.value.error == "invalid_grant"
    assert len(str(info.value)) < MAX_MESSAGE_CHARS + 100
    assert "\n" not in str(info.value) and "line?break" in str(info.value)
    assert max(len(r.getMessage()) for r in caplog.records) < MAX_MESSAGE_CHARS + 100


@pytest.mark.parametrize(
    "error",
    [
        [[[[[[["deep"]]]]]]],
        {"code": "x"},
        'quote"inside',
        "x" * 65,
        "",
    ],
)
def test_an_error_that_is_not_an_rfc_6749_code_is_named_by_the_status(error: object) -> None:
    with pytest.raises(TokenRejected) as info:
        ENDPOINT._grant(_answer(401, {"error": error}))
    assert info.value.error == "http_401"


def test_a_deeply_nested_error_does_not_break_reading_the_answer() -> None:
    deep = b"[" * 1020 + b'"x"' + b"]" * 1020  # orjson reads up to 1,024 levels
    body = b'{"error":' + deep + b',"error_description":' + deep + b"}"
    with pytest.raises(TokenEndpointUnavailable):
        ENDPOINT._grant(httpx.Response(503, content=body))
