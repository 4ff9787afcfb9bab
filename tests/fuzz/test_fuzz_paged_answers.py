"""Fuzz target: an upstream's answer to a list call (adapter/transcoding/response_binding.py,
pagination.py, page_tokens.py), in each paging style an upstream may be configured with.

``pagination.answer``: for every paged RPC, in page, offset and cursor style, whatever the
upstream answers for a page (items of the method's shape or not, a total of any kind and
size, a next cursor of any kind and length, envelopes missing): decoding raises nothing but
``MalformedPayloadError``; a ``total_size`` is within its field's range; a
``next_page_token`` the adapter issues, the adapter accepts back: binding the next request
with it selects the position after this page (the upstream's cursor, the next page number,
the next offset), never a refusal. A token that could not be read back would break the
listing one page later, silently.
"""

from __future__ import annotations

from typing import Any

import orjson
from google.protobuf.message import Message
from hypothesis import event, given
from hypothesis import strategies as st

from adapter.config.settings import PaginationSettings
from adapter.descriptors.loader import load_service_specs
from adapter.descriptors.method_spec import PageStyle
from adapter.transcoding.errors import BindingError
from adapter.transcoding.json_codec import JsonCodec, MalformedPayloadError
from adapter.transcoding.method_transcoder import MethodTranscoder
from adapter.transcoding.page_tokens import PageTokenSigner
from adapter.upstream.messages import UpstreamResponse

from .counting import tried
from .profiles import budget
from .strategies import json_scalars, json_shaped_like, json_values

SIGNER = PageTokenSigner.from_keys([b"p" * 32])
CODEC = JsonCodec()
PAGED = [m for s in load_service_specs() for m in s.methods if m.page_style is not PageStyle.NONE]
TRANSCODERS = {
    (m.path, style): MethodTranscoder(
        m, CODEC, PaginationSettings(style=style, max_page_size=100), page_tokens=SIGNER
    )
    for m in PAGED
    for style in ("page", "offset", "cursor")
}
_INT32_MAX = 2**31 - 1

_TOTALS = st.one_of(
    st.integers(0, 10_000), st.sampled_from([2**31 - 1, 2**31, 2**63, 2**64, 10**30, -1]), json_values()
)
_CURSORS = st.one_of(
    st.text(alphabet="abcXYZ0189-_=", min_size=1, max_size=60),
    st.sampled_from(["c" * 1500, "c" * 5000, "é" * 800, "\x00", " "]),
    st.text(max_size=80),
    json_scalars(),
)


@st.composite
def _page(draw: st.DrawFn) -> tuple[tuple[str, str], Message, bytes]:
    key = draw(st.sampled_from(sorted(TRANSCODERS)))
    transcoder = TRANSCODERS[key]
    spec = transcoder.spec
    request = spec.input_type(page_size=draw(st.one_of(st.integers(1, 8), st.integers(0, 300))))
    items_field = spec.output_type.DESCRIPTOR.fields_by_name[spec.response_body]
    item = items_field.message_type
    # Mostly items that decode (empty objects are valid messages): paging is the target.
    items: Any = draw(
        st.one_of(
            st.integers(0, 8).map(lambda n: [{}] * n),
            st.integers(0, 8).map(lambda n: [{}] * n),
            st.lists(json_shaped_like(item) if item is not None else json_scalars(), max_size=3),
            json_values(),
        )
    )
    meta: dict[str, Any] = {}
    if draw(st.booleans()):
        meta["total"] = draw(_TOTALS)
    if draw(st.integers(0, 3)):
        meta["next_cursor"] = draw(_CURSORS)
    document: Any = {"meta": meta} if draw(st.integers(0, 5)) else draw(json_values())
    if isinstance(document, dict):
        if spec.envelope:
            document[spec.envelope] = items
        else:
            document = items if not meta else {**meta, "items": items}
    try:
        body = orjson.dumps(document)
    except orjson.JSONEncodeError:  # deeper or larger than orjson writes: an upstream still could
        body = b'{"data":' + b"[" * 1020 + b"]" * 1020 + b"}"
    return key, request, body


@budget(400)
@given(_page())
def test_a_page_decodes_or_is_malformed_and_its_next_token_is_accepted_back(
    case: tuple[tuple[str, str], Message, bytes],
) -> None:
    tried("pagination.answer")
    key, request, body = case
    transcoder = TRANSCODERS[key]
    bound = transcoder.bind(request)
    answer = UpstreamResponse(status=200, headers={"content-type": "application/json"}, body=body)
    try:
        page = transcoder.decode(answer, bound)
    except MalformedPayloadError:
        event("malformed")
        return
    total = getattr(page, "total_size", 0)
    assert 0 <= total <= _INT32_MAX
    token = page.next_page_token  # type: ignore[attr-defined]
    if not token:
        event("last page")
        return
    event(f"next page ({key[1]})")
    follow = type(request)()
    follow.CopyFrom(request)
    follow.page_token = token  # type: ignore[attr-defined]
    try:
        following = transcoder.bind(follow)
    except BindingError as exc:
        raise AssertionError(
            f"the adapter refused its own next_page_token ({len(token)} chars): {exc}"
        ) from None
    assert following.page is not None and bound.page is not None
    document = orjson.loads(body)
    if key[1] == "cursor":
        assert following.page.at == document["meta"]["next_cursor"]
    elif key[1] == "page":
        assert following.page.at == bound.page.at + 1
    else:
        assert isinstance(following.page.at, int) and following.page.at > bound.page.at
