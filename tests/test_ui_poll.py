"""The live-fragment policy of ui.py: refresh while something changes, back off, stop."""

from __future__ import annotations

import ui


def _fresh(active=True, backoff=True):
    return {"level": 0, "same": 0, "sig": None, "active": active, "fresh": True, "backoff": backoff}


def test_backs_off_while_nothing_changes_and_speeds_up_on_a_change():
    state = _fresh()
    assert not ui.next_poll(state, "a", True)  # the full run that drew the fragment
    reruns = [ui.next_poll(state, "a", True) for _ in range(ui.POLL_PATIENCE)]
    assert reruns == [False] * (ui.POLL_PATIENCE - 1) + [True] and state["level"] == 1
    for _ in range(10 * ui.POLL_PATIENCE):  # stays at the slowest step, no endless reruns
        ui.next_poll(state, "a", True)
    assert state["level"] == len(ui.POLL_STEPS) - 1
    assert ui.next_poll(state, "b", True) and state["level"] == 0  # progress moved: fast again
    assert not ui.next_poll(state, "c", True)  # already fast: no rerun needed


def test_stops_when_nothing_is_active_and_never_backs_off_without_backoff():
    state = _fresh()
    ui.next_poll(state, "a", True)
    assert ui.next_poll(state, "done", False)  # the last run finished: one app rerun
    steady = _fresh(backoff=False)
    ui.next_poll(steady, "a", True)
    assert not any(ui.next_poll(steady, "a", True) for _ in range(20))
