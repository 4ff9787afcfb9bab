"""Known-answer vectors and the rejection matrix of webhook verification."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac

import pytest
from pydantic import SecretStr

from adapter.events.webhook_verifier import WebhookRejectedError, WebhookVerifier

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


def verifier(*secrets: str, now: float = SENT + 5) -> WebhookVerifier:
    return WebhookVerifier([SecretStr(s) for s in secrets], tolerance_seconds=300, clock=lambda: now)


@pytest.mark.parametrize(
    "header", [f"sha256={BODY_SIG}", BODY_SIG, f"SHA256={BODY_SIG.upper()}", f"sha256=00, sha256={BODY_SIG}"]
)
def test_known_answer_accepted(header: str) -> None:
    delivery = verifier("your-webhook-secret").verify(BODY, header)
    assert delivery.body["id"] == "whd_0001"
    assert delivery.secret_index == 0


def test_rotation_accepts_old_and_new_secret() -> None:
    rotating = verifier("rotated-secret-2", "your-webhook-secret")
    assert rotating.verify(ROTATED_BODY, f"sha256={ROTATED_SIG}").secret_index == 0
    assert rotating.verify(BODY, f"sha256={BODY_SIG}").secret_index == 1


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
        verifier("your-webhook-secret", now=now).verify(body, header)
    assert (info.value.status, info.value.reason) == (status, reason)


def test_retired_secret_is_refused() -> None:
    with pytest.raises(WebhookRejectedError, match="BAD_SIGNATURE"):
        verifier("rotated-secret-2").verify(BODY, f"sha256={BODY_SIG}")


@pytest.mark.parametrize(
    ("body", "problem"),
    [(b"not json", "not JSON"), (b"[1, 2]", "not a JSON object"), (b'"text"', "not a JSON object")],
)
def test_authentic_but_unreadable_is_returned_with_its_problem(body: bytes, problem: str) -> None:
    # Refusing it would make the vendor redeliver it forever: the receiver dead-letters it.
    sig = hmac.new(b"k", body, hashlib.sha256).hexdigest()
    delivery = verifier("k").verify(body, sig)
    assert problem in delivery.problem and delivery.body == {}


@pytest.mark.parametrize(
    "header",
    ["sha256=é" + "0" * 63, "\udcff\udcfe", "sha256=" + "\u0660" * 64, "x" * 5000, "sha256=" + "g" * 64],
)
def test_headers_that_are_not_ascii_hex_are_bad_signatures(header: str) -> None:
    with pytest.raises(WebhookRejectedError) as info:
        verifier("your-webhook-secret").verify(BODY, header)
    assert (info.value.status, info.value.reason) == (401, "BAD_SIGNATURE")


@pytest.mark.parametrize(
    "timestamp", ['"0001-01-01T00:00:00+05:00"', "1e300", '"9999-12-31T23:59:59-05:00"', "-1e308"]
)
def test_out_of_range_timestamps_are_refused_not_raised(timestamp: str) -> None:
    body = b'{"event":"x","timestamp":' + timestamp.encode() + b"}"
    sig = hmac.new(b"k", body, hashlib.sha256).hexdigest()
    with pytest.raises(WebhookRejectedError) as info:
        verifier("k").verify(body, sig)
    assert info.value.status == 401


def test_a_number_json_cannot_hold_makes_the_body_unreadable() -> None:
    body = b'{"event":"x","timestamp":1e400}'  # infinity: orjson refuses the document
    sig = hmac.new(b"k", body, hashlib.sha256).hexdigest()
    assert "not JSON" in verifier("k").verify(body, sig).problem


def test_no_secret_configured_is_unavailable() -> None:
    with pytest.raises(WebhookRejectedError) as info:
        verifier().verify(BODY, BODY_SIG)
    assert info.value.status == 503
