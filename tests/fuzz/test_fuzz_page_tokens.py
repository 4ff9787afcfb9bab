"""Fuzz target: page-token decoding (adapter/transcoding/page_tokens.py and the
Paginator reading them).

Invariants: any text, any change to a valid token, and any payload signed with
another key are refused with BindingError (nothing else escapes); a signed
payload round-trips; whatever payload the adapter's own key signed (the worst
case: a leaked key, or an old format), the position read from it has a page size
within the configured maximum.
"""

from __future__ import annotations

from typing import Any

from hypothesis import assume, given
from hypothesis import strategies as st

from adapter.config.settings import PaginationSettings
from adapter.descriptors.method_spec import PageStyle
from adapter.transcoding.errors import BindingError
from adapter.transcoding.page_tokens import PageTokenSigner
from adapter.transcoding.pagination import PagePosition, Paginator

from .counting import tried
from .profiles import budget
from .strategies import json_scalars

SIGNER = PageTokenSigner.from_keys([b"k" * 32])
OTHER = PageTokenSigner.from_keys([b"o" * 32])
SETTINGS = PaginationSettings(max_page_size=100)
PAGINATORS = {
    style: Paginator(style, SETTINGS, tokens=SIGNER, method="/m")
    for style in PageStyle
    if style.value != "none"
}
FINGERPRINT = "f" * 32

_PAYLOAD_VALUES = st.one_of(json_scalars(), st.lists(json_scalars(), max_size=2))
_PAYLOADS = st.one_of(
    st.dictionaries(st.text(max_size=3), _PAYLOAD_VALUES, max_size=6),
    st.fixed_dictionaries(
        {
            "v": st.one_of(st.just(2), _PAYLOAD_VALUES),
            "m": st.one_of(st.just("/m"), st.text(max_size=4)),
            "s": st.one_of(st.sampled_from(["page", "cursor", "offset"]), st.text(max_size=4)),
            "p": _PAYLOAD_VALUES,
            "n": st.one_of(st.integers(-(2**63), 2**63 - 1), _PAYLOAD_VALUES),  # what orjson can sign
            "f": st.one_of(st.just(FINGERPRINT), st.text(max_size=4)),
        }
    ),
)


@budget(500)
@given(st.one_of(st.text(max_size=120), st.binary(max_size=80).map(lambda b: b.decode("latin-1"))))
def test_any_text_is_refused_with_binding_error(text: str) -> None:
    tried("page_tokens.verify_text")
    try:
        SIGNER.verify(text)
    except BindingError:
        return
    raise AssertionError(f"accepted a token the signer never issued: {text!r}")


@budget(300)
@given(_PAYLOADS, st.data())
def test_signed_payloads_round_trip_and_any_change_is_refused(
    payload: dict[str, Any], data: st.DataObject
) -> None:
    tried("page_tokens.mutate")
    token = SIGNER.sign(payload)
    assert SIGNER.verify(token) == payload
    position = data.draw(st.integers(0, len(token)))
    replacement = data.draw(
        st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=", max_size=3)
    )
    cut = data.draw(st.integers(0, 3))
    mutated = token[:position] + replacement + token[position + cut :]
    assume(mutated != token)
    for bad in (mutated, OTHER.sign(payload)):
        try:
            SIGNER.verify(bad)
        except BindingError:
            continue
        raise AssertionError(f"accepted an altered token: {bad!r}")


@budget(500)
@given(
    st.sampled_from(sorted(PAGINATORS, key=lambda s: s.value)),
    st.integers(-(2**31), 2**31 - 1),
    st.one_of(_PAYLOADS.map(SIGNER.sign), st.text(max_size=60)),
)
def test_positions_from_any_token_stay_within_the_limits(
    style: PageStyle, page_size: int, token: str
) -> None:
    tried("page_tokens.position")
    try:
        position = PAGINATORS[style].position(page_size, token, FINGERPRINT)
    except BindingError:
        return
    assert isinstance(position, PagePosition)
    assert 1 <= position.size <= SETTINGS.max_page_size
    if style is PageStyle.CURSOR:
        assert isinstance(position.at, str)
    else:
        assert type(position.at) is int and position.at >= 0
