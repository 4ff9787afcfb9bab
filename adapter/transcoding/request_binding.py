"""Request message -> upstream REST call, per the method's ``google.api.http`` rule.

- Path variables (``{alert.id}``) come from the named fields, percent-encoded.
- ``body: "*"`` sends every field not bound to the path as the JSON body;
  ``body: "<field>"`` sends that field; the other fields become query parameters.
- Query parameters: nested fields dotted (``filter.kind=x``), repeated fields
  repeated (``tag=a&tag=b``), enums by their wire name, timestamps in RFC 3339.
  proto3 fields at their default value are not sent (``optional`` ones are when set).
- AIP fields are not forwarded as such: ``page_size``/``page_token`` become the
  upstream's paging parameters, the idempotency-key field becomes the
  ``Idempotency-Key`` header, and ``update_mask`` trims the body to the masked
  fields (JSON merge-patch: a masked field left unset is sent as ``null``).
- Before anything is bound, :class:`RequestValidator` refuses values no upstream
  call can carry (enum numbers outside the enum, out-of-range timestamps...),
  and the idempotency key must fit a header (1-255 visible ASCII characters):
  nothing from a caller reaches a header it was not bound to, nor splits one.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import orjson
from google.protobuf import descriptor as _d
from google.protobuf.message import Message

from adapter.call_values import call_value
from adapter.descriptors.access import descriptor_of, enum_of, field_of, message_of
from adapter.descriptors.method_spec import MethodSpec
from adapter.descriptors.path_template import PathTemplateError
from adapter.descriptors.wire_names import enum_wire_names, wire_name
from adapter.upstream.messages import UpstreamRequest

from .errors import BindingError
from .json_codec import JsonCodec
from .json_values import WKT_ENCODERS
from .pagination import PagePosition, Paginator, filters_fingerprint
from .request_limits import RequestLimits, check_body, check_url
from .request_validation import RequestValidator

__all__ = ["BoundRequest", "RequestBinder"]

_FD = _d.FieldDescriptor
_PAGING_FIELDS = ("page_size", "page_token")
# Sorted keys: the same request always makes the same bytes. Map and Struct order
# in protobuf is not stable across senders (Go randomises it), and upstreams compare
# retried bodies sent under one Idempotency-Key.
_CANONICAL = orjson.OPT_SORT_KEYS
_UPDATE_MASK = "update_mask"
# Remembered binds are keyed by the request's bytes, which a caller controls (unknown
# fields bind to nothing yet count): past this size a request is bound but not kept,
# so the memory is bounded by max_entries x this, not by the gRPC message size limit.
_REMEMBERED_KEY_BYTES = 2048
# Visible ASCII only: no CR/LF (header injection), no spaces, nothing httpx must encode.
_HEADER_VALUE = re.compile(r"[\x21-\x7e]{1,255}\Z")
# Query strings spell these as their JSON forms do.
_QUERY_WKT: dict[str, Callable[[Any], str]] = {
    name: WKT_ENCODERS[name]
    for name in ("google.protobuf.Timestamp", "google.protobuf.Duration", "google.protobuf.FieldMask")
}
_QUERY_FORBIDDEN = frozenset(
    {
        "google.protobuf.Struct",
        "google.protobuf.Value",
        "google.protobuf.ListValue",
        "google.protobuf.Any",
    }
)


@call_value
class BoundRequest:
    """The upstream call plus the paging state needed to read its answer."""

    request: UpstreamRequest
    page: PagePosition | None
    fingerprint: str


def _scalar_to_query(field: _d.FieldDescriptor) -> Callable[[Any], str]:
    if field.type == _FD.TYPE_ENUM:
        names = enum_wire_names(enum_of(field))
        return lambda n: names.get(n, str(n))
    if field.type == _FD.TYPE_BOOL:
        return lambda b: "true" if b else "false"
    if field.type == _FD.TYPE_BYTES:
        return lambda b: b.hex()
    if field.type == _FD.TYPE_MESSAGE:
        name = message_of(field).full_name
        if name in _QUERY_WKT:
            return _QUERY_WKT[name]
        if name.startswith("google.protobuf.") and name.endswith("Value"):  # wrappers
            return lambda m: str(m.value).lower() if isinstance(m.value, bool) else str(m.value)
    return str


class RequestBinder:
    """Binds request messages of one method; built once at start-up."""

    def __init__(
        self,
        spec: MethodSpec,
        codec: JsonCodec,
        paginator: Paginator | None,
        limits: RequestLimits = RequestLimits(),  # noqa: B008 (frozen)
        *,
        remembered: int = 0,
    ) -> None:
        """``remembered``: how many binds to keep, by the request's bytes, for a
        method whose answers the response cache keeps (0: none; never for a paged
        method, whose page token expires). A cache hit is a repeated request, and
        binding one cost ~35 µs of CPU in the running adapter (docs/benchmarks.md)."""
        self.spec = spec
        self._remembered: dict[bytes, BoundRequest] | None = (
            {} if remembered > 0 and paginator is None else None
        )
        self._remember_at_most = remembered
        self._limits = limits
        self._codec = codec
        self._paginator = paginator
        desc = descriptor_of(spec.input_type)
        self._validator = RequestValidator(desc)
        fields = desc.fields_by_name
        self._path_vars = [v.field_path for v in spec.template.variables]
        bound_top = {p[0] for p in self._path_vars if len(p) == 1}
        excluded = set(bound_top)
        if paginator is not None:
            for name in _PAGING_FIELDS:
                if name not in fields:
                    raise ValueError(f"{spec.path}: a paged method needs a {name} field")
            excluded.update(_PAGING_FIELDS)
        if spec.idempotency_key_field:
            excluded.add(spec.idempotency_key_field)
        self._mask_field = ""
        mask = fields.get(_UPDATE_MASK)
        if (
            spec.body not in ("", "*")
            and mask is not None
            and mask.message_type is not None
            and mask.message_type.full_name == "google.protobuf.FieldMask"
        ):
            self._mask_field = _UPDATE_MASK
            excluded.add(_UPDATE_MASK)
        self._body_excluded = frozenset(excluded)
        if spec.body == "*":
            self._query_fields: frozenset[str] = frozenset()
        else:
            self._query_fields = frozenset(
                f.name for f in desc.fields if f.name not in excluded and f.name != spec.body
            )
            for name in self._query_fields:
                _check_query_field(field_of(desc, name), spec.path, depth=0)
        self._query_encoders: dict[str, Callable[[Any], str]] = {}

    def bind(self, message: Message) -> BoundRequest:
        """Raises BindingError naming the field when the request cannot be sent."""
        remembered = self._remembered
        if remembered is None:
            return self._bind(message)
        # Equal bytes are an equal message, which binds the same (binding reads the
        # message alone); a request that does not bind is never kept.
        key = message.SerializeToString(deterministic=True)
        if len(key) > _REMEMBERED_KEY_BYTES:  # e.g. padded with unknown fields: not kept
            return self._bind(message)
        bound = remembered.get(key)
        if bound is None:
            bound = self._bind(message)
            if len(remembered) >= self._remember_at_most:
                del remembered[next(iter(remembered))]  # the oldest
            remembered[key] = bound
        return bound

    def _bind(self, message: Message) -> BoundRequest:
        spec = self.spec
        self._validator.check(message)
        key = getattr(message, spec.idempotency_key_field) if spec.idempotency_key_field else ""
        if key and not _HEADER_VALUE.match(key):
            raise BindingError(
                spec.idempotency_key_field,
                "must be 1-255 visible ASCII characters (it is sent as the Idempotency-Key header)",
            )
        path_values = {".".join(p): self._path_value(message, p) for p in self._path_vars}
        try:
            path = spec.template.render(path_values)
        except PathTemplateError as exc:
            raise BindingError(exc.field, exc.problem) from None

        query: list[tuple[str, str]] = []
        if self._query_fields:
            self._append_query(message, "", self._query_fields, query)
        fingerprint = ""  # ties a page token to its filters: only paged methods have one
        page: PagePosition | None = None
        if self._paginator is not None:
            fingerprint = filters_fingerprint(query)
            page = self._paginator.position(
                message.page_size,  # type: ignore[attr-defined]
                message.page_token,  # type: ignore[attr-defined]
                fingerprint,
            )
            query.extend(self._paginator.query(page))
        check_url(path, path_values, query, self._limits)

        body = self._body(message)
        check_body(body, spec.body, self._limits)
        headers: list[tuple[str, str]] = [("accept", "application/json")]
        if body is not None:
            headers.append(("content-type", "application/json"))
        if key:
            headers.append(("idempotency-key", key))
        request = UpstreamRequest(
            method=spec.http_method,
            path=path,
            route=spec.route,
            query=tuple(query),
            body=body,
            headers=tuple(headers),
            idempotent=spec.idempotent or bool(key),
            idempotency_key=key,
        )
        return BoundRequest(request=request, page=page, fingerprint=fingerprint)

    # path -------------------------------------------------------------------

    @staticmethod
    def _path_value(message: Message, field_path: tuple[str, ...]) -> str:
        value: Any = message
        for name in field_path:
            field = field_of(descriptor_of(value), name)
            value = getattr(value, name)
        if field.type == _FD.TYPE_ENUM:
            return "" if value == 0 else enum_wire_names(enum_of(field)).get(value, str(value))
        if field.type == _FD.TYPE_BOOL:
            return "true" if value else "false"
        return str(value) if value not in ("", 0) else ""

    # query ------------------------------------------------------------------

    def _append_query(
        self, message: Message, prefix: str, only: frozenset[str] | None, out: list[tuple[str, str]]
    ) -> None:
        for field, value in message.ListFields():
            if only is not None and field.name not in only:
                continue
            key = prefix + wire_name(field)
            if (
                field.type == _FD.TYPE_MESSAGE
                and message_of(field).full_name not in _QUERY_WKT
                and not _is_wrapper(field)
            ):
                if field.is_repeated:
                    raise BindingError(key, "repeated messages cannot be sent as query parameters")
                self._append_query(value, key + ".", None, out)
                continue
            enc = self._query_encoders.get(field.full_name)
            if enc is None:
                enc = self._query_encoders[field.full_name] = _scalar_to_query(field)
            if field.is_repeated:
                out.extend((key, enc(v)) for v in value)
            else:
                out.append((key, enc(value)))

    # body -------------------------------------------------------------------

    def _body(self, message: Message) -> bytes | None:
        spec = self.spec
        if not spec.body:
            return None
        if spec.body == "*":
            doc = self._codec.encode(message)
            for name in self._body_excluded:
                doc.pop(name, None)
            for field_path in self._path_vars:  # nested path fields stay out of the body too
                _pop_path(doc, field_path)
            return orjson.dumps(doc, option=_CANONICAL)
        field = field_of(descriptor_of(message), spec.body)
        value = getattr(message, spec.body)
        # A well-known type (Struct, Timestamp...) as the body is sent in its JSON form.
        if field.type == _FD.TYPE_MESSAGE and not field.is_repeated and not _well_known(field):
            doc_any: Any = self._codec.encode(value)
            if self._mask_field and getattr(message, self._mask_field).paths:
                doc_any = _apply_mask(
                    doc_any, value, list(getattr(message, self._mask_field).paths), spec.body
                )
        else:
            doc_any = self._codec.field_encoder(field)(value)
        return orjson.dumps(doc_any, option=_CANONICAL)


def _well_known(field: _d.FieldDescriptor) -> bool:
    return message_of(field).full_name.startswith("google.protobuf.")


def _is_wrapper(field: _d.FieldDescriptor) -> bool:
    name = message_of(field).full_name
    return name.startswith("google.protobuf.") and name.endswith("Value") and name not in _QUERY_FORBIDDEN


def _check_query_field(field: _d.FieldDescriptor, where: str, depth: int) -> None:
    if field.type != _FD.TYPE_MESSAGE:
        return
    message = message_of(field)
    name = message.full_name
    if message.GetOptions().map_entry or name in _QUERY_FORBIDDEN:
        raise ValueError(
            f"{where}: field {field.full_name} ({name}) cannot be a query parameter; bind it to the body"
        )
    if name in _QUERY_WKT or _is_wrapper(field) or depth > 8:
        return
    for sub in message.fields:
        _check_query_field(sub, where, depth + 1)


def _pop_path(doc: dict[str, Any], path: tuple[str, ...]) -> None:
    for name in path[:-1]:
        inner = doc.get(name)
        if not isinstance(inner, dict):
            return
        doc = inner
    doc.pop(path[-1], None)


def _apply_mask(doc: dict[str, Any], resource: Message, paths: list[str], body_field: str) -> dict[str, Any]:
    """Keeps only the masked fields of ``doc``; masked but unset fields become null."""
    out: dict[str, Any] = {}
    for path in paths:
        parts = path.split(".")
        descriptor: _d.Descriptor | None = descriptor_of(resource)
        wire_parts = []
        for part in parts:
            if descriptor is None or part not in descriptor.fields_by_name:
                raise BindingError("update_mask", f"{path!r} is not a field of {body_field}")
            field = field_of(descriptor, part)
            wire_parts.append(wire_name(field))
            descriptor = field.message_type
        src: Any = doc
        dst = out
        for i, key in enumerate(wire_parts):
            last = i == len(wire_parts) - 1
            src = src.get(key) if isinstance(src, dict) else None
            if last:
                dst[key] = src
            else:
                dst = dst.setdefault(key, {})
    return out
