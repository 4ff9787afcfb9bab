"""``python -m adapter`` with a function-call counter on its event loop's thread,
for :mod:`bench.peer.call_census`.

    CENSUS_OUT=/tmp/calls.json python -m bench.peer.census_hook

SIGUSR1 starts counting (``sys.setprofile`` on the main thread, where the loop runs);
the next SIGUSR1 stops and writes ``CENSUS_OUT``: one row per function, ``[file,
qualified name, calls]``, C functions under the file of the Python code that called
them. Counting costs the adapter several times its CPU, so nothing is timed while
it runs: the counts are the result.
"""

from __future__ import annotations

import collections
import json
import os
import runpy
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

__all__ = ["Census"]


class Census:
    def __init__(self, out: str) -> None:
        self._out = out
        self._on = False
        self.calls: collections.Counter[tuple[str, str, bool]] = collections.Counter()

    def _count(self, frame: FrameType, event: str, arg: Any) -> None:
        code = frame.f_code
        if event == "call":  # a coroutine's or generator's resumption is a call too
            name = code.co_qualname
            if code.co_filename == "<string>":  # generated: a dataclass's __init__, a namedtuple's __new__
                name = _generated_owner(frame) or name
            self.calls[(code.co_filename, name, False)] += 1
        elif event == "c_call":
            name = getattr(arg, "__qualname__", None) or getattr(arg, "__name__", None) or repr(arg)
            self.calls[(code.co_filename, name, True)] += 1

    def toggle(self, signum: int = 0, frame: object = None) -> None:
        self._on = not self._on
        if self._on:
            self.calls.clear()
            sys.setprofile(self._count)
            return
        sys.setprofile(None)
        rows = [[file, name, c_function, count] for (file, name, c_function), count in self.calls.items()]
        part = Path(self._out + ".part")
        part.write_text(json.dumps(rows))
        part.replace(self._out)  # whole, or not there yet


def _generated_owner(frame: FrameType) -> str | None:
    """``Class.__init__`` (or ``Class.__new__``) for code generated at run time, which
    is all named ``__create_fn__.<locals>.__init__`` or ``<lambda>``: which values a
    call builds, by class."""
    local = frame.f_locals
    if "self" in local:
        return f"{type(local['self']).__qualname__}.{frame.f_code.co_name}"
    owner = local.get("_cls")
    return f"{owner.__qualname__}.__new__" if isinstance(owner, type) else None


def main() -> None:
    census = Census(os.environ["CENSUS_OUT"])
    signal.signal(signal.SIGUSR1, census.toggle)
    sys.argv = ["adapter"]
    runpy.run_module("adapter", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
