"""The health board: listeners hear changes of state only; the reason of a
NOT_SERVING follows the latest report (``/readyz`` shows it)."""

from __future__ import annotations

from adapter.lifecycle import HealthBoard


def test_listeners_hear_each_change_once_and_the_reason_stays_current() -> None:
    board = HealthBoard()
    heard: list[tuple[str, bool]] = []
    board.listen(lambda name, serving: heard.append((name, serving)))
    board.set("", False, "no quota slices assigned yet")
    board.set("", False, "slices wait out their previous holder")
    assert heard == [("", False)]
    assert board.why("") == "slices wait out their previous holder"
    board.set("", False)  # no reason given: the last one stands
    assert board.why("") == "slices wait out their previous holder"
    board.set("", True)
    board.set("", True)
    assert heard == [("", False), ("", True)]
    assert board.why("") == ""
