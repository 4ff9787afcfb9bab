"""docs/configuration.md against the settings models: every key the adapter reads is
documented in the section it belongs to, and every key a plain table documents is one
the adapter reads (a renamed or removed key leaves no stale row behind).

The documentation is the operator's only reference for a TOML file or a ``MESH_``
variable: a key added to ``adapter/config`` without a row there is a key nobody can
find, and a row left after a rename is a key operators set and the start refuses
(``extra="forbid"``).
"""

from __future__ import annotations

import re
import types
import typing
from pathlib import Path

from pydantic import BaseModel

from adapter.config.settings import Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"

#: ``<name>``, ``<upstream>``, ``<set>``: a key of a dict the operator names.
_PLACEHOLDER = re.compile(r"<[a-z_]+>")
_SECTION = re.compile(r"^### (?:`([^`]+)`|Top level)\s*$")
_BACKTICKED = re.compile(r"`([^`]+)`")


def _models_in(annotation: object) -> tuple[list[type[BaseModel]], bool]:
    """The settings models an annotation holds, and whether they sit under a dict key."""
    origin = typing.get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation], False
    if origin is dict:
        models, _ = _models_in(typing.get_args(annotation)[1])
        return models, True
    if origin in (typing.Union, types.UnionType, typing.Annotated):
        found: list[type[BaseModel]] = []
        keyed = False
        for argument in typing.get_args(annotation):
            models, under_key = _models_in(argument)
            found += [m for m in models if m not in found]
            keyed = keyed or under_key
        return found, keyed
    return [], False


def _settings_keys() -> dict[str, bool]:
    """Every dotted key of :class:`Settings` (dict keys as ``*``) -> whether it is a table."""
    keys: dict[str, bool] = {}

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            path = f"{prefix}{name}"
            models, keyed = _models_in(field.annotation)
            keys[path] = bool(models) or keys.get(path, False)
            if keyed and models:
                keys[f"{path}.*"] = True
            for inner in models:
                walk(inner, f"{path}.*." if keyed else f"{path}.")

    walk(Settings, "")
    return keys


def _documented() -> dict[str, tuple[set[str], set[str]]]:
    """Section (``*`` for placeholders, ``""`` top level) -> (every key a row names,
    the keys of plain ``| key | default | meaning |`` rows only)."""
    sections: dict[str, tuple[set[str], set[str]]] = {}
    current: str | None = None
    plain = False
    for line in DOC.read_text().splitlines():
        if line.startswith("## "):
            current = None
        if heading := _SECTION.match(line):
            current = _PLACEHOLDER.sub("*", heading.group(1) or "")
            sections.setdefault(current, (set(), set()))
            continue
        if current is None or not line.startswith("|"):
            continue
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if cells[0] in ("key", "`type`"):
            plain = cells[0] == "key"
            continue
        key_cells = cells[:1] if plain else cells[:2]
        names = {
            _PLACEHOLDER.sub("*", name.strip())
            for cell in key_cells
            for token in _BACKTICKED.findall(cell)
            for name in re.split(r"[/,]", token)
        }
        sections[current][0].update(names)
        if plain:
            sections[current][1].update(names)
    return sections


#: Tables documented once and referred to: the same model under another key.
ALIASES = {
    "upstreams.*.credential_sets.*.": "upstreams.*.auth.",  # "same keys as `auth`"
    "events.webhook.tls.": "security.tls.",  # "a `security.tls` table of its own"
}


def _resolve(section: str, name: str, keys: dict[str, bool]) -> str | None:
    """The settings key a row ``name`` of ``section`` documents: relative to the
    section, else to its nearest ancestor where it is a key (``require_credential_set``
    under ``upstreams.<name>.credential_sets`` is ``upstreams.<name>``'s)."""
    parts = section.split(".") if section else []
    for end in range(len(parts), -1, -1):
        key = ".".join([*parts[:end], name])
        if key in keys:
            return key
    return None


def _aliased(key: str) -> str:
    for alias, documented in ALIASES.items():
        if key.startswith(alias):
            return documented + key[len(alias) :]
    return key


def test_every_settings_key_is_documented_in_its_section() -> None:
    keys = _settings_keys()
    sections = _documented()
    documented = set(sections) | {
        key
        for section, (names, _) in sections.items()
        for name in names
        if (key := _resolve(section, name, keys)) is not None
    }
    missing = set()
    for key, is_table in keys.items():
        key = _aliased(key)
        if key in documented:
            continue
        if is_table and any(path.startswith(f"{key}.") for path in documented):
            continue  # a table documented by its keys (``retry.max_attempts``) or sections
        missing.add(key)
    assert not missing, "keys the adapter reads that docs/configuration.md does not document:\n" + "\n".join(
        sorted(missing)
    )


def test_every_documented_key_is_one_the_adapter_reads() -> None:
    keys = _settings_keys()
    stale = [
        f"`{name}` in section `{section or 'Top level'}`"
        for section, (_, plain_names) in _documented().items()
        for name in plain_names
        if _resolve(section, name, keys) is None
    ]
    stale += [f"section `{section}`" for section in _documented() if section and section not in keys]
    assert not stale, "docs/configuration.md documents keys the adapter does not read:\n" + "\n".join(stale)


def test_the_checks_see_the_sections_and_keys() -> None:
    """The parsing above found what the document plainly has (so an empty parse cannot pass)."""
    sections = _documented()
    assert {"", "grpc", "upstreams.*", "upstreams.*.auth", "events.webhook.sources.*"} <= set(sections)
    assert "max_receive_message_bytes" in sections["grpc"][1]
    assert {"api_key", "token_url", "private_key_file"} <= sections["upstreams.*.auth"][0]
    keys = _settings_keys()
    assert keys["upstreams"] and keys["upstreams.*.auth"] and not keys["grpc.port"]
    assert "upstreams.*.auth.token_url" in keys and "events.websockets.*.url" in keys
