"""Webhook secrets and tokens from files (``secrets_file``, ``tokens_file``): rotated
without a restart, one value a line, newest first; a file that cannot be read at start
stops it naming the key; a bad version later keeps the last good values."""

from __future__ import annotations

import hashlib
import hmac
import logging
from pathlib import Path

import pytest
from pydantic import ValidationError

from adapter.config.settings import ConfigError
from adapter.events.declarations import SignatureScheme
from adapter.events.webhook_auth import SignatureCheck, TokenCheck, WebhookRejectedError, token_digest
from adapter.events.webhook_secret_files import ValuesFile

from ..adapter_process import offline, run_command
from .test_declared_sources import build, settings

BODY = b'{"event": "task.completed", "timestamp": "2026-12-05T00:00:00Z"}'
SCHEME = SignatureScheme(header="x-sig", prefix="sha256=")


def _signed(secret: str) -> dict[str, str]:
    return {"x-sig": "sha256=" + hmac.new(secret.encode(), BODY, hashlib.sha256).hexdigest()}


def _replace(path: Path, text: str) -> None:
    """How secret mounts rotate: a new file renamed over the old one."""
    tmp = path.with_name(path.name + ".new")
    tmp.write_text(text)
    tmp.replace(path)


def test_a_secrets_file_rotates_without_a_restart(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "webhook-secrets"
    path.write_text("# OCTOSPINE signing secrets, newest first\nwhsec-old\n")
    check = SignatureCheck(SCHEME, ValuesFile(path, str.encode, reload_interval=0).values)
    assert check.check(BODY, _signed("whsec-old")) == 0

    _replace(path, "whsec-new\nwhsec-old\n")  # the overlap: both verify
    assert check.check(BODY, _signed("whsec-new")) == 0
    assert check.check(BODY, _signed("whsec-old")) == 1

    _replace(path, "whsec-new\n")  # the old one retired
    with pytest.raises(WebhookRejectedError) as info:
        check.check(BODY, _signed("whsec-old"))
    assert (info.value.status, info.value.reason) == (401, "BAD_SIGNATURE")

    caplog.set_level(logging.WARNING)
    _replace(path, "# being rewritten\n")  # a version without a value keeps the last ones
    assert check.check(BODY, _signed("whsec-new")) == 0
    path.unlink()  # and so does a file briefly gone
    assert check.check(BODY, _signed("whsec-new")) == 0
    assert [r.getMessage() for r in caplog.records] == [
        f"{path} holds no value; keeping the previous ones",
        f"cannot re-read secret file {path}; keeping the previous value",
    ]
    assert "whsec" not in caplog.text


def test_a_tokens_file_rotates_without_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "webhook-tokens"
    path.write_text("tok-1\n")
    check = TokenCheck("Authorization", "Bearer", ValuesFile(path, token_digest, reload_interval=0).values)
    assert check.check(BODY, {"authorization": "Bearer tok-1"}) == 0
    _replace(path, "tok-2\n")
    assert check.check(BODY, {"authorization": "Bearer tok-2"}) == 0
    with pytest.raises(WebhookRejectedError, match="BAD_TOKEN"):
        check.check(BODY, {"authorization": "Bearer tok-1"})


def test_the_files_are_wired_from_the_settings(tmp_path: Path) -> None:
    secrets, tokens = tmp_path / "secrets", tmp_path / "tokens"
    secrets.write_text("whsec-1\n")
    tokens.write_text("tok-1\n")
    sources = {"signer": {"secrets_file": str(secrets)}, "plain": {"tokens_file": str(tokens)}}
    built = build(settings(webhook={"sources": sources}), tmp_path)
    endpoints = {e.source: e for e in built.webhook.endpoints}
    unprefixed = {"x-sig": hmac.new(b"whsec-1", BODY, hashlib.sha256).hexdigest()}  # as "signer" declares
    assert endpoints["signer"].verifier.check.check(BODY, unprefixed) == 0
    assert endpoints["plain"].verifier.check.check(BODY, {"authorization": "Bearer tok-1"}) == 0


@pytest.mark.parametrize("content", [None, "", "# nothing yet\n"])
def test_a_file_that_cannot_be_read_at_start_is_named(tmp_path: Path, content: str | None) -> None:
    path = tmp_path / "secrets"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError) as info:
        build(settings(webhook={"sources": {"signer": {"secrets_file": str(path)}}}), tmp_path)
    assert str(info.value).startswith(
        "events.webhook.sources.signer.secrets_file (MESH_EVENTS__WEBHOOK__SOURCES__SIGNER__SECRETS_FILE): "
    )
    assert str(path) in str(info.value)


def test_inline_and_file_together_are_refused() -> None:
    with pytest.raises(ValidationError, match="set secrets or secrets_file, not both"):
        settings(webhook={"sources": {"signer": {"secrets": ["a"], "secrets_file": "/run/secrets/s"}}})
    with pytest.raises(ValidationError, match="set tokens or tokens_file, not both"):
        settings(webhook={"sources": {"plain": {"tokens": ["a"], "tokens_file": "/run/secrets/t"}}})


def test_the_command_exits_2_naming_the_file(tmp_path: Path) -> None:
    env = offline(
        MESH_EVENTS__ENABLED="true",
        MESH_EVENTS__KAFKA__BOOTSTRAP_SERVERS="127.0.0.1:1",
        MESH_EVENTS__SPOOL__PATH=str(tmp_path / "spool" / "events.db"),
        MESH_EVENTS__WEBHOOK__SOURCES__OCTOSPINE__SECRETS_FILE=str(tmp_path / "missing"),
        MESH_WORKERS="1",
    )
    done = run_command(env)
    assert done.returncode == 2, done.stderr[-3000:]
    assert (
        "mesh-adapter: events.webhook.sources.octospine.secrets_file "
        "(MESH_EVENTS__WEBHOOK__SOURCES__OCTOSPINE__SECRETS_FILE): cannot read secret file"
    ) in done.stderr
