"""Which proto files the adapter serves: the generated package, plus descriptor
sets named in configuration (a vendor added without Python: its protos compiled
with ``protoc --include_imports --descriptor_set_out=vendor.binpb`` or
``buf build -o vendor.binpb``).

A descriptor set's files are added to the default descriptor pool, where the
generated ones already live, so their messages get classes from
``message_factory`` and their custom options read like any other. A file the
pool already holds (``google/api/http.proto``, the adapter's own options) is
taken from the pool, never added twice.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

from google.protobuf import descriptor as _d
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.message import DecodeError

from .loader import import_generated_modules

__all__ = ["DescriptorSetError", "load_descriptor_sets", "proto_files"]

logger = logging.getLogger(__name__)


class DescriptorSetError(ValueError):
    """A configured descriptor set cannot be read or does not fit the protos already loaded."""


def load_descriptor_sets(paths: Iterable[Path]) -> list[_d.FileDescriptor]:
    """The files of every set in ``paths``, added to the default pool when new."""
    pool = descriptor_pool.Default()
    files: list[_d.FileDescriptor] = []
    for path in paths:
        try:
            fds = descriptor_pb2.FileDescriptorSet.FromString(Path(path).read_bytes())
        except OSError as exc:
            raise DescriptorSetError(f"descriptors.descriptor_sets: cannot read {path}: {exc}") from exc
        except DecodeError as exc:
            raise DescriptorSetError(
                f"descriptors.descriptor_sets: {path} is not a FileDescriptorSet ({exc})"
            ) from exc
        # protoc and buf write a set in dependency order, so each file's imports come first.
        for proto in fds.file:
            try:
                files.append(pool.FindFileByName(proto.name))
                continue
            except KeyError:
                pass
            try:
                files.append(pool.AddSerializedFile(proto.SerializeToString()))
            except (TypeError, ValueError) as exc:
                missing = [d for d in proto.dependency if not _known(pool, d)]
                hint = f" (imports not in the set: {', '.join(missing)}; use --include_imports)"
                raise DescriptorSetError(
                    f"{path}: cannot load {proto.name}: {exc}{hint if missing else ''}"
                ) from exc
            logger.info("loaded %s from %s", proto.name, path)
    return files


def proto_files(descriptor_sets: Sequence[Path] = ()) -> list[_d.FileDescriptor]:
    """The generated files, then those of the configured descriptor sets (each once)."""
    seen: set[str] = set()
    out: list[_d.FileDescriptor] = []
    for file in (*import_generated_modules(), *load_descriptor_sets(descriptor_sets)):
        if file.name not in seen:
            seen.add(file.name)
            out.append(file)
    return out


def _known(pool: descriptor_pool.DescriptorPool, name: str) -> bool:
    try:
        pool.FindFileByName(name)
    except KeyError:
        return False
    return True
