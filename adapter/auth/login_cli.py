"""``python -m adapter login <upstream>``: the terminal side of :mod:`adapter.auth.login`."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import fcntl
import os
import sys

from adapter.config.settings import Settings

from .from_settings import login_request_from_settings
from .login import LoginFailed, LoginResult, run_login

__all__ = ["TerminalLines", "login_command"]


class TerminalLines:
    """Lines of standard input, read on the event loop (so the login's time limit can stop
    a read; a thread blocked in ``readline`` would keep the process alive). One reader for
    the whole login: nothing typed ahead is lost between prompts."""

    def __init__(self) -> None:
        self._started = False
        self._reader: asyncio.StreamReader | None = None
        self._transport: asyncio.ReadTransport | None = None
        self._flags = 0

    async def read(self, prompt: str) -> str | None:
        """Prints ``prompt`` and returns the next line (None at the end of input)."""
        print(prompt, flush=True)
        if not self._started:
            self._started = True
            await self._connect()
        if self._reader is None:  # a regular file: reading it does not block
            return sys.stdin.readline() or None
        line = await self._reader.readline()
        return line.decode("utf-8", "replace") or None

    async def _connect(self) -> None:
        # A duplicate descriptor: closing the transport must not close sys.stdin. asyncio
        # makes it non-blocking, a flag a terminal shares with the shell: restored on close.
        pipe = os.fdopen(os.dup(sys.stdin.fileno()), "rb", buffering=0)
        self._flags = fcntl.fcntl(pipe.fileno(), fcntl.F_GETFL)
        reader = asyncio.StreamReader()
        try:
            transport, _ = await asyncio.get_running_loop().connect_read_pipe(
                lambda: asyncio.StreamReaderProtocol(reader), pipe
            )
        except ValueError:  # not a pipe, socket or terminal
            pipe.close()
            return
        self._reader, self._transport = reader, transport

    def close(self) -> None:
        """Idempotent."""
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()
            with contextlib.suppress(OSError, ValueError):
                fcntl.fcntl(sys.stdin.fileno(), fcntl.F_SETFL, self._flags)


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

    async def login() -> LoginResult:
        lines = TerminalLines()
        try:
            return await run_login(
                request,
                announce=announce,
                open_browser=open_browser,
                wait_seconds=timeout,
                read_pasted=lines.read,
            )
        finally:
            lines.close()

    try:
        result = asyncio.run(login())
    except LoginFailed as exc:
        print(f"mesh-adapter: login failed: {exc}", file=sys.stderr)
        return 1
    print(_outcome(upstream, result), flush=True)
    return 0
