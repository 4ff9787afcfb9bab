"""Multi-row SQL statements in a few shapes, so SQLite's prepared statements are reused.

The spool's statements carry a whole batch in one statement (one step, see the
GIL_STEPS note in spool_store.py), so their text depends on the batch's size. With
a text per size, the ``sqlite3`` module's statement cache (128 entries) held a few
of the ~900 texts a spool used (``tests/events/test_sql_shapes.py`` counts them), and
most rounds prepared their statements again (parsing and planning up to 3,500
placeholders): a fifth of the store's CPU a record (``bench/spool_store_cost.py``),
on the thread that contends for the GIL with the event loop. Caching every text
instead would hold ~180 MB of prepared statements. So a batch is padded up to the
next power of two, and the padding is made harmless by the statement itself:

* rows to insert are padded with rows of NULLs that a ``WHERE column1 IS NOT NULL``
  leaves out (:func:`insert_rows`), the NULLs bound as NaN (binding, below);
* a list of keys is padded by repeating its first key, which changes no ``IN``
  test (:func:`padded_keys`).

That is 10 texts a statement (1 to 512 rows): ~50 in all, which stay cached.

Written here because SQLite has no array binding in the stdlib module (its
``carray`` extension is not compiled in) and no ``unhex()`` before 3.41 to pass
blobs through ``json_each``.

Binding, on Python 3.11: its ``sqlite3`` binds a ``str``, ``int``, ``float`` or
``bytearray`` parameter at once, but sends every ``bytes`` and ``None`` through its
adapter registry, which formats and drops an ``AttributeError`` on the way
(``need_adapt`` in Modules/_sqlite/cursor.c). So the spool binds its blobs as
``bytearray`` (a record's three: 4.97 µs as ``bytes``, 1.77 as ``bytearray``, copies
included; ``bytes`` are read back either way), and padding rows bind NaN, which SQLite
stores as NULL (``sqlite3VdbeMemSetDouble``): a row of 7 ``None`` 6.8 µs, of 7 NaN 0.55.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

__all__ = ["MAX_ROWS", "insert_rows", "key_marks", "padded_keys", "shape"]

#: Rows (or keys) a statement carries at most: 512 records of 7 columns bind 3,584
#: parameters, far below SQLite's limit of 32,766.
MAX_ROWS = 512


def shape(rows: int) -> int:
    """The padded size of a batch of ``rows`` (1 to :data:`MAX_ROWS`): the next power of two."""
    if not 0 < rows <= MAX_ROWS:
        raise ValueError(f"a statement carries 1 to {MAX_ROWS} rows, not {rows}")
    return 1 << (rows - 1).bit_length()


#: What a padding row binds: NaN, which SQLite stores as NULL (binding, in the docstring).
_NULL = math.nan


@lru_cache(maxsize=64)
def _rows_text(columns: int, rows: int) -> str:
    row = "(" + ",".join("?" * columns) + ")"
    return ",".join([row] * rows)


def insert_rows(head: str, values: list[object], columns: int, tail: str = "") -> tuple[str, list[object]]:
    """``head`` (``INSERT INTO t (a, b)``) with the rows whose ``values`` are given
    flat, ``columns`` a row, padded to :func:`shape`; ``tail`` follows the rows
    (an ``ON CONFLICT`` clause). The first column must never be NULL in a real row."""
    rows = len(values) // columns
    padded = shape(rows)
    text = f"{head} SELECT * FROM (VALUES {_rows_text(columns, padded)}) WHERE column1 IS NOT NULL {tail}"
    return text, values + [_NULL] * (columns * (padded - rows))


def key_marks(keys: int) -> str:
    """The placeholders of an ``IN (...)`` list for ``keys`` keys, padded to :func:`shape`."""
    return _marks(shape(keys))


@lru_cache(maxsize=16)
def _marks(keys: int) -> str:
    return ",".join("?" * keys)


def padded_keys(keys: Sequence[int]) -> list[int]:
    """``keys`` padded to :func:`shape` with repeats of the first (no ``IN`` test changes)."""
    return [*keys, *[keys[0]] * (shape(len(keys)) - len(keys))]
