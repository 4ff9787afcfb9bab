"""Coverage-guided runs of the fuzz targets with Atheris (``make fuzz``).

Every target is a Hypothesis test; Hypothesis exposes it as
``test.hypothesis.fuzz_one_input(bytes)``, so Atheris (libFuzzer) drives the same
test with inputs it mutates towards new coverage of ``adapter`` code, which is
instrumented on import. libFuzzer ends its process when done, so each target
runs in a child process; this parent prints inputs tried, time and outcome per
target, and exits non-zero when one crashed (the input is kept under var/fuzz/).

    python -m tests.fuzz.atheris_run --seconds 60            # every target
    python -m tests.fuzz.atheris_run --seconds 600 status.mapping
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import subprocess
import sys
import time
import warnings
from pathlib import Path

from .targets import TARGETS

ARTIFACTS = Path("var/fuzz")
_DONE = re.compile(r"Done (\d+) runs in (\d+) second")


def _child(name: str, seconds: int) -> None:
    import atheris  # only here: the parent must run where atheris does not install

    warnings.simplefilter("error")  # as under pytest
    module_name, function = TARGETS[name]
    with atheris.instrument_imports(include=["adapter"]):
        module = importlib.import_module(f"tests.fuzz.{module_name}")
    test = getattr(module, function)
    argv = [
        sys.argv[0],
        f"-max_total_time={seconds}",
        f"-artifact_prefix={ARTIFACTS}/{name}-",
        "-rss_limit_mb=4096",
        "-timeout=60",
        "-print_final_stats=1",
    ]
    atheris.Setup(argv, test.hypothesis.fuzz_one_input)
    atheris.Fuzz()


def _parent(names: list[str], seconds: int) -> int:
    try:
        import atheris  # noqa: F401
    except ImportError:
        print("atheris is not installed on this platform (Linux x86-64 wheels only): skipping")
        return 0
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    failed = 0
    print(f"{'target':28s} {'inputs':>10s} {'seconds':>8s}  outcome")
    for name in names:
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "tests.fuzz.atheris_run", "--child", name, "--seconds", str(seconds)],
            capture_output=True,
            text=True,
            env={**os.environ, "MESH_FUZZ_PROFILE": "long"},
            check=False,
        )
        output = done.stdout + done.stderr
        match = _DONE.search(output)
        runs = match.group(1) if match else "?"
        outcome = "ok" if done.returncode == 0 else f"CRASH (exit {done.returncode})"
        print(f"{name:28s} {runs:>10s} {time.monotonic() - started:8.0f}  {outcome}", flush=True)
        if done.returncode != 0:
            failed += 1
            lines = output.splitlines()
            start = next((i for i, line in enumerate(lines) if line.startswith("Traceback")), len(lines) - 40)
            print("\n".join(line for line in lines[start:] if not line.startswith("#"))[-8000:])
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("targets", nargs="*", help="target names (default: all)")
    parser.add_argument("--seconds", type=int, default=60, help="time per target")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.seconds)
        return 0
    unknown = sorted(set(args.targets) - set(TARGETS))
    if unknown:
        parser.error(f"unknown targets {unknown}; known: {sorted(TARGETS)}")
    return _parent(args.targets or list(TARGETS), args.seconds)


if __name__ == "__main__":
    sys.exit(main())
