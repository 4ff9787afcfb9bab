"""Fuzz target: request binding (adapter/transcoding/request_binding.py), for
every RPC the protos map to an upstream, with messages drawn from the input
type's descriptor (hostile values included).

Invariants: binding raises nothing but BindingError; a bound request's path stays
under the template's literal prefix; it carries only the headers the adapter sets
(``accept``, ``content-type``) plus ``idempotency-key`` holding exactly the
request's key field, in visible ASCII (nothing from a caller appears in a header
it was not bound to); the body is JSON within the size limit and leaves out the
fields bound elsewhere; page sizes never exceed the configured maximum.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from google.protobuf.message import Message
from hypothesis import event, given
from hypothesis import strategies as st

from adapter.config.settings import PaginationSettings
from adapter.descriptors.loader import load_service_specs
from adapter.transcoding.errors import BindingError
from adapter.transcoding.json_codec import JsonCodec
from adapter.transcoding.method_transcoder import MethodTranscoder
from adapter.transcoding.page_tokens import PageTokenSigner
from adapter.transcoding.request_limits import RequestLimits

from .counting import tried
from .invariants import assert_stays_under_prefix
from .profiles import budget
from .strategies import messages

PAGINATION = PaginationSettings(max_page_size=100)
LIMITS = RequestLimits()
SIGNER = PageTokenSigner.from_keys([b"k" * 32])
CODEC = JsonCodec()
TRANSCODERS = {
    m.path: MethodTranscoder(m, CODEC, PAGINATION, page_tokens=SIGNER, limits=LIMITS)
    for s in load_service_specs()
    for m in s.methods
}
_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+\Z")
_PAGE_SIZE_PARAMS = {PAGINATION.per_page_param, PAGINATION.limit_param}
_BOUND_ELSEWHERE = {"page_size", "page_token", "update_mask"}


@st.composite
def _request(draw: st.DrawFn) -> tuple[str, Message]:
    path = draw(st.sampled_from(sorted(TRANSCODERS)))
    spec = TRANSCODERS[path].spec
    message = draw(messages(spec.input_type.DESCRIPTOR, hostile=draw(st.booleans())))
    for var in spec.template.variables:  # usually give path fields a value, as callers do
        if draw(st.integers(0, 3)):
            target: Any = message
            for name in var.field_path[:-1]:
                target = getattr(target, name)
            if not getattr(target, var.field_path[-1]):
                setattr(target, var.field_path[-1], draw(st.sampled_from(["x1", "dev_001", "a b", "é"])))
    return path, message


@budget(600)
@given(_request())
def test_binding_raises_only_binding_error_and_keeps_the_invariants(case: tuple[str, Message]) -> None:
    tried("request_binding.bind")
    path, message = case
    transcoder = TRANSCODERS[path]
    spec = transcoder.spec
    try:
        bound = transcoder.bind(message)
    except BindingError as exc:
        event(f"refused: {exc.field.split('[')[0]}")
        return
    event("bound")
    request = bound.request
    assert_stays_under_prefix(spec.template, request.path)

    headers = dict(request.headers)
    assert set(headers) <= {"accept", "content-type", "idempotency-key"}, headers
    key = getattr(message, spec.idempotency_key_field) if spec.idempotency_key_field else ""
    assert headers.get("idempotency-key", "") == key
    assert all(_VISIBLE_ASCII.match(v) for v in headers.values()), headers

    for name, value in request.query:
        assert isinstance(name, str) and isinstance(value, str)
        if name in _PAGE_SIZE_PARAMS:
            assert 1 <= int(value) <= PAGINATION.max_page_size

    if request.body is not None:
        assert len(request.body) <= LIMITS.max_body_bytes
        document = orjson.loads(request.body)
        if spec.body == "*":
            assert isinstance(document, dict)
            bound_elsewhere = _BOUND_ELSEWHERE | {v.field_path[0] for v in spec.template.variables}
            bound_elsewhere |= {spec.idempotency_key_field} - {""}
            assert not bound_elsewhere & set(document), (bound_elsewhere, document)
