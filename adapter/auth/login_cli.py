"""``python -m adapter login <upstream>``: the terminal side of :mod:`adapter.auth.login`."""

from __future__ import annotations

import asyncio
import datetime as dt
import sys

from adapter.config.settings import Settings

from .from_settings import login_request_from_settings
from .login import LoginFailed, LoginResult, run_login

__all__ = ["login_command", "read_line"]


async def read_line(prompt: str) -> str | None:
    """Prints ``prompt`` and reads one line of standard input (None at its end). Waits on
    the event loop, so the login's time limit can stop it (a thread blocked in
    ``readline`` would keep the process alive)."""
    print(prompt, flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    try:
        transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    except ValueError:  # a regular file: reading it does not block
        line = sys.stdin.readline()
        return line or None
    try:
        line_bytes = await reader.readline()
    finally:
        transport.close()
    return line_bytes.decode("utf-8", "replace") or None


def _outcome(upstream: str, result: LoginResult) -> str:
    if result.refresh_token:
        return f"Logged in; the refresh token is stored in {result.token_file} (owner-only)."
    until = "until the vendor rejects it"
    if result.access_token_expires_at:
        expiry = dt.datetime.fromtimestamp(result.access_token_expires_at, dt.UTC)
        until = f"until it expires at {expiry:%Y-%m-%d %H:%M:%S} UTC"
    return (
        f"Logged in, but {upstream} granted no refresh token (no offline access for this client).\n"
        f"The access token is stored in {result.token_file} (owner-only) and used {until};\n"
        f"calls then fail with UPSTREAM_LOGIN_REQUIRED until you run `python -m adapter login {upstream}`\n"
        f"again (the adapter picks the new login up without a restart). Ask the vendor to allow\n"
        f"refresh tokens for the client to avoid this."
    )


def login_command(settings: Settings, upstream: str, *, open_browser: bool, timeout: float) -> int:
    """Runs the login; 0 on success, 1 when it failed, 2 on a configuration problem."""
    if upstream not in settings.upstreams:
        print(f"mesh-adapter: upstream {upstream!r} is not configured", file=sys.stderr)
        return 2
    try:
        request = login_request_from_settings(upstream, settings.upstreams[upstream])
    except ValueError as exc:
        print(f"mesh-adapter: {exc}", file=sys.stderr)
        return 2

    def announce(url: str) -> None:
        print(f"Open this URL to authorize mesh-adapter for {upstream}:\n{url}", flush=True)
        if request.redirect_uri:
            print(
                f"After you approve, your browser goes to {request.redirect_uri}; "
                "copy that page's address (or only its code) and paste it below.",
                flush=True,
            )

    try:
        result = asyncio.run(
            run_login(
                request,
                announce=announce,
                open_browser=open_browser,
                wait_seconds=timeout,
                read_pasted=read_line,
            )
        )
    except LoginFailed as exc:
        print(f"mesh-adapter: login failed: {exc}", file=sys.stderr)
        return 1
    print(_outcome(upstream, result), flush=True)
    return 0
