"""``make bench``: every benchmark, one after the other, each printing its table.

python -m bench            # all
python -m bench codec      # one (module name without the package)
python -m bench --smoke    # each once, seconds long (what `make test` runs): checks they work
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

BENCHES = [
    "codec",
    "adapter_vs_direct",
    "caller_security",
    "graphql_overview",
    "intake_tracing",
    "span_cost",
    "histogram_cost",
    "failure_log_cost",
    "spool_throughput",
    "spool_store_cost",
    "websocket_intake",
    "large_payloads",
    "peer",
]


def main(names: list[str]) -> int:
    # BENCH_SMOKE=1 makes every bench run a few seconds only (no meaningful figures).
    env = {**os.environ, "BENCH_SMOKE": "1"} if "--smoke" in names else None
    names = [n for n in names if n != "--smoke"]
    failed = 0
    for name in names or BENCHES:
        print(f"\n### bench.{name}", flush=True)
        try:
            importlib.import_module(f"bench.{name}")
        except ModuleNotFoundError:
            print(f"(bench.{name} not found)")
            continue
        # A fresh interpreter per benchmark: no warm caches or loops carried over.
        failed |= subprocess.run([sys.executable, "-m", f"bench.{name}"], check=False, env=env).returncode
    return failed


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
