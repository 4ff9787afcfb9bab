"""``make bench``: every benchmark, one after the other, each printing its table.

python -m bench            # all
python -m bench codec      # one (module name without the package)
"""

from __future__ import annotations

import importlib
import subprocess
import sys

BENCHES = ["codec", "adapter_vs_direct", "graphql_overview", "intake_tracing", "spool_throughput"]


def main(names: list[str]) -> int:
    failed = 0
    for name in names or BENCHES:
        print(f"\n### bench.{name}", flush=True)
        try:
            importlib.import_module(f"bench.{name}")
        except ModuleNotFoundError:
            print(f"(bench.{name} not found)")
            continue
        # A fresh interpreter per benchmark: no warm caches or loops carried over.
        failed |= subprocess.run([sys.executable, "-m", f"bench.{name}"], check=False).returncode
    return failed


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
