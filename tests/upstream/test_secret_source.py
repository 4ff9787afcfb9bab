"""A file-backed secret through a rotation: the first read must succeed; later, a file
briefly missing or empty keeps the last good value, said once and then at most once a
minute with a count (it is checked every ``reload_interval``); a new file is taken."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from adapter.telemetry.repeated_lines import flush_held_lines
from adapter.upstream.errors import CredentialError
from adapter.upstream.secret_source import SecretSource

LOGGER = "adapter.upstream.secret_source"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


def test_the_first_read_must_succeed(tmp_path: Path) -> None:
    missing, empty = tmp_path / "missing", tmp_path / "empty"
    empty.write_text(" \n")
    with pytest.raises(CredentialError, match=f"cannot read secret file {missing}: No such file"):
        SecretSource.from_file(missing).get()
    with pytest.raises(CredentialError, match=f"secret file {empty} is empty"):
        SecretSource.from_file(empty).get()


def test_a_rotation_keeps_the_last_good_value_and_says_so_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    path = tmp_path / "api.key"
    path.write_text("key-1\n")
    clock = Clock()
    source = SecretSource(path=path, reload_interval=5.0, clock=clock)
    assert source.get() == "key-1" and source.version == 1

    path.unlink()  # the mount is being replaced
    for _ in range(12):  # a minute of checks
        clock.now += 5.0
        assert source.get() == "key-1"
    path.write_text("")  # briefly empty
    clock.now += 5.0
    assert source.get() == "key-1" and source.version == 1
    assert _lines(caplog) == [f"cannot re-read secret file {path}; keeping the previous value"]

    flush_held_lines()  # what the adapter's stop (or the minute's end) sends
    said = _lines(caplog)
    assert len(said) == 2 and said[1].startswith(
        f"cannot re-read secret file {path}; keeping the previous value (the last of 12 like it held back"
    )

    path.write_text("key-2\n")  # the new secret
    clock.now += 5.0
    assert source.get() == "key-2" and source.version == 2
    assert _lines(caplog)[-1] == f"secret file {path} changed; using the new value"
    assert "key-1" not in caplog.text and "key-2" not in caplog.text

    path.unlink()  # a new absence after a good read is told at once
    clock.now += 5.0
    assert source.get() == "key-2"
    assert _lines(caplog)[-1] == f"cannot re-read secret file {path}; keeping the previous value"
    assert len(_lines(caplog)) == 4


def test_a_401_looks_at_the_file_at_once(tmp_path: Path) -> None:
    path = tmp_path / "api.key"
    path.write_text("key-1")
    source = SecretSource(path=path, reload_interval=3600.0, clock=Clock())
    assert source.get() == "key-1"
    path.write_text("key-22")
    assert source.get() == "key-1"  # within the hour
    assert source.get(recheck=True) == "key-22"
