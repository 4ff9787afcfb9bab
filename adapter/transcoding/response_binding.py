"""Upstream JSON answer -> response message.

The payload is found under the method's ``response_envelope`` key (if any) and
decoded into the ``response_body`` field (if any) or the whole message. For
paged methods ``next_page_token`` and ``total_size`` are filled from the
upstream's paging metadata.
"""

from __future__ import annotations

from typing import Any

import orjson
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from adapter.descriptors.access import descriptor_of, field_of
from adapter.descriptors.method_spec import MethodSpec

from .json_codec import Decode, JsonCodec, MalformedPayloadError
from .pagination import PagePosition, Paginator

__all__ = ["ResponseBinder", "UnexpectedContentTypeError"]

_JSON_TYPES = ("application/json", "text/json")
_FD = FieldDescriptor
_32_BIT = frozenset({_FD.TYPE_INT32, _FD.TYPE_SINT32, _FD.TYPE_SFIXED32, _FD.TYPE_UINT32, _FD.TYPE_FIXED32})
_INT32_MAX = 2**31 - 1
_INT64_MAX = 2**63 - 1


class UnexpectedContentTypeError(ValueError):
    """The upstream answered a success with something other than JSON."""

    def __init__(self, content_type: str) -> None:
        super().__init__(f"expected application/json, got {content_type or 'no content type'}")
        self.content_type = content_type


def is_json(content_type: str) -> bool:
    return content_type in _JSON_TYPES or content_type.endswith("+json")


class ResponseBinder:
    """Decodes successful upstream answers of one method; built once at start-up."""

    def __init__(self, spec: MethodSpec, codec: JsonCodec, paginator: Paginator | None) -> None:
        self.spec = spec
        self._codec = codec
        self._paginator = paginator
        out = descriptor_of(spec.output_type)
        self._empty = out.full_name == "google.protobuf.Empty"
        self._body_decoder: Decode | None = None
        if spec.response_body:
            self._body_decoder = codec.field_decoder(field_of(out, spec.response_body))
        # AIP-158: next_page_token is required, total_size optional (not every vendor counts).
        total_field = out.fields_by_name.get("total_size")
        self._has_total = total_field is not None
        # A count past the field's range is left out (AIP-158: it is an estimate anyway),
        # rather than failing the page it came with.
        narrow = total_field is not None and total_field.type in _32_BIT
        self._max_total = _INT32_MAX if narrow else _INT64_MAX
        if paginator is not None and "next_page_token" not in out.fields_by_name:
            raise ValueError(f"{spec.path}: a paged method's response needs a next_page_token field")
        codec.decode_kwargs(out, {})  # builds the field tables now, not on the first call

    def decode(
        self,
        body: bytes,
        content_type: str,
        page: PagePosition | None = None,
        fingerprint: str = "",
    ) -> Message:
        """Raises MalformedPayloadError or UnexpectedContentTypeError."""
        spec = self.spec
        if self._empty or not body.strip():
            if self._empty or spec.response_body == "":
                return spec.output_type()
            raise MalformedPayloadError("", "empty body where a payload was expected")
        document, payload = self._payload(body, content_type)

        if self._body_decoder is not None:
            kwargs: dict[str, Any] = {}
            if payload is not None:
                kwargs[spec.response_body] = self._body_decoder(payload, spec.envelope or spec.response_body)
        else:
            kwargs = self._codec.decode_kwargs(descriptor_of(spec.output_type), payload, spec.envelope)

        if self._paginator is not None and page is not None:
            items = payload if isinstance(payload, list) else ()
            token, total = self._paginator.next_page(document, len(items), page, fingerprint)
            if token:
                kwargs["next_page_token"] = token
            if total and self._has_total and total <= self._max_total:
                kwargs["total_size"] = total
        try:
            return self._codec.build(spec.output_type, kwargs)
        except (TypeError, ValueError) as exc:
            raise MalformedPayloadError(spec.envelope, str(exc)) from exc

    def decode_raw(
        self, body: bytes, content_type: str, page: PagePosition | None = None, fingerprint: str = ""
    ) -> tuple[Any, str]:
        """``(payload JSON, next_page_token)`` without building a message: the JSON of
        the ``response_body`` field (a list method's items) or of the whole answer.
        For readers that must take the items one by one (event backfill: one bad item
        must not hide the others). Raises MalformedPayloadError or
        UnexpectedContentTypeError when the answer as a whole is unreadable."""
        if not body.strip():
            return None, ""
        document, payload = self._payload(body, content_type)
        token = ""
        if self._paginator is not None and page is not None:
            items = payload if isinstance(payload, list) else ()
            token, _ = self._paginator.next_page(document, len(items), page, fingerprint)
        return payload, token

    def _payload(self, body: bytes, content_type: str) -> tuple[Any, Any]:
        """The parsed answer and the payload inside its envelope."""
        spec = self.spec
        if content_type and not is_json(content_type):
            raise UnexpectedContentTypeError(content_type)
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise MalformedPayloadError("", f"not valid JSON ({exc})") from None
        payload: Any = document
        if spec.envelope:
            if not isinstance(document, dict) or spec.envelope not in document:
                raise MalformedPayloadError("", f"expected the payload under {spec.envelope!r}")
            payload = document[spec.envelope]
        return document, payload
