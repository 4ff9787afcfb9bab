"""The process's limit on open descriptors, raised to what its caps need.

``security.limits.max_connections`` (4,096 by default) means little under a soft
``RLIMIT_NOFILE`` of 1,024, still the default of many hosts and systemd units: at
~1,000 connections every ``accept``, upstream connection, Kafka reconnect and spool
file would fail with EMFILE, for the whole process. The soft limit may be raised up
to the hard one without privileges, which is what Go's runtime does at start for
every program (Go 1.19); the adapter does the same, up to what it needs, and says so
when the hard limit is too low.
"""

from __future__ import annotations

import logging
import resource

__all__ = ["RESERVED_DESCRIPTORS", "ensure_descriptors"]

logger = logging.getLogger(__name__)

#: Beyond the capped ports' connections: upstream pools, Kafka, the spool, the
#: operator port, the interpreter's own files.
RESERVED_DESCRIPTORS = 1024


def ensure_descriptors(needed: int) -> int:
    """Raises the soft limit to ``needed`` (at most the hard one); returns the soft
    limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return soft
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        logger.info("open descriptors: soft limit raised from %d to %d", soft, target)
    if target < needed:
        logger.warning(
            "open descriptors: the hard limit is %d, below the %d the caps need "
            "(security.limits.max_connections + events.webhook.max_connections + %d); "
            "raise it (ulimit -n, LimitNOFILE) or lower the caps",
            hard,
            needed,
            RESERVED_DESCRIPTORS,
        )
    return target
