"""docs/configuration.md against the settings models: every key the adapter reads is
documented in the section it belongs to, and every key a plain table documents is one
the adapter reads (a renamed or removed key leaves no stale row behind).

The documentation is the operator's only reference for a TOML file or a ``MESH_``
variable: a key added to ``adapter/config`` without a row there is a key nobody can
find, and a row left after a rename is a key operators set and the start refuses
(``extra="forbid"``).
"""

from __future__ import annotations

import json
import os
import re
import types
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

from adapter.config.settings import Settings, load_settings

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


def _rows() -> Iterator[tuple[str, bool, list[str]]]:
    """Each table row of the "Keys" part: (section, ``*`` for placeholders and ``""``
    for the top level; whether the table is a plain ``| key | default | meaning |``;
    the row's cells)."""
    current: str | None = None
    plain = False
    for line in DOC.read_text().splitlines():
        if line.startswith("## "):
            current = None
        if heading := _SECTION.match(line):
            current = _PLACEHOLDER.sub("*", heading.group(1) or "")
            yield current, True, []  # a section without rows is still a section
            continue
        if current is None or not line.startswith("|"):
            continue
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if cells[0] in ("key", "`type`"):
            plain = cells[0] == "key"
        elif not (cells[0] and set(cells[0]) <= set("-:")):  # not the |---| line
            yield current, plain, cells


def _names(cells: list[str]) -> set[str]:
    """The keys a row's cells name (``a`` / ``b`` and ``a``, ``b`` name two)."""
    return {
        _PLACEHOLDER.sub("*", name.strip())
        for cell in cells
        for token in _BACKTICKED.findall(cell)
        for name in re.split(r"[/,]", token)
    }


def _documented() -> dict[str, tuple[set[str], set[str]]]:
    """Section -> (every key a row names, the keys of plain rows only)."""
    sections: dict[str, tuple[set[str], set[str]]] = {}
    for section, plain, cells in _rows():
        named, plain_names = sections.setdefault(section, (set(), set()))
        names = _names(cells[:1] if plain else cells[:2])
        named.update(names)
        if plain:
            plain_names.update(names)
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


def _default(key: str) -> object:
    """The value a key takes when the operator sets nothing, as the models define it
    (a nested table's own default wins: GraphQL's ``rate_limit`` is 500 a minute)."""
    model: type[BaseModel] = Settings
    value: object = None
    parts = key.split(".")
    for index, part in enumerate(parts):
        if part == "*":
            value = None  # a named entry: its model's own defaults
            continue
        if isinstance(value, BaseModel):
            value = getattr(value, part)
        else:
            value = model.model_fields[part].get_default(call_default_factory=True)
        later = [p for p in parts[index + 1 :] if p != "*"]
        if later:
            candidates, _ = _models_in(model.model_fields[part].annotation)
            model = next(m for m in candidates if later[0] in m.model_fields)
    return value


def _same(documented: str, value: object) -> bool:
    if isinstance(value, bool):
        return documented == str(value).lower()
    if isinstance(value, int | float):
        return re.fullmatch(r"-?[0-9][0-9_,]*(\.[0-9]+)?", documented) is not None and float(
            documented.replace(",", "").replace("_", "")
        ) == float(value)
    if isinstance(value, list | tuple | set | frozenset | dict):
        try:
            parsed = json.loads(documented)
        except ValueError:
            return False
        if isinstance(value, dict):
            return bool(parsed == value)
        return isinstance(parsed, list) and sorted(map(str, parsed)) == sorted(map(str, value))
    return documented == str(value)


def test_every_plain_default_is_the_models_default() -> None:
    """A row whose default is one literal (`` `30` ``, `` `h1` ``, `` `true` ``, `` `[]` ``)
    states the models' default; words ("required", "8 MiB", "derived from...") are prose."""
    keys = _settings_keys()
    wrong, compared = [], 0
    for section, plain, cells in _rows():
        names = _names(cells[:1])
        literal = re.fullmatch(r"`([^`]*)`", cells[1]) if plain and len(cells) > 2 else None
        if literal is None or len(names) != 1:
            continue
        key = _resolve(section, names.pop(), keys)
        value = None if key is None else _default(_aliased(key))
        if key is None or value in (None, ""):  # unset: derived at start, said in the row
            continue
        compared += 1
        if not _same(literal.group(1), value):
            wrong.append(f"{key}: documented `{literal.group(1)}`, the models say {value!r}")
    assert not wrong, "defaults in docs/configuration.md that are not the adapter's:\n" + "\n".join(wrong)
    assert compared > 80  # most rows state a literal default: the parse found them


def test_the_examples_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every TOML example of the document is a configuration the adapter starts with."""
    blocks = re.findall(r"```toml\n(.*?)```", DOC.read_text(), re.S)
    assert blocks
    for name in [name for name in os.environ if name.startswith("MESH_")]:
        monkeypatch.delenv(name)
    for number, block in enumerate(blocks):
        config = tmp_path / f"example-{number}.toml"
        config.write_text(block)
        monkeypatch.setenv("MESH_CONFIG_FILE", str(config))
        settings = load_settings()
        assert settings.upstreams, block


def test_the_checks_see_the_sections_and_keys() -> None:
    """The parsing above found what the document plainly has (so an empty parse cannot pass)."""
    sections = _documented()
    assert {"", "grpc", "upstreams.*", "upstreams.*.auth", "events.webhook.sources.*"} <= set(sections)
    assert "max_receive_message_bytes" in sections["grpc"][1]
    assert {"api_key", "token_url", "private_key_file"} <= sections["upstreams.*.auth"][0]
    keys = _settings_keys()
    assert keys["upstreams"] and keys["upstreams.*.auth"] and not keys["grpc.port"]
    assert "upstreams.*.auth.token_url" in keys and "events.websockets.*.url" in keys
