"""Renders an event message and every message and enum it uses as one
self-contained .proto text, from the descriptor set with source info
(generated/mesh_adapter.binpb), comments included.

Why by hand: AsyncAPI's protobuf schema format (``application/vnd.google.protobuf``,
read by ``@asyncapi/protobuf-schema-parser``) takes one inline .proto text per
payload and resolves no imports but ``google/protobuf/*``, while the event
messages use types from other files of their package. No library prints .proto
source from descriptors, so this flattens the closure of one message into its
package. Field options (``google.api.field_behavior``, the adapter's own) are
left out: they change nothing on the wire.
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2 as d

__all__ = ["ProtoIndex", "render_closure"]

F = d.FieldDescriptorProto
SCALARS = {
    F.TYPE_DOUBLE: "double", F.TYPE_FLOAT: "float", F.TYPE_INT64: "int64", F.TYPE_UINT64: "uint64",
    F.TYPE_INT32: "int32", F.TYPE_FIXED64: "fixed64", F.TYPE_FIXED32: "fixed32", F.TYPE_BOOL: "bool",
    F.TYPE_STRING: "string", F.TYPE_BYTES: "bytes", F.TYPE_UINT32: "uint32", F.TYPE_SFIXED32: "sfixed32",
    F.TYPE_SFIXED64: "sfixed64", F.TYPE_SINT32: "sint32", F.TYPE_SINT64: "sint64",
}  # fmt: skip
# Paths in SourceCodeInfo (descriptor.proto field numbers).
MESSAGES, ENUMS, FIELDS, NESTED, NESTED_ENUMS, VALUES = 4, 5, 2, 3, 4, 2


class ProtoIndex:
    """Top-level messages and enums of a descriptor set, by full name, with their
    file, their path in it (for comments) and their comments."""

    def __init__(self, descriptors: d.FileDescriptorSet) -> None:
        self.top: dict[str, tuple[d.FileDescriptorProto, int, d.DescriptorProto | d.EnumDescriptorProto]] = {}
        self.comments: dict[tuple[str, tuple[int, ...]], str] = {}
        #: Full name -> path of the type in its file's SourceCodeInfo.
        self.path_of: dict[str, tuple[int, ...]] = {}
        for file in descriptors.file:
            for i, message in enumerate(file.message_type):
                self.top[f"{file.package}.{message.name}"] = (file, MESSAGES, message)
                self.path_of[f"{file.package}.{message.name}"] = (MESSAGES, i)
            for i, enum in enumerate(file.enum_type):
                self.top[f"{file.package}.{enum.name}"] = (file, ENUMS, enum)
                self.path_of[f"{file.package}.{enum.name}"] = (ENUMS, i)
            for location in file.source_code_info.location:
                if location.leading_comments:
                    self.comments[(file.name, tuple(location.path))] = location.leading_comments

    def top_level_of(self, type_name: str) -> str:
        """``.pkg.Outer.Inner`` -> ``pkg.Outer`` (the top-level type holding it)."""
        name = type_name.lstrip(".")
        while name not in self.top:
            if "." not in name:
                raise KeyError(f"{type_name} is not in the descriptor set")
            name = name.rsplit(".", 1)[0]
        return name


def _closure(index: ProtoIndex, root: str) -> list[str]:
    """``root`` and every top-level project type it uses, root first, then by name."""
    seen: list[str] = []
    todo = [root]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.append(name)
        _, _, node = index.top[name]
        if isinstance(node, d.DescriptorProto):
            todo.extend(
                index.top_level_of(t) for t in _type_names(node) if not t.startswith(".google.protobuf.")
            )
    return [root, *sorted(seen[1:])]


def _type_names(message: d.DescriptorProto) -> list[str]:
    names = [f.type_name for f in message.field if f.type_name]
    for nested in message.nested_type:
        names.extend(_type_names(nested))
    return names


def _imports(index: ProtoIndex, names: list[str]) -> list[str]:
    wkt: set[str] = set()
    for name in names:
        _, _, node = index.top[name]
        if isinstance(node, d.DescriptorProto):
            for t in _type_names(node):
                if t.startswith(".google.protobuf."):
                    wkt.add(t.removeprefix(".google.protobuf."))
    files = {"Timestamp": "timestamp", "Struct": "struct", "Value": "struct", "ListValue": "struct",
             "Duration": "duration", "Any": "any", "FieldMask": "field_mask", "Empty": "empty"}  # fmt: skip
    return sorted({f"google/protobuf/{files.get(n, 'wrappers')}.proto" for n in wkt})


class _Writer:
    def __init__(self, index: ProtoIndex, file: d.FileDescriptorProto) -> None:
        self.index = index
        self.file = file
        self.lines: list[str] = []

    def comment(self, path: tuple[int, ...], indent: str, extra: str = "") -> None:
        text = self.index.comments.get((self.file.name, path), "").rstrip("\n")
        for line in [*(text.split("\n") if text else []), *([extra] if extra else [])]:
            self.lines.append(f"{indent}//{' ' if line and not line.startswith(' ') else ''}{line}".rstrip())

    def type_of(self, field: d.FieldDescriptorProto) -> str:
        if field.type_name:
            name = field.type_name.lstrip(".")
            return name.removeprefix(f"{self.file.package}.") if not name.startswith("google.") else name
        return SCALARS[field.type]

    def enum(self, enum: d.EnumDescriptorProto, path: tuple[int, ...], indent: str) -> None:
        self.lines.append(f"{indent}enum {enum.name} {{")
        for i, value in enumerate(enum.value):
            self.comment((*path, VALUES, i), indent + "  ")
            self.lines.append(f"{indent}  {value.name} = {value.number};")
        self.lines.append(f"{indent}}}")

    def message(self, message: d.DescriptorProto, path: tuple[int, ...], indent: str) -> None:
        self.lines.append(f"{indent}message {message.name} {{")
        inner = indent + "  "
        maps = {n.name: n for n in message.nested_type if n.options.map_entry}
        for i, nested in enumerate(message.nested_type):
            if not nested.options.map_entry:
                self.comment((*path, NESTED, i), inner)
                self.message(nested, (*path, NESTED, i), inner)
        for i, enum in enumerate(message.enum_type):
            self.comment((*path, NESTED_ENUMS, i), inner)
            self.enum(enum, (*path, NESTED_ENUMS, i), inner)
        open_oneof: int | None = None
        for i, field in enumerate(message.field):
            real_oneof = field.HasField("oneof_index") and not field.proto3_optional
            if open_oneof is not None and (not real_oneof or field.oneof_index != open_oneof):
                self.lines.append(f"{inner}}}")
                open_oneof = None
            if real_oneof and open_oneof is None:
                open_oneof = field.oneof_index
                self.lines.append(f"{inner}oneof {message.oneof_decl[field.oneof_index].name} {{")
            at = inner + ("  " if open_oneof is not None else "")
            entry = maps.get(field.type_name.rsplit(".", 1)[-1]) if field.type_name else None
            if entry is not None and field.label == F.LABEL_REPEATED:
                key, value = entry.field
                kind = f"map<{self.type_of(key)}, {self.type_of(value)}>"
            else:
                label = "repeated " if field.label == F.LABEL_REPEATED else ""
                label = "optional " if field.proto3_optional else label
                kind = label + self.type_of(field)
            self.comment((*path, FIELDS, i), at)
            self.lines.append(f"{at}{kind} {field.name} = {field.number};")
        if open_oneof is not None:
            self.lines.append(f"{inner}}}")
        self.lines.append(f"{indent}}}")


def render_closure(index: ProtoIndex, root: str) -> str:
    """The .proto text of ``root`` (marked ``@RootNode``) and the types it uses."""
    names = _closure(index, root)
    file = index.top[root][0]
    packages = {index.top[n][0].package for n in names}
    if packages != {file.package}:
        raise ValueError(f"{root} uses types of other packages ({sorted(packages)}): cannot flatten")
    out = ['syntax = "proto3";', "", f"package {file.package};", ""]
    out += [f'import "{i}";' for i in _imports(index, names)]
    for name in names:
        node_file, _, node = index.top[name]
        writer = _Writer(index, node_file)
        path = index.path_of[name]
        writer.comment(path, "", "@RootNode" if name == root else "")
        if isinstance(node, d.DescriptorProto):
            writer.message(node, path, "")
        else:
            writer.enum(node, path, "")
        out += ["", *writer.lines]
    return "\n".join(out) + "\n"
