"""Known-answer vectors and the rejection matrix of webhook verification, in both
modes: the vendor's declared signature (OCTOSPINE's, read from its protos) and a
shared-token header."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac

import pytest
from pydantic import SecretStr

from adapter.events.declarations import SignatureScheme
from adapter.events.webhook_auth import SignatureCheck, TokenCheck
from adapter.events.webhook_verifier import WebhookRejectedError, WebhookVerifier

from .mesh_fixtures import declared

BODY = (
    b'{"id":"whd_0001","event":"task.completed","timestamp":"2026-11-25T12:00:00Z",'
    b'"data":{"id":"tsk_0001","status":"completed"}}'
)
# Computed with: printf '%s' "$BODY" | openssl dgst -sha256 -hmac 'your-webhook-secret'
BODY_SIG = "d86865dcffbe9f43f3aa60fea9df02b148ae80e73fa05e552237ee4b7352a3a8"
ROTATED_BODY = (
    b'{"id":"whd_0002","event":"alert.new","timestamp":"2026-11-25T12:00:00Z","data":{"id":"oal_1"}}'
)
# printf '%s' "$ROTATED_BODY" | openssl dgst -sha256 -hmac 'rotated-secret-2'
ROTATED_SIG = "019b5678c2332d061feba8730b9459a89d661f3a90a0fee10c2ebad960ca81bf"
SENT = dt.datetime(2026, 11, 25, 12, 0, 0, tzinfo=dt.UTC).timestamp()
HEADER = "x-octospine-signature"
DOCUMENTED_BODY = b'{"event":"task.completed","data":{"id":"tsk_0001","status":"completed"}}'


def octospine_scheme() -> SignatureScheme:
    scheme = declared().webhooks["octospine"].signature
    assert scheme is not None
    return scheme


def verifier(*secrets: str, now: float = SENT + 5, require_timestamp: bool = True) -> WebhookVerifier:
    return WebhookVerifier(
        SignatureCheck(octospine_scheme(), [SecretStr(s) for s in secrets]),
        tolerance_seconds=300,
        require_timestamp=require_timestamp,
        clock=lambda: now,
    )


def signed(header: str | None) -> dict[str, str]:
    return {} if header is None else {HEADER: header}


def test_octospine_declares_its_scheme() -> None:
    assert octospine_scheme() == SignatureScheme(
        header="x-octospine-signature", algorithm="sha256", encoding="hex", prefix="sha256="
    )


@pytest.mark.parametrize(
    "header", [f"sha256={BODY_SIG}", BODY_SIG, f"SHA256={BODY_SIG.upper()}", f"sha256=00, sha256={BODY_SIG}"]
)
def test_known_answer_accepted(header: str) -> None:
    delivery = verifier("your-webhook-secret").verify(BODY, signed(header))
    assert delivery.body["id"] == "whd_0001"
    assert delivery.secret_index == 0
    assert delivery.timed


def test_rotation_accepts_old_and_new_secret() -> None:
    rotating = verifier("rotated-secret-2", "your-webhook-secret")
    assert rotating.verify(ROTATED_BODY, signed(f"sha256={ROTATED_SIG}")).secret_index == 0
    assert rotating.verify(BODY, signed(f"sha256={BODY_SIG}")).secret_index == 1


REJECTIONS = [
    ("missing signature", BODY, None, SENT, 401, "MISSING_SIGNATURE"),
    ("empty signature", BODY, "", SENT, 401, "MISSING_SIGNATURE"),
    ("wrong signature", BODY, "sha256=" + "0" * 64, SENT, 401, "BAD_SIGNATURE"),
    ("signature of other body", BODY, f"sha256={ROTATED_SIG}", SENT, 401, "BAD_SIGNATURE"),
    (
        "tampered body",
        BODY.replace(b"completed", b"failed!!!"),
        f"sha256={BODY_SIG}",
        SENT,
        401,
        "BAD_SIGNATURE",
    ),
    ("stale (replayed) delivery", BODY, f"sha256={BODY_SIG}", SENT + 301, 401, "STALE_TIMESTAMP"),
    ("future timestamp", BODY, f"sha256={BODY_SIG}", SENT - 301, 401, "FUTURE_TIMESTAMP"),
]


@pytest.mark.parametrize(
    ("case", "body", "header", "now", "status", "reason"), REJECTIONS, ids=[r[0] for r in REJECTIONS]
)
def test_rejection_matrix(case, body, header, now, status, reason) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(WebhookRejectedError) as info:
        verifier("your-webhook-secret", now=now).verify(body, signed(header))
    assert (info.value.status, info.value.reason) == (status, reason)


def test_retired_secret_is_refused() -> None:
    with pytest.raises(WebhookRejectedError, match="BAD_SIGNATURE"):
        verifier("rotated-secret-2").verify(BODY, signed(f"sha256={BODY_SIG}"))


def test_documented_body_without_timestamp_is_refused_by_default() -> None:
    sig = hmac.new(b"k", DOCUMENTED_BODY, hashlib.sha256).hexdigest()
    with pytest.raises(WebhookRejectedError) as info:
        verifier("k").verify(DOCUMENTED_BODY, signed(sig))
    assert (info.value.status, info.value.reason) == (401, "MISSING_TIMESTAMP")


def test_documented_body_without_timestamp_is_accepted_untimed_when_allowed() -> None:
    sig = hmac.new(b"k", DOCUMENTED_BODY, hashlib.sha256).hexdigest()
    delivery = verifier("k", require_timestamp=False).verify(DOCUMENTED_BODY, signed(sig))
    assert delivery.body["event"] == "task.completed"
    assert not delivery.timed  # the receiver then checks its delivery id
    # A body that has a time is still held to the window.
    with pytest.raises(WebhookRejectedError, match="STALE_TIMESTAMP"):
        verifier("your-webhook-secret", now=SENT + 301, require_timestamp=False).verify(
            BODY, signed(BODY_SIG)
        )


@pytest.mark.parametrize(
    ("body", "problem"),
    [(b"not json", "not JSON"), (b"[1, 2]", "not a JSON object"), (b'"text"', "not a JSON object")],
)
def test_authentic_but_unreadable_is_returned_with_its_problem(body: bytes, problem: str) -> None:
    # Refusing it would make the vendor redeliver it forever: the receiver dead-letters it.
    sig = hmac.new(b"k", body, hashlib.sha256).hexdigest()
    delivery = verifier("k").verify(body, signed(sig))
    assert problem in delivery.problem and delivery.body == {}


@pytest.mark.parametrize(
    "header",
    ["sha256=é" + "0" * 63, "\udcff\udcfe", "sha256=" + "\u0660" * 64, "x" * 5000, "sha256=" + "g" * 64],
)
def test_headers_that_are_not_ascii_hex_are_bad_signatures(header: str) -> None:
    with pytest.raises(WebhookRejectedError) as info:
        verifier("your-webhook-secret").verify(BODY, signed(header))
    assert (info.value.status, info.value.reason) == (401, "BAD_SIGNATURE")


@pytest.mark.parametrize(
    "timestamp", ['"0001-01-01T00:00:00+05:00"', "1e300", '"9999-12-31T23:59:59-05:00"', "-1e308"]
)
def test_out_of_range_timestamps_are_refused_not_raised(timestamp: str) -> None:
    body = b'{"event":"x","timestamp":' + timestamp.encode() + b"}"
    sig = hmac.new(b"k", body, hashlib.sha256).hexdigest()
    with pytest.raises(WebhookRejectedError) as info:
        verifier("k").verify(body, signed(sig))
    assert info.value.status == 401


def test_a_number_json_cannot_hold_makes_the_body_unreadable() -> None:
    body = b'{"event":"x","timestamp":1e400}'  # infinity: orjson refuses the document
    sig = hmac.new(b"k", body, hashlib.sha256).hexdigest()
    assert "not JSON" in verifier("k").verify(body, signed(sig)).problem


def test_no_secret_configured_is_unavailable() -> None:
    with pytest.raises(WebhookRejectedError) as info:
        verifier().verify(BODY, signed(BODY_SIG))
    assert info.value.status == 503


# -- other declared schemes: SHA-512 in base64 without a prefix (a third vendor's kind) --

SHA512_SCHEME = SignatureScheme(header="x-acme-signature", algorithm="sha512", encoding="base64")


def test_base64_sha512_known_answer() -> None:
    # printf '%s' "$BODY" | openssl dgst -sha512 -hmac 'acme-secret' -binary | base64 -w0
    expected = base64.b64encode(hmac.new(b"acme-secret", BODY, hashlib.sha512).digest()).decode()
    check = SignatureCheck(SHA512_SCHEME, [SecretStr("acme-secret")])
    assert check.check(BODY, {"x-acme-signature": expected}) == 0
    with pytest.raises(WebhookRejectedError, match="BAD_SIGNATURE"):  # base64 is case-sensitive
        check.check(BODY, {"x-acme-signature": expected.swapcase()})
    with pytest.raises(WebhookRejectedError, match="MISSING_SIGNATURE"):  # its own header, not OCTOSPINE's
        check.check(BODY, {HEADER: expected})


# -- shared-token mode ---------------------------------------------------------------------------

TOKENS = [SecretStr("new-token"), SecretStr("old-token")]

TOKEN_CASES = [
    ("bearer token", {"authorization": "Bearer new-token"}, None, 0),
    ("scheme in any case", {"authorization": "bearer old-token"}, None, 1),
    ("missing header", {}, "MISSING_TOKEN", None),
    ("empty header", {"authorization": ""}, "MISSING_TOKEN", None),
    ("wrong token", {"authorization": "Bearer guess"}, "BAD_TOKEN", None),
    ("token prefix", {"authorization": "Bearer new-toke"}, "BAD_TOKEN", None),
    ("wrong scheme", {"authorization": "Basic new-token"}, "BAD_TOKEN", None),
    ("no scheme", {"authorization": "new-token"}, "BAD_TOKEN", None),
    ("non-UTF-8 bytes", {"authorization": "Bearer \udcff\udcfe"}, "BAD_TOKEN", None),
    ("a signature instead", {HEADER: f"sha256={BODY_SIG}"}, "MISSING_TOKEN", None),
]


@pytest.mark.parametrize(("case", "headers", "reason", "index"), TOKEN_CASES, ids=[c[0] for c in TOKEN_CASES])
def test_token_matrix(case: str, headers: dict[str, str], reason: str | None, index: int | None) -> None:
    verifier = WebhookVerifier(TokenCheck("Authorization", "Bearer", TOKENS), clock=lambda: SENT)
    if reason is None:
        assert verifier.verify(BODY, headers).secret_index == index
        return
    with pytest.raises(WebhookRejectedError) as info:
        verifier.verify(BODY, headers)
    assert (info.value.status, info.value.reason) == (401, reason)


def test_token_without_scheme_and_no_token_configured() -> None:
    bare = TokenCheck("X-Webhook-Token", "", [SecretStr("t0k")])
    assert bare.check(BODY, {"x-webhook-token": "t0k"}) == 0
    with pytest.raises(WebhookRejectedError) as info:
        TokenCheck("Authorization", "Bearer", []).check(BODY, {"authorization": "Bearer x"})
    assert (info.value.status, info.value.reason) == (503, "NO_TOKEN_CONFIGURED")
