"""The startup heap leaves the collector's sight, and a full collection gets cheap."""

from __future__ import annotations

import gc

from adapter.config.settings import Settings
from adapter.gc_tuning import freeze_startup_heap
from adapter.runtime import MeshAdapter


def test_freezing_the_assembled_adapter_takes_it_out_of_full_collections() -> None:
    adapter = MeshAdapter(Settings())
    frozen_before = gc.get_freeze_count()
    try:
        freeze_startup_heap()
        assert gc.get_freeze_count() > frozen_before + 10_000  # the adapter's objects, at least
        # What a full collection still walks (frozen objects are not listed): a tenth at most.
        tracked = len(gc.get_objects())
        assert tracked < gc.get_freeze_count() / 10, (tracked, gc.get_freeze_count())
    finally:
        gc.unfreeze()
        del adapter
