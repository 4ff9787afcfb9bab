from __future__ import annotations

import pytest

from adapter.config.settings import PaginationSettings
from adapter.descriptors.loader import load_service_specs
from adapter.descriptors.method_spec import MethodSpec
from adapter.transcoding.json_codec import JsonCodec
from adapter.transcoding.method_transcoder import MethodTranscoder


@pytest.fixture(scope="session")
def specs() -> dict[str, MethodSpec]:
    return {m.path: m for s in load_service_specs() for m in s.methods}


@pytest.fixture(scope="session")
def codec() -> JsonCodec:
    return JsonCodec()


@pytest.fixture(scope="session")
def transcoder(specs: dict[str, MethodSpec], codec: JsonCodec):  # type: ignore[no-untyped-def]
    def build(path: str, pagination: PaginationSettings | None = None) -> MethodTranscoder:
        return MethodTranscoder(specs[path], codec, pagination or PaginationSettings())

    return build
