"""``python -m adapter login <upstream>``: the terminal side of :mod:`adapter.auth.login`."""

from __future__ import annotations

import asyncio
import sys

from adapter.config.settings import Settings

from .from_settings import login_request_from_settings
from .login import LoginFailed, run_login

__all__ = ["login_command"]


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

    try:
        result = asyncio.run(
            run_login(request, announce=announce, open_browser=open_browser, wait_seconds=timeout)
        )
    except LoginFailed as exc:
        print(f"mesh-adapter: login failed: {exc}", file=sys.stderr)
        return 1
    print(f"Logged in; the refresh token is stored in {result.token_file} (owner-only).", flush=True)
    return 0
