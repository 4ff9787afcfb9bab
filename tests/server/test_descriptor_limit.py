"""The soft limit on open descriptors, raised at start to what max_connections needs
(in a child process, so the test's own limits stay as they are)."""

from __future__ import annotations

import resource
import subprocess
import sys

import pytest

CHILD = """
import logging, resource, sys
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stdout)
from adapter.server.descriptor_limit import ensure_descriptors
print("returned", ensure_descriptors(int(sys.argv[1])))
print("soft", resource.getrlimit(resource.RLIMIT_NOFILE)[0])
"""


def _run(needed: int, soft: int, hard: int) -> str:
    def lowered() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(needed)],
        preexec_fn=lowered,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


_, HARD = resource.getrlimit(resource.RLIMIT_NOFILE)
needs_room = pytest.mark.skipif(
    HARD != resource.RLIM_INFINITY and HARD < 2000,
    reason="the machine's hard limit is below the test's figures",
)


@needs_room
def test_a_low_soft_limit_is_raised_to_what_is_needed() -> None:
    out = _run(needed=1500, soft=256, hard=2000)
    assert "returned 1500" in out and "soft 1500" in out
    assert "INFO open descriptors: soft limit raised from 256 to 1500" in out


@needs_room
def test_a_hard_limit_below_the_need_is_used_and_named() -> None:
    out = _run(needed=5000, soft=256, hard=1200)
    assert "soft 1200" in out
    assert "WARNING open descriptors: the hard limit is 1200, below the 5000" in out


@needs_room
def test_a_soft_limit_already_high_enough_is_left_alone() -> None:
    out = _run(needed=500, soft=1000, hard=2000)
    assert "soft 1000" in out and "raised" not in out
